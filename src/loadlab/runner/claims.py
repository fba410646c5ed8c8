"""``loadlab claims``: the textbook claims, measured, with verdicts from stated thresholds.

Each claim names the runs it needs (a plan of cells) and a judge that reads only the
recorded runs, so a verdict can be recomputed from any results directory. A verdict is
``holds`` or ``does not hold`` only when the figures clear a stated threshold either
way; in between, or when a figure is missing, it is ``inconclusive``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadlab.report.concurrency import client_in_flight, memory_per_request, served
from loadlab.runner.options import RunSpec

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
Runs = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    id: str
    claim: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Sizes:
    duration_s: float
    warmup_s: float
    async_users: int  # concurrent I/O waits held by one async process
    sync_workers: int  # workers started to hold as many concurrent waits
    repeats: int  # CPU-bound pairs are run this often, alternated (the machine is noisy)
    io_ms: int = 100
    cpu_work: int = 100  # ~10 ms of pure-Python work
    db_pool: int = 5  # the pool that caps one Uvicorn process's database waits
    db_users: int = 50  # more users than the pool, so that the pool is the limit


QUICK = Sizes(duration_s=5, warmup_s=2, async_users=200, sync_workers=12, repeats=2)
FULL = Sizes(duration_s=20, warmup_s=5, async_users=1000, sync_workers=32, repeats=3)
BUSY_CORES = 0.5  # other work on the machine beyond this spoils a CPU-bound comparison


def _cell(**fields: Any) -> RunSpec:
    return RunSpec(**fields)


def plan(sizes: Sizes, cores: int) -> dict[str, RunSpec]:
    """The named cells the claims need, in the order they run.

    CPU-bound pairs alternate (A B A B ...) so that a change on the machine hits both sides.
    """
    common: dict[str, Any] = dict(duration_s=sizes.duration_s, warmup_s=sizes.warmup_s)
    io = dict(scenario="io", io_ms=sizes.io_ms, **common)
    cpu = dict(scenario="cpu", cpu_work=sizes.cpu_work, **common)
    all_cores = float(cores)
    cells = {
        "async-io": _cell(target="fastapi", users=sizes.async_users, **io),
        "loop-blocking": _cell(target="fastapi", users=4, scenario="cpu-blocking",
                               cpu_work=sizes.cpu_work, **common),
        "loop-threadpool": _cell(target="fastapi", users=4, **cpu),
        "sync-2": _cell(target="flask", worker_class="sync", workers=2, users=20, **io),
        "gthread-2x4": _cell(target="flask", worker_class="gthread", workers=2, threads=4,
                             users=20, **io),
        "sync-memory": _cell(target="flask", worker_class="sync", workers=sizes.sync_workers,
                             users=sizes.sync_workers, **io),
    }
    pairs: dict[str, dict[str, Any]] = {
        "procs-1": dict(worker_class="sync", workers=1, cpus=all_cores),
        "procs-n": dict(worker_class="sync", workers=max(cores, 2), cpus=all_cores),
        "threads-1": dict(worker_class="gthread", workers=1, threads=1, cpus=all_cores),
        "threads-4": dict(worker_class="gthread", workers=1, threads=4, cpus=all_cores),
        "limit-1": dict(worker_class="sync", workers=1, cpus=1.0),
        "limit-2": dict(worker_class="sync", workers=2, cpus=1.0),
    }
    db_common: dict[str, Any] = dict(users=sizes.db_users, **common)
    cells.update({
        # Database waits through a pool of db_pool connections, users well above the pool.
        "db-pool": _cell(target="fastapi", scenario="db-sleep", io_ms=sizes.io_ms,
                         db_pool_size=sizes.db_pool, **db_common),
        # The same wait with the sync driver inside async def, against the async driver.
        "db-blocking": _cell(target="fastapi", scenario="db-blocking", io_ms=20, users=4,
                             **common),
        "db-async": _cell(target="fastapi", scenario="db-sleep", io_ms=20, users=4, **common),
        # Connections the database sees: workers x pool, on both stacks.
        "db-conn-uvicorn": _cell(target="fastapi", scenario="db", workers=2, **db_common),
        "db-conn-gthread": _cell(target="flask", scenario="db", worker_class="gthread",
                                 workers=3, threads=4, **db_common),
        # /db at saturation, one core each (the database shares the service's cores).
        "db-fastapi": _cell(target="fastapi", scenario="db", cpus=1.0, **db_common),
        "db-flask": _cell(target="flask", scenario="db", worker_class="gevent", cpus=1.0,
                          **db_common),
    })
    names = list(pairs)
    for first, second in zip(names[::2], names[1::2], strict=True):
        for rep in range(sizes.repeats):
            for name in (first, second):
                cells[f"{name}#{rep}"] = _cell(target="flask", users=4, repeat=rep,
                                               **pairs[name], **cpu)
    return cells


def _reps(runs: Runs, name: str) -> list[dict[str, Any]]:
    """The repetitions of a cell that ran well, in order."""
    found = [r for key, r in sorted(runs.items()) if key.split("#")[0] == name and _ok(r)]
    return found


def _pair(runs: Runs, a: str, b: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ra, rb = _reps(runs, a), _reps(runs, b)
    n = min(len(ra), len(rb))
    return ra[:n], rb[:n]


def _median_ratio(ra: list[dict[str, Any]], rb: list[dict[str, Any]]) -> float:
    ratios = sorted(float(b["rps"]) / max(float(a["rps"]), 1e-9)
                    for a, b in zip(ra, rb, strict=True))
    return float(statistics.median(ratios))


def _busy(*groups: list[dict[str, Any]]) -> float:
    """The most work other than the service and Locust seen during these runs, in cores."""
    return max((float((r.get("machine") or {}).get("other_cores") or 0.0)
                for g in groups for r in g), default=0.0)


def _rps_list(runs: list[dict[str, Any]]) -> str:
    return "/".join(f"{r['rps']:,.1f}" for r in runs)


def _ok(run: dict[str, Any] | None) -> bool:
    return bool(run) and run.get("status") == "ok" and bool(run.get("requests"))  # type: ignore[union-attr]


def _missing(cid: str, text: str, names: list[str], runs: Runs) -> Verdict | None:
    absent = [n for n in names if not _ok(runs.get(n)) and not _reps(runs, n)]
    if not absent:
        return None
    reasons = "; ".join(
        f"{n}: {(runs.get(n) or {}).get('error', 'not measured')}" for n in absent
    )
    return Verdict(cid, text, UNSURE, f"runs missing or failed ({reasons})")


def async_io(runs: Runs, cores: int) -> Verdict:
    cid, text = "async-io-concurrency", (
        "one async process serves hundreds to thousands of concurrent I/O waits")
    if (v := _missing(cid, text, ["async-io"], runs)) is not None:
        return v
    run = runs["async-io"]
    users, io_ms = run["users"], run["io_ms"] or 100
    held = client_in_flight(run)
    p50 = run["latency_ms"]["p50"]
    errors = run["failures"] / run["requests"]
    busy = _busy([run])
    evidence = (f"1 Uvicorn process, {users} users waiting {io_ms} ms: {run['rps']:,.0f} req/s, "
                f"{held:,.0f} requests in flight, p50 {p50:g} ms, errors {errors:.1%}; other "
                f"work on the machine {busy:.2f} cores (holds: in flight >= 80% of users and "
                "p50 <= 1.5x the wait)")
    if held >= 0.8 * users and p50 <= 1.5 * io_ms and errors < 0.01:
        return Verdict(cid, text, HOLDS, evidence)
    if (run.get("load") or {}).get("peak_cpu_percent", 0) >= 90:
        return Verdict(cid, text, UNSURE, evidence + "; the load generator was saturated")
    if held < 0.5 * users or errors >= 0.05:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def loop_blocking(runs: Runs, cores: int) -> Verdict:
    cid, text = "event-loop-blocking", "CPU work on the event loop stalls every other request"
    if (v := _missing(cid, text, ["loop-blocking", "loop-threadpool"], runs)) is not None:
        return v
    blocking, pool = runs["loop-blocking"], runs["loop-threadpool"]
    pb, pp = (blocking.get("probe_ms") or {}).get("p50"), (pool.get("probe_ms") or {}).get("p50")
    if pb is None or pp is None:
        return Verdict(cid, text, UNSURE, "no /healthz probe answered during the runs")
    work_ms = (blocking.get("cpu_work") or 100) * 0.1
    ratio = pb / max(pp, 0.01)
    evidence = (f"/healthz probe p50 while {blocking['users']} users ran ~{work_ms:g} ms of CPU "
                f"work: {pb:g} ms with the work in async def (on the loop) vs {pp:g} ms in a def "
                f"endpoint (thread pool), {ratio:.1f}x (holds: >= 2x and >= half a work item)")
    if ratio >= 2 and pb >= 0.5 * work_ms:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio < 1.2:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def sync_per_request(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-worker-per-request", (
        "a sync worker serves one request at a time: concurrency capped at workers x threads")
    if (v := _missing(cid, text, ["sync-2", "gthread-2x4"], runs)) is not None:
        return v
    parts, within, over = [], True, False
    for name in ("sync-2", "gthread-2x4"):
        run = runs[name]
        cap = run["workers"] * run["threads"]
        # Each request holds its worker (thread) for the wait: concurrency = rps × wait.
        held = run["rps"] * (run["io_ms"] or 100) / 1000.0
        parts.append(f"{run['worker_class']} {run['workers']}x{run['threads']} with "
                     f"{run['users']} users: {run['rps']:,.1f} req/s = {held:.1f} concurrent "
                     f"(cap {cap})")
        within &= 0.7 * cap <= held <= 1.1 * cap
        over |= held > 1.25 * cap
    evidence = "; ".join(parts) + " (holds: 70-110% of the cap with more users than the cap)"
    if within:
        return Verdict(cid, text, HOLDS, evidence)
    return Verdict(cid, text, FAILS if over else UNSURE, evidence)


def sync_memory(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-memory-per-concurrency", (
        "memory to hold N concurrent I/O requests: sync workers need far more than one async "
        "process")
    if (v := _missing(cid, text, ["sync-memory", "async-io"], runs)) is not None:
        return v
    sync, aio = runs["sync-memory"], runs["async-io"]
    ms, ma = (sync.get("server") or {}).get("memory_bytes"), (
        aio.get("server") or {}).get("memory_bytes")
    if not ms or not ma:
        return Verdict(cid, text, UNSURE, "memory was not measured")
    per_s, per_a = memory_per_request(sync), memory_per_request(aio)
    hs, ha = served(sync), served(aio)
    if per_s is None or per_a is None or hs is None or ha is None:
        return Verdict(cid, text, UNSURE, "requests in progress at the server were not sampled")
    ratio = per_s / per_a
    evidence = (f"Gunicorn sync x{sync['workers']}: {ms / 1e6:,.0f} MB PSS serving {hs:.1f} "
                f"requests at once = {per_s / 1e6:.2f} MB each; 1 Uvicorn process: "
                f"{ma / 1e6:,.0f} MB serving {ha:.1f} = {per_a / 1e6:.3f} MB each; {ratio:.1f}x "
                f"(served: the server's own http_requests_in_progress over the window; "
                f"holds: >= 3x, does not hold: <= 1.5x)")
    if ratio >= 3:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio <= 1.5:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def cpu_scales(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-scales-with-processes", (
        "CPU-bound throughput grows with worker processes up to the cores")
    if (v := _missing(cid, text, ["procs-1", "procs-n"], runs)) is not None:
        return v
    one, many = _pair(runs, "procs-1", "procs-n")
    n = many[0]["workers"]
    ideal = min(n, cores)
    ratio = _median_ratio(one, many)
    need = 1 + 0.5 * (ideal - 1)
    busy = _busy(one, many)
    evidence = (f"Gunicorn sync, ~{(one[0]['cpu_work'] or 100) * 0.1:g} ms CPU per request: "
                f"1 worker {_rps_list(one)} req/s, {n} workers {_rps_list(many)} req/s, median "
                f"{ratio:.2f}x on {cores} cores; other work on the machine up to {busy:.2f} "
                f"cores (holds: >= {need:.2f}x, half the ideal gain; does not hold: < 1.15x; "
                f"inconclusive when other work exceeds {BUSY_CORES} cores)")
    if ideal < 2:
        return Verdict(cid, text, UNSURE, evidence + "; one core cannot show scaling")
    if ratio >= need:
        return Verdict(cid, text, HOLDS, evidence)
    if busy > BUSY_CORES:
        return Verdict(cid, text, UNSURE, evidence + "; the machine was busy")
    if ratio < 1.15:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def threads_not_parallel(runs: Runs, cores: int) -> Verdict:
    cid, text = "threads-not-parallel-cpu", (
        "threads do not speed up pure-Python CPU work (the GIL)")
    if (v := _missing(cid, text, ["threads-1", "threads-4"], runs)) is not None:
        return v
    one, four = _pair(runs, "threads-1", "threads-4")
    ratio = _median_ratio(one, four)
    used = max(float((r.get("server") or {}).get("cpu_cores_used") or 0.0) for r in four)
    busy = _busy(one, four)
    evidence = (f"Gunicorn gthread, 1 worker: 1 thread {_rps_list(one)} req/s, "
                f"{four[0]['threads']} threads {_rps_list(four)} req/s, median {ratio:.2f}x; "
                f"the threaded worker used at most {used:.2f} cores of the {cores} it could; "
                f"other work up to {busy:.2f} cores (holds: <= 1.2x and <= 1.2 cores used; "
                f"does not hold: >= 1.5x or > 1.5 cores used)")
    if cores < 2:
        return Verdict(cid, text, UNSURE, evidence + "; one core cannot tell")
    if used > 1.5 or (ratio >= 1.5 and busy <= BUSY_CORES):
        return Verdict(cid, text, FAILS, evidence)
    if busy > BUSY_CORES:
        # A starved worker gains nothing from threads either: no evidence about the GIL.
        return Verdict(cid, text, UNSURE, evidence + "; the machine was busy")
    if ratio <= 1.2 and used <= 1.2:
        return Verdict(cid, text, HOLDS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def limit_caps(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-limit-caps-scaling", (
        "more workers than the CPU limit buys nothing and shows throttling")
    if (v := _missing(cid, text, ["limit-1", "limit-2"], runs)) is not None:
        return v
    one, two = _pair(runs, "limit-1", "limit-2")
    limit = float(two[0]["cpus"])
    seen = (two[0].get("server") or {}).get("cpu_limit")
    # The ceiling the limit allows: limit / CPU cost of one request (measured with 1 worker).
    costs = [r["server"]["cpu_seconds"] / r["requests"] for r in one
             if (r.get("server") or {}).get("cpu_seconds") and r["requests"]]
    shares = [(r.get("server") or {}).get("throttled_share") for r in two]
    share = statistics.median([s for s in shares if s is not None]) if any(
        s is not None for s in shares) else None
    best = max(float(r["rps"]) for r in two)
    ceiling = limit / statistics.median(costs) if costs else None
    ceiling_text = f"{ceiling:,.1f}" if ceiling else "unknown"
    share_text = "unknown" if share is None else f"{share:.0%}"
    evidence = (f"Gunicorn sync under a {limit:g}-CPU limit: 1 worker {_rps_list(one)} req/s, "
                f"{two[0]['workers']} workers {_rps_list(two)} req/s; the limit allows "
                f"{ceiling_text} req/s at the CPU cost measured with 1 worker; "
                f"{two[0]['workers']} workers throttled in {share_text} of periods; limit seen "
                f"by the service: {seen if seen is not None else 'unknown'} (holds: best run "
                f"<= 1.15x the ceiling and >= 5% throttled; does not hold: > 1.4x the ceiling "
                f"or no throttling)")
    if not seen:
        return Verdict(cid, text, UNSURE, evidence + "; the CPU limit was not applied")
    if ceiling is None or share is None:
        return Verdict(cid, text, UNSURE, evidence)
    if best <= 1.15 * ceiling and share >= 0.05:
        return Verdict(cid, text, HOLDS, evidence)
    busy = _busy(one, two)
    if busy > BUSY_CORES:
        return Verdict(cid, text, UNSURE, evidence + f"; the machine was busy ({busy:.2f} cores)")
    if best > 1.4 * ceiling or share == 0.0:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def db_pool_caps(runs: Runs, cores: int) -> Verdict:
    cid, text = "async-db-pool-caps-concurrency", (
        "an async process is only as concurrent as its database pool: P connections hold "
        "about P database waits, however many users wait")
    if (v := _missing(cid, text, ["db-pool"], runs)) is not None:
        return v
    run = runs["db-pool"]
    pool, users, wait_ms = run["db_pool_size"], run["users"], run["io_ms"] or 100
    held = client_in_flight(run)  # requests the clients have out: most queue for the pool
    waits = run["rps"] * wait_ms / 1000.0  # Little's law on the database side
    peak = (run.get("database") or {}).get("connections_peak")
    evidence = (f"1 Uvicorn process, pool {pool}, {users} users each holding a connection "
                f"{wait_ms} ms: {run['rps']:,.1f} req/s = {waits:.1f} database waits at once "
                f"(Little's law), {held:,.0f} requests out at the clients, database connections "
                f"at most {peak} (holds: waits within 70-110% of the pool with users >= 4x the "
                f"pool; does not hold: waits > 1.5x the pool)")
    if users < 4 * pool:
        return Verdict(cid, text, UNSURE, evidence + "; too few users to show the cap")
    if 0.7 * pool <= waits <= 1.1 * pool:
        return Verdict(cid, text, HOLDS, evidence)
    if waits > 1.5 * pool:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def sync_driver_blocks(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-driver-blocks-loop", (
        "a sync database driver inside async def stalls the event loop, as CPU work does")
    if (v := _missing(cid, text, ["db-blocking", "db-async"], runs)) is not None:
        return v
    blocking, good = runs["db-blocking"], runs["db-async"]
    pb = (blocking.get("probe_ms") or {}).get("p50")
    pa = (good.get("probe_ms") or {}).get("p50")
    if pb is None or pa is None:
        return Verdict(cid, text, UNSURE, "no /healthz probe answered during the runs")
    wait_ms = blocking["io_ms"] or 20
    ratio = pb / max(pa, 0.01)
    evidence = (f"/healthz probe p50 while {blocking['users']} users held the database "
                f"{wait_ms} ms each: {pb:g} ms with the sync driver in async def vs {pa:g} ms "
                f"with the async driver, {ratio:.1f}x; {blocking['rps']:,.1f} against "
                f"{good['rps']:,.1f} req/s (holds: >= 2x and >= half a wait)")
    if ratio >= 2 and pb >= 0.5 * wait_ms:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio < 1.2:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def connections_multiply(runs: Runs, cores: int) -> Verdict:
    cid, text = "connections-multiply-with-workers", (
        "the database sees workers x pool size connections: pools are per process")
    names = ["db-conn-uvicorn", "db-conn-gthread"]
    if (v := _missing(cid, text, names, runs)) is not None:
        return v
    parts, exact, off = [], True, False
    for name in names:
        run = runs[name]
        expected = run["workers"] * run["db_pool_size"]
        peak = (run.get("database") or {}).get("connections_peak")
        if peak is None:
            return Verdict(cid, text, UNSURE, "the database's connections were not counted")
        parts.append(f"{run['worker_class']} x{run['workers']}, pool {run['db_pool_size']} "
                     f"per process: {peak} connections (expected {expected})")
        exact &= peak == expected
        off |= abs(peak - expected) > max(1, expected // 10)
    evidence = "; ".join(parts) + (" (holds: exactly workers x pool; does not hold: off by "
                                   "more than 10%)")
    if exact:
        return Verdict(cid, text, HOLDS, evidence)
    return Verdict(cid, text, FAILS if off else UNSURE, evidence)


def db_bound(runs: Runs, cores: int) -> Verdict:
    cid, text = "db-bound-throughput", (
        "at saturation on /db the database, not the framework, is the limit: both stacks "
        "serve about the same rate")
    if (v := _missing(cid, text, ["db-fastapi", "db-flask"], runs)) is not None:
        return v
    fa, fl = runs["db-fastapi"], runs["db-flask"]
    ratio = float(fa["rps"]) / max(float(fl["rps"]), 1e-9)

    def share(run: dict[str, Any]) -> float | None:
        db_cores = (run.get("database") or {}).get("cpu_cores_used")
        svc = (run.get("server") or {}).get("cpu_cores_used")
        if db_cores is None or not svc:
            return None
        return float(db_cores) / (float(db_cores) + float(svc))

    sa, sl = share(fa), share(fl)
    if sa is None or sl is None:
        return Verdict(cid, text, UNSURE, "the database's CPU was not measured")
    busy = _busy([fa], [fl])
    evidence = (f"/db with {fa['users']} users, each service on a {fa['cpus']:g}-CPU limit "
                f"beside the database: FastAPI {fa['rps']:,.0f} req/s, Flask gevent "
                f"{fl['rps']:,.0f} req/s ({ratio:.2f}x); the database took {sa:.0%} and {sl:.0%} "
                f"of the CPU the service and it used (holds: within 0.8-1.25x and the database "
                f">= 40% of the CPU; does not hold: outside 0.67-1.5x, the framework decides)")
    if 0.8 <= ratio <= 1.25 and min(sa, sl) >= 0.4:
        return Verdict(cid, text, HOLDS, evidence)
    if busy > BUSY_CORES:
        return Verdict(cid, text, UNSURE, evidence + f"; the machine was busy ({busy:.2f} cores)")
    if not 0.67 <= ratio <= 1.5:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


JUDGES: tuple[Callable[[Runs, int], Verdict], ...] = (
    async_io, loop_blocking, sync_per_request, sync_memory, cpu_scales, threads_not_parallel,
    limit_caps, db_pool_caps, sync_driver_blocks, connections_multiply, db_bound,
)
CLAIM_IDS = (
    "async-io-concurrency", "event-loop-blocking", "sync-worker-per-request",
    "sync-memory-per-concurrency", "cpu-scales-with-processes", "threads-not-parallel-cpu",
    "cpu-limit-caps-scaling", "async-db-pool-caps-concurrency", "sync-driver-blocks-loop",
    "connections-multiply-with-workers", "db-bound-throughput",
)


def judge(runs: Runs, cores: int) -> list[Verdict]:
    return [j(runs, cores) for j in JUDGES]


def runs_by_name(cells: dict[str, RunSpec], recorded: list[dict[str, Any]]) -> Runs:
    by_key = {r["key"]: r for r in recorded}
    return {name: by_key[spec.key] for name, spec in cells.items() if spec.key in by_key}


def print_table(verdicts: list[Verdict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="loadlab claims", show_lines=True)
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("evidence")
    colour = {HOLDS: "green", FAILS: "red", UNSURE: "yellow"}
    for v in verdicts:
        table.add_row(v.id, f"[{colour[v.verdict]}]{v.verdict}[/]", v.evidence)
    Console(width=max(120, Console().width)).print(table)


def claims_command(args: argparse.Namespace) -> int:
    from loadlab.report.html import write_report
    from loadlab.report.results import atomic_write
    from loadlab.runner.options import OptionError
    from loadlab.runner.runtime import available_cores, runtime_for
    from loadlab.runner.session import StartError, run_cells

    cores = len(available_cores()) or (os.cpu_count() or 1)
    cells = plan(QUICK if args.quick else FULL, cores)
    out = Path(args.out)
    runtime = runtime_for(args.runtime)
    try:
        outcome = run_cells(list(cells.values()), out, runtime, resume=False, write_report=False)
    except StartError as exc:
        raise OptionError(str(exc)) from None
    verdicts = judge(runs_by_name(cells, outcome.results.runs), cores)
    atomic_write(out / "claims.json",
                 json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    print_table(verdicts)
    print(f"claims: {out / 'claims.json'}")
    print(f"report: {write_report(out)}")
    return 130 if outcome.interrupted else 0
