"""Claims on concurrency: how many I/O waits one async process holds, what one sync worker
holds, what stalls the event loop, and the memory each model pays per request it holds."""

from __future__ import annotations

from loadlab.claims.claim import Cell, Claim, Reading
from loadlab.claims.verdicts import (
    BUSY_CORES,
    FAILS,
    HOLDS,
    UNSURE,
    Decision,
    Effect,
    Verdict,
    all_of,
    decide,
    mean_effect,
    median,
    other_work,
    ratio_effect,
    rps_of,
    series_of,
    stall_decision,
)
from loadlab.report.concurrency import client_in_flight, memory_per_request, served
from loadlab.runner.options import RunSpec

ASYNC_IO = Cell("async-io", lambda s, cores: RunSpec(
    target="fastapi", users=s.async_users, **s.io()))


def _async_io(seen: Reading) -> Verdict:
    rounds = seen.rounds(ASYNC_IO)
    first = rounds[0]
    users, io_ms = first["users"], first["io_ms"] or 100
    share = mean_effect("in flight / users",
                        [client_in_flight(r) / r["users"] for r in rounds], "%")
    p50 = median([r["latency_ms"]["p50"] for r in rounds])
    errors = sum(r["failures"] for r in rounds) / max(sum(r["requests"] for r in rounds), 1)
    busy = other_work(rounds)
    evidence = (f"1 Uvicorn process, {users} users waiting {io_ms} ms: "
                f"{median(rps_of(rounds)):,.0f} req/s (median), p50 {p50:g} ms, errors "
                f"{errors:.1%}; other work on the machine up to {busy:.2f} cores "
                f"({seen.bands()})")
    d = decide(share, 0.8, 0.5)
    if errors >= 0.05:
        d = Decision(FAILS, f"errors {errors:.1%} >= 5%")
    elif d.verdict == HOLDS and not (p50 <= 1.5 * io_ms and errors < 0.01):
        d = Decision(UNSURE, f"p50 {p50:g} ms above 1.5x the wait or errors >= 1%")
    if d.verdict != HOLDS and max(float((r.get("load") or {}).get("peak_cpu_percent", 0))
                                  for r in rounds) >= 90:
        return seen.verdict(d, evidence, share, UNSURE, "the load generator was saturated")
    if d.verdict != HOLDS and busy > BUSY_CORES:
        # Other work delays the waits' wake-ups and Locust itself: not the model's failing.
        return seen.verdict(d, evidence, share, UNSURE,
                            f"the machine was busy ({busy:.2f} cores of other work)")
    return seen.verdict(d, evidence, share)


ASYNC_IO_CONCURRENCY = Claim(
    id="async-io-concurrency",
    text="one async process serves hundreds to thousands of concurrent I/O waits",
    cells=(ASYNC_IO,),
    judge=_async_io,
    holds="in flight >= 80% of users, p50 <= 1.5x the wait, errors < 1%",
    fails="in flight < 50% or errors >= 5%",
)


LOOP_BLOCKING = Cell("loop-blocking", lambda s, cores: RunSpec(
    target="fastapi", users=4, scenario="cpu-blocking", cpu_work=s.cpu_work, **s.timing()))
LOOP_THREADPOOL = Cell("loop-threadpool", lambda s, cores: RunSpec(
    target="fastapi", users=4, **s.cpu()))


def _loop_blocking(seen: Reading) -> Verdict:
    blocking, pool = seen.rounds(LOOP_BLOCKING), seen.rounds(LOOP_THREADPOOL)
    pb = [float(p) for r in blocking if (p := (r.get("probe_ms") or {}).get("p50")) is not None]
    pp = [max(float(p), 0.01) for r in pool
          if (p := (r.get("probe_ms") or {}).get("p50")) is not None]
    if not pb or not pp:
        return seen.unsure("no /healthz probe answered during the runs", "no probe answered")
    work_ms = (blocking[0].get("cpu_work") or 100) * 0.1
    effect = ratio_effect("probe p50 on the loop / in the thread pool", pp, pb)
    evidence = (f"/healthz probe p50 while {blocking[0]['users']} users ran ~{work_ms:g} ms of "
                f"CPU work: {median(pb):g} ms with the work in async def (on the loop) vs "
                f"{median(pp):g} ms in a def endpoint (thread pool) ({seen.bands()})")
    d = stall_decision(effect, median(pb), work_ms,
                       f"the probe waited {median(pb):g} ms, under half a work item")
    return seen.verdict(d, evidence, effect)


EVENT_LOOP_BLOCKING = Claim(
    id="event-loop-blocking",
    text="CPU work on the event loop stalls every other request",
    cells=(LOOP_BLOCKING, LOOP_THREADPOOL),
    judge=_loop_blocking,
    holds="ratio >= 2 and the probe >= half a work item",
    fails="< 1.2",
)


SYNC_2 = Cell("sync-2", lambda s, cores: RunSpec(
    target="flask", worker_class="sync", workers=2, users=20, **s.io()))
# Threads in one worker: with two gthread workers the cap depends on how the users'
# keep-alive connections split between them (a connection stays with the worker that
# accepted it), and 1 fresh server in 4 to 6 served 71-84% of its 2x4 cap with 20 or 40
# users, a chance split, not a thread serving more than one request.
GTHREAD_1X8 = Cell("gthread-1x8", lambda s, cores: RunSpec(
    target="flask", worker_class="gthread", workers=1, threads=8, users=20, **s.io()))


def _sync_per_request(seen: Reading) -> Verdict:
    parts, decisions, effects = [], [], []
    for cell in (SYNC_2, GTHREAD_1X8):
        rounds = seen.rounds(cell)
        run = rounds[0]
        cap = run["workers"] * run["threads"]
        # Each request holds its worker (thread) for the wait: concurrency = rps × wait.
        held = [r["rps"] * (r["io_ms"] or 100) / 1000.0 for r in rounds]
        effect = mean_effect(f"{run['worker_class']} concurrency / cap",
                             [h / cap for h in held], "%",
                             series_of(rounds, scale=(run["io_ms"] or 100) / 1000.0 / cap))
        effects.append(effect)
        parts.append(f"{run['worker_class']} {run['workers']}x{run['threads']} with "
                     f"{run['users']} users: {median(rps_of(rounds)):,.1f} req/s = "
                     f"{median(held):.1f} concurrent (cap {cap}), {effect.text()}")
        decisions += [decide(effect, 0.7, None), decide(effect, 1.1, 1.25, higher=False)]
    busy = other_work(*(seen.rounds(cell) for cell in (SYNC_2, GTHREAD_1X8)))
    evidence = ("; ".join(parts) + f"; other work on the machine up to {busy:.2f} cores "
                f"({seen.bands()})")
    d = all_of(*decisions)
    worst: Effect = effects[1] if d.verdict == HOLDS else min(
        effects, key=lambda e: min(abs(e.value - 0.7), abs(e.value - 1.1)))
    if d.verdict != HOLDS and busy > BUSY_CORES:
        # A worker that waits longer for a core than for its I/O serves under its cap.
        return seen.verdict(d, evidence, worst, UNSURE,
                            f"the machine was busy ({busy:.2f} cores of other work)")
    return seen.verdict(d, evidence, worst)


SYNC_WORKER_PER_REQUEST = Claim(
    id="sync-worker-per-request",
    text="a sync worker serves one request at a time: concurrency capped at workers x threads",
    cells=(SYNC_2, GTHREAD_1X8),
    judge=_sync_per_request,
    holds="70-110% of the cap with more users than the cap",
    fails="above 125%",
)


SYNC_MEMORY = Cell("sync-memory", lambda s, cores: RunSpec(
    target="flask", worker_class="sync", workers=s.sync_workers, users=s.sync_workers,
    **s.io()))


def _sync_memory(seen: Reading) -> Verdict:
    sync, aio = seen.rounds(SYNC_MEMORY), seen.rounds(ASYNC_IO)
    if not all((r.get("server") or {}).get("memory_bytes") for r in sync + aio):
        return seen.unsure("memory was not measured", "not measured")
    # Served requests (the server's own in-progress gauge), not the clients' queue.
    ps = [m for r in sync if (m := memory_per_request(r)) is not None]
    pa = [m for r in aio if (m := memory_per_request(r)) is not None]
    if not ps or not pa:
        return seen.unsure("requests in progress at the server were not sampled",
                           "not sampled")
    hs = median([h for r in sync if (h := served(r)) is not None])
    ha = median([h for r in aio if (h := served(r)) is not None])
    effect = ratio_effect("memory per served request, sync / async", pa, ps)
    claim = seen.claim
    evidence = (f"Gunicorn sync x{sync[0]['workers']}: serving {hs:.1f} requests at once, "
                f"{median(ps) / 1e6:.2f} MB PSS each; 1 Uvicorn process: serving {ha:.1f}, "
                f"{median(pa) / 1e6:.3f} MB each (served: the server's own "
                f"http_requests_in_progress over the window; holds: {claim.holds}, does not "
                f"hold: {claim.fails})")
    return seen.verdict(decide(effect, 3.0, 1.5), evidence, effect)


SYNC_MEMORY_PER_CONCURRENCY = Claim(
    id="sync-memory-per-concurrency",
    text=("memory to hold N concurrent I/O requests: sync workers need far more than one "
          "async process"),
    cells=(SYNC_MEMORY, ASYNC_IO),
    judge=_sync_memory,
    holds=">= 3x",
    fails="<= 1.5x",
)


CLAIMS = (ASYNC_IO_CONCURRENCY, EVENT_LOOP_BLOCKING, SYNC_WORKER_PER_REQUEST,
          SYNC_MEMORY_PER_CONCURRENCY)
