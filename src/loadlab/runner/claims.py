"""``loadlab claims``: the textbook claims, measured, with verdicts from stated thresholds.

Each claim names the runs it needs (a plan of cells, each run for several rounds,
alternated) and a judge that reads only the recorded runs, so a verdict can be recomputed
from any results directory. Every verdict states its effect size with a 95% interval
over the rounds: ``holds`` only when the interval clears the stated threshold,
``does not hold`` when it clears the other threshold the other way, ``inconclusive`` when
it straddles one (or a figure is missing, or the machine was busy), with the reason and
how many rounds would likely decide it.

Shared helpers for judges: ``cell_rounds`` (a cell's rounds), ``ratio_effect`` and
``mean_effect`` (an ``Effect`` with its interval), ``decide`` (an effect against its
thresholds -> a ``Decision``), ``all_of`` (several decisions that must all hold) and
``verdict`` (a ``Verdict`` from a decision).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadlab import stats
from loadlab.report.concurrency import client_in_flight, memory_per_request, served
from loadlab.runner.options import RunSpec
from loadlab.runner.rounds import run_rounds

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
Runs = dict[str, dict[str, Any]]
MAX_MORE_ROUNDS = 50  # beyond this, "more rounds" is not a useful answer


@dataclass(frozen=True)
class Effect:
    """An effect size with its 95% interval over rounds (None: one round, no interval)."""

    name: str
    value: float
    low: float | None
    high: float | None
    rounds: int
    unit: str = "x"
    method: str = ""

    def text(self) -> str:
        fmt = (lambda v: f"{v:.2f}") if self.unit == "x" else (lambda v: f"{v:.0%}")
        if self.low is None or self.high is None:
            return f"{self.name} {fmt(self.value)} (one round: no interval)"
        return (f"{self.name} {fmt(self.value)} [95% {fmt(self.low)}, {fmt(self.high)}] over "
                f"{self.rounds} rounds")


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str
    more_rounds: int | None = None  # extra rounds likely to decide it; None: rounds won't


@dataclass(frozen=True)
class Verdict:
    id: str
    claim: str
    verdict: str
    evidence: str
    effect: dict[str, Any] | None = None
    reason: str = ""
    more_rounds: int | None = None


def cell_rounds(runs: Runs, name: str) -> list[dict[str, Any]]:
    """The rounds of a cell that ran well, in order.

    A run with rounds gives them; results from before rounds existed kept repetitions as
    cells named ``name#0``, ``name#1``: those are read as its rounds.
    """
    if name in runs:
        return [r for r in run_rounds(runs[name]) if _ok(r)]
    reps = [r for key, r in sorted(runs.items()) if key.split("#")[0] == name]
    return [r for run in reps for r in run_rounds(run) if _ok(r)]


def _pair(runs: Runs, a: str, b: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return cell_rounds(runs, a), cell_rounds(runs, b)


def ratio_effect(name: str, base: Sequence[float], cur: Sequence[float]) -> Effect:
    """cur / base of two cells' per-round figures (geometric means, Welch on the logs)."""
    r = stats.ratio_ci(list(base), list(cur))
    rounds = min(len(base), len(cur))
    method = "ratio of geometric means, Welch t on the logs"
    if r is None or rounds < 2:
        value = (statistics.median(cur) / statistics.median(base)
                 if base and cur and statistics.median(base) else math.nan)
        return Effect(name, value, None, None, rounds, method=method)
    return Effect(name, r.ratio, r.low, r.high, rounds, method=method)


def mean_effect(name: str, values: Sequence[float], unit: str = "x") -> Effect:
    """A figure measured once per round: its mean with Student's t interval."""
    ci = stats.mean_ci(list(values))
    if ci is None:
        value = values[0] if values else math.nan
        return Effect(name, value, None, None, len(values), unit, "mean, Student t")
    return Effect(name, ci[0], ci[1], ci[2], len(values), unit, "mean, Student t")


def _more_rounds(effect: Effect, threshold: float) -> int | None:
    """Rounds likely needed for the interval to clear ``threshold``.

    The half width shrinks as t(n-1)/sqrt(n) with n rounds (the spread staying as seen):
    the first n where it falls below the distance from the effect to the threshold.
    """
    from scipy.stats import t as student_t

    if effect.low is None or effect.high is None:
        return 1 if effect.rounds < 2 else None
    if effect.unit == "x" and min(effect.low, effect.value, threshold) > 0:
        # A ratio's interval is symmetric on the log scale (Welch on the logs).
        half = (math.log(effect.high) - math.log(effect.low)) / 2.0
        distance = abs(math.log(effect.value) - math.log(threshold))
    else:
        half = (effect.high - effect.low) / 2.0
        distance = abs(effect.value - threshold)
    n = effect.rounds
    if distance <= 0 or half <= 0 or n < 2:
        return None
    now = float(student_t.ppf(0.975, n - 1)) / math.sqrt(n)
    for more in range(1, MAX_MORE_ROUNDS + 1):
        m = n + more
        if half * float(student_t.ppf(0.975, m - 1)) / math.sqrt(m) / now < distance:
            return more
    return None


def decide(effect: Effect, holds_at: float, fails_at: float | None = None,
           higher: bool = True) -> Decision:
    """The claim says the effect is large (``higher``) or small; the interval decides.

    higher: holds when low >= holds_at; does not hold when high < fails_at.
    not higher: holds when high <= holds_at; does not hold when low > fails_at.
    ``fails_at`` defaults to ``holds_at`` (one threshold); None for no failing side.
    """
    fails = holds_at if fails_at is None else fails_at
    f = (lambda v: f"{v:.2f}") if effect.unit == "x" else (lambda v: f"{v:.0%}")
    side = ">=" if higher else "<="
    if math.isnan(effect.value):
        return Decision(UNSURE, f"{effect.name} not measured")
    if effect.low is None or effect.high is None:
        return Decision(UNSURE, f"{effect.name}: one round, no interval to judge", 1)
    lo, hi = effect.low, effect.high
    if (lo >= holds_at) if higher else (hi <= holds_at):
        return Decision(HOLDS, f"the interval clears {side} {f(holds_at)}")
    if (hi < fails) if higher else (lo > fails):
        return Decision(FAILS, f"the interval clears the other side of {f(fails)}")
    # Straddling: which threshold is the interval across, and would more rounds settle it?
    target = holds_at if abs(effect.value - holds_at) <= abs(effect.value - fails) else fails
    between = (fails <= effect.value < holds_at) if higher else (holds_at < effect.value <= fails)
    if between and fails != holds_at:
        return Decision(UNSURE, f"{effect.name} {f(effect.value)} lies between the thresholds "
                        f"{f(fails)} and {f(holds_at)}", None)
    more = _more_rounds(effect, target)
    hint = (f"; about {more} more round(s) would likely decide it" if more is not None
            else "; more rounds are unlikely to decide it")
    return Decision(UNSURE, f"the interval [{f(lo)}, {f(hi)}] straddles {f(target)}{hint}",
                    more)


def all_of(*decisions: Decision) -> Decision:
    """Holds when every part holds; does not hold when one does not; else inconclusive."""
    for d in decisions:
        if d.verdict == FAILS:
            return d
    unsure = [d for d in decisions if d.verdict != HOLDS]
    if not unsure:
        return Decision(HOLDS, "; ".join(dict.fromkeys(d.reason for d in decisions)))
    # The part furthest from deciding speaks for all (None: more rounds will not do it).
    hardest = max(unsure, key=lambda d: math.inf if d.more_rounds is None else d.more_rounds)
    return Decision(UNSURE, hardest.reason, hardest.more_rounds)


def verdict(cid: str, text: str, decision: Decision, evidence: str,
            effect: Effect | None = None, verdict_override: str | None = None,
            why: str = "") -> Verdict:
    """A Verdict from a decision; ``verdict_override`` (with ``why``) for a busy machine."""
    final = verdict_override or decision.verdict
    reason = why or decision.reason
    if why and decision.verdict == UNSURE and final == UNSURE:
        reason = f"{why}; {decision.reason}"
    more = decision.more_rounds if final == UNSURE else None
    shown = evidence + (f"; {effect.text()}" if effect is not None else "")
    shown += f"; {final}: {reason}"
    return Verdict(cid, text, final, shown, asdict(effect) if effect is not None else None,
                   reason, more)


@dataclass(frozen=True)
class Sizes:
    duration_s: float
    warmup_s: float
    async_users: int  # concurrent I/O waits held by one async process
    sync_workers: int  # workers started to hold as many concurrent waits
    repeats: int  # rounds of every cell, alternated (the machine is noisy)
    io_ms: int = 100
    cpu_work: int = 100  # ~10 ms of pure-Python work
    db_pool: int = 5  # the pool that caps one Uvicorn process's database waits
    db_users: int = 50  # more users than the pool, so that the pool is the limit


QUICK = Sizes(duration_s=4, warmup_s=1, async_users=200, sync_workers=12, repeats=2)
FULL = Sizes(duration_s=20, warmup_s=5, async_users=1000, sync_workers=32, repeats=3)
BUSY_CORES = 0.5  # other work on the machine beyond this spoils a CPU-bound comparison


def _cell(**fields: Any) -> RunSpec:
    return RunSpec(**fields)


def plan(sizes: Sizes, cores: int) -> dict[str, RunSpec]:
    """The named cells the claims need, in the order they run (each round runs them all,
    so every pair alternates: A B A B ..., and a change on the machine hits both sides)."""
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
        "limit-2": dict(worker_class="sync", workers=2, cpus=1.0),
    }
    for name, fields in pairs.items():
        cells[name] = _cell(target="flask", users=4, **fields, **cpu)
    db_common: dict[str, Any] = dict(users=sizes.db_users, **common)
    cells.update({
        # Database waits through a pool of db_pool connections, users well above the pool.
        "db-pool": _cell(target="fastapi", scenario="db-sleep", io_ms=sizes.io_ms,
                         db_pool_size=sizes.db_pool, **db_common),
        # The same wait with the sync driver inside async def, against the async driver.
        "db-blocking": _cell(target="fastapi", scenario="db-blocking", io_ms=20, users=4,
                             **common),
        "db-async": _cell(target="fastapi", scenario="db-sleep", io_ms=20, users=4, **common),
        # /db at saturation, 2 workers under one CPU each side (the database shares the
        # service's cores); the same runs count the connections: workers x pool.
        "db-fastapi": _cell(target="fastapi", scenario="db", workers=2, cpus=1.0,
                            **db_common),
        "db-flask": _cell(target="flask", scenario="db", worker_class="gevent", workers=2,
                          cpus=1.0, **db_common),
    })
    return cells


def _busy(*groups: list[dict[str, Any]]) -> float:
    """The most work other than the service and Locust seen during these runs, in cores."""
    return max((float((r.get("machine") or {}).get("other_cores") or 0.0)
                for g in groups for r in g), default=0.0)


def _rps_list(runs: list[dict[str, Any]]) -> str:
    return "/".join(f"{r['rps']:,.1f}" for r in runs)


def _rps(runs: list[dict[str, Any]]) -> list[float]:
    return [float(r["rps"]) for r in runs]


def _ok(run: dict[str, Any] | None) -> bool:
    return bool(run) and run.get("status") == "ok" and bool(run.get("requests"))  # type: ignore[union-attr]


def _missing(cid: str, text: str, names: list[str], runs: Runs) -> Verdict | None:
    absent = [n for n in names if not cell_rounds(runs, n)]
    if not absent:
        return None
    reasons = "; ".join(
        f"{n}: {(runs.get(n) or {}).get('error', 'not measured')}" for n in absent
    )
    return Verdict(cid, text, UNSURE, f"runs missing or failed ({reasons})",
                   reason="runs missing or failed")


def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def async_io(runs: Runs, cores: int) -> Verdict:
    cid, text = "async-io-concurrency", (
        "one async process serves hundreds to thousands of concurrent I/O waits")
    if (v := _missing(cid, text, ["async-io"], runs)) is not None:
        return v
    rounds = cell_rounds(runs, "async-io")
    first = rounds[0]
    users, io_ms = first["users"], first["io_ms"] or 100
    share = mean_effect("in flight / users",
                        [client_in_flight(r) / r["users"] for r in rounds], "%")
    p50 = _med([r["latency_ms"]["p50"] for r in rounds])
    errors = sum(r["failures"] for r in rounds) / max(sum(r["requests"] for r in rounds), 1)
    busy = _busy(rounds)
    evidence = (f"1 Uvicorn process, {users} users waiting {io_ms} ms: "
                f"{_med(_rps(rounds)):,.0f} req/s (median), p50 {p50:g} ms, errors "
                f"{errors:.1%}; other work on the machine up to {busy:.2f} cores (holds: in "
                "flight >= 80% of users, p50 <= 1.5x the wait, errors < 1%; does not hold: "
                "in flight < 50% or errors >= 5%)")
    d = decide(share, 0.8, 0.5)
    if errors >= 0.05:
        d = Decision(FAILS, f"errors {errors:.1%} >= 5%")
    elif d.verdict == HOLDS and not (p50 <= 1.5 * io_ms and errors < 0.01):
        d = Decision(UNSURE, f"p50 {p50:g} ms above 1.5x the wait or errors >= 1%")
    if d.verdict != HOLDS and max(float((r.get("load") or {}).get("peak_cpu_percent", 0))
                                  for r in rounds) >= 90:
        return verdict(cid, text, d, evidence, share, UNSURE, "the load generator was saturated")
    return verdict(cid, text, d, evidence, share)


def loop_blocking(runs: Runs, cores: int) -> Verdict:
    cid, text = "event-loop-blocking", "CPU work on the event loop stalls every other request"
    if (v := _missing(cid, text, ["loop-blocking", "loop-threadpool"], runs)) is not None:
        return v
    blocking, pool = _pair(runs, "loop-blocking", "loop-threadpool")
    pb = [float(p) for r in blocking if (p := (r.get("probe_ms") or {}).get("p50")) is not None]
    pp = [max(float(p), 0.01) for r in pool
          if (p := (r.get("probe_ms") or {}).get("p50")) is not None]
    if not pb or not pp:
        return Verdict(cid, text, UNSURE, "no /healthz probe answered during the runs",
                       reason="no probe answered")
    work_ms = (blocking[0].get("cpu_work") or 100) * 0.1
    effect = ratio_effect("probe p50 on the loop / in the thread pool", pp, pb)
    evidence = (f"/healthz probe p50 while {blocking[0]['users']} users ran ~{work_ms:g} ms of "
                f"CPU work: {_med(pb):g} ms with the work in async def (on the loop) vs "
                f"{_med(pp):g} ms in a def endpoint (thread pool) (holds: ratio >= 2 and the "
                "probe >= half a work item; does not hold: < 1.2)")
    d = decide(effect, 2.0, 1.2)
    if d.verdict == HOLDS and _med(pb) < 0.5 * work_ms:
        d = Decision(UNSURE, f"the probe waited {_med(pb):g} ms, under half a work item")
    return verdict(cid, text, d, evidence, effect)


def sync_per_request(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-worker-per-request", (
        "a sync worker serves one request at a time: concurrency capped at workers x threads")
    if (v := _missing(cid, text, ["sync-2", "gthread-2x4"], runs)) is not None:
        return v
    parts, decisions, effects = [], [], []
    for name in ("sync-2", "gthread-2x4"):
        rounds = cell_rounds(runs, name)
        run = rounds[0]
        cap = run["workers"] * run["threads"]
        # Each request holds its worker (thread) for the wait: concurrency = rps × wait.
        held = [r["rps"] * (r["io_ms"] or 100) / 1000.0 for r in rounds]
        effect = mean_effect(f"{run['worker_class']} concurrency / cap",
                             [h / cap for h in held], "%")
        effects.append(effect)
        parts.append(f"{run['worker_class']} {run['workers']}x{run['threads']} with "
                     f"{run['users']} users: {_med(_rps(rounds)):,.1f} req/s = "
                     f"{_med(held):.1f} concurrent (cap {cap}), {effect.text()}")
        decisions += [decide(effect, 0.7, None), decide(effect, 1.1, 1.25, higher=False)]
    evidence = "; ".join(parts) + (" (holds: 70-110% of the cap with more users than the cap; "
                                   "does not hold: above 125%)")
    d = all_of(*decisions)
    worst = effects[1] if d.verdict == HOLDS else min(
        effects, key=lambda e: min(abs(e.value - 0.7), abs(e.value - 1.1)))
    return verdict(cid, text, d, evidence, worst)


def sync_memory(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-memory-per-concurrency", (
        "memory to hold N concurrent I/O requests: sync workers need far more than one async "
        "process")
    if (v := _missing(cid, text, ["sync-memory", "async-io"], runs)) is not None:
        return v
    sync, aio = _pair(runs, "sync-memory", "async-io")
    if not all((r.get("server") or {}).get("memory_bytes") for r in sync + aio):
        return Verdict(cid, text, UNSURE, "memory was not measured", reason="not measured")
    # Served requests (the server's own in-progress gauge), not the clients' queue.
    ps = [m for r in sync if (m := memory_per_request(r)) is not None]
    pa = [m for r in aio if (m := memory_per_request(r)) is not None]
    if not ps or not pa:
        return Verdict(cid, text, UNSURE, "requests in progress at the server were not sampled",
                       reason="not sampled")
    hs = _med([h for r in sync if (h := served(r)) is not None])
    ha = _med([h for r in aio if (h := served(r)) is not None])
    effect = ratio_effect("memory per served request, sync / async", pa, ps)
    evidence = (f"Gunicorn sync x{sync[0]['workers']}: serving {hs:.1f} requests at once, "
                f"{_med(ps) / 1e6:.2f} MB PSS each; 1 Uvicorn process: serving {ha:.1f}, "
                f"{_med(pa) / 1e6:.3f} MB each (served: the server's own "
                "http_requests_in_progress over the window; holds: >= 3x, does not hold: "
                "<= 1.5x)")
    return verdict(cid, text, decide(effect, 3.0, 1.5), evidence, effect)


def cpu_scales(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-scales-with-processes", (
        "CPU-bound throughput grows with worker processes up to the cores")
    if (v := _missing(cid, text, ["procs-1", "procs-n"], runs)) is not None:
        return v
    one, many = _pair(runs, "procs-1", "procs-n")
    n = many[0]["workers"]
    ideal = min(n, cores)
    need = 1 + 0.5 * (ideal - 1)
    effect = ratio_effect(f"rps {n} workers / 1 worker", _rps(one), _rps(many))
    busy = _busy(one, many)
    evidence = (f"Gunicorn sync, ~{(one[0]['cpu_work'] or 100) * 0.1:g} ms CPU per request: "
                f"1 worker {_rps_list(one)} req/s, {n} workers {_rps_list(many)} req/s on "
                f"{cores} cores; other work on the machine up to {busy:.2f} cores (holds: >= "
                f"{need:.2f}x, half the ideal gain; does not hold: < 1.15x; inconclusive when "
                f"other work exceeds {BUSY_CORES} cores)")
    d = decide(effect, need, 1.15)
    if ideal < 2:
        return verdict(cid, text, d, evidence, effect, UNSURE, "one core cannot show scaling")
    if d.verdict != HOLDS and busy > BUSY_CORES:
        return verdict(cid, text, d, evidence, effect, UNSURE,
                       f"the machine was busy ({busy:.2f} cores of other work)")
    return verdict(cid, text, d, evidence, effect)


def threads_not_parallel(runs: Runs, cores: int) -> Verdict:
    cid, text = "threads-not-parallel-cpu", (
        "threads do not speed up pure-Python CPU work (the GIL)")
    if (v := _missing(cid, text, ["threads-1", "threads-4"], runs)) is not None:
        return v
    one, four = _pair(runs, "threads-1", "threads-4")
    effect = ratio_effect(f"rps {four[0]['threads']} threads / 1 thread", _rps(one),
                          _rps(four))
    used = max(float((r.get("server") or {}).get("cpu_cores_used") or 0.0) for r in four)
    busy = _busy(one, four)
    evidence = (f"Gunicorn gthread, 1 worker: 1 thread {_rps_list(one)} req/s, "
                f"{four[0]['threads']} threads {_rps_list(four)} req/s; the threaded worker "
                f"used at most {used:.2f} cores of the {cores} it could; other work up to "
                f"{busy:.2f} cores (holds: ratio <= 1.2 and <= 1.2 cores used; does not hold: "
                f">= 1.5 or > 1.5 cores used)")
    d = decide(effect, 1.2, 1.5, higher=False)
    if cores < 2:
        return verdict(cid, text, d, evidence, effect, UNSURE, "one core cannot tell")
    if used > 1.5:
        return verdict(cid, text, d, evidence, effect, FAILS,
                       f"the threaded worker used {used:.2f} cores")
    if busy > BUSY_CORES and d.verdict != FAILS:
        # A starved worker gains nothing from threads either: no evidence about the GIL.
        return verdict(cid, text, d, evidence, effect, UNSURE,
                       f"the machine was busy ({busy:.2f} cores of other work)")
    if d.verdict == HOLDS and used > 1.2:
        return verdict(cid, text, d, evidence, effect, UNSURE,
                       f"the threaded worker used {used:.2f} cores, above 1.2")
    return verdict(cid, text, d, evidence, effect)


def limit_caps(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-limit-caps-scaling", (
        "more workers than the CPU limit buys nothing and shows throttling")
    if (v := _missing(cid, text, ["procs-1", "limit-2"], runs)) is not None:
        return v
    one, two = _pair(runs, "procs-1", "limit-2")
    limit = float(two[0]["cpus"])
    seen = (two[0].get("server") or {}).get("cpu_limit")
    # The ceiling the limit allows: limit / CPU cost of one request, measured with 1 worker
    # (the cpu-scales cell: one sync worker uses one core at most, with or without a limit).
    ceilings = [limit * r["requests"] / r["server"]["cpu_seconds"] for r in one
                if (r.get("server") or {}).get("cpu_seconds") and r["requests"]]
    shares = [s for r in two if (s := (r.get("server") or {}).get("throttled_share"))
              is not None]
    share = statistics.median(shares) if shares else None
    effect = ratio_effect(f"rps {two[0]['workers']} workers / the ceiling", ceilings,
                          _rps(two)) if ceilings else None
    ceiling_text = f"{_med(ceilings):,.1f}" if ceilings else "unknown"
    share_text = "unknown" if share is None else f"{share:.0%}"
    evidence = (f"Gunicorn sync: 1 worker (no limit) {_rps_list(one)} req/s, "
                f"{two[0]['workers']} workers under a {limit:g}-CPU limit {_rps_list(two)} "
                "req/s; the limit allows "
                f"{ceiling_text} req/s at the CPU cost measured with 1 worker; "
                f"{two[0]['workers']} workers throttled in {share_text} of periods; limit seen "
                f"by the service: {seen if seen is not None else 'unknown'} (holds: ratio to "
                f"the ceiling <= 1.15 and >= 5% throttled; does not hold: > 1.4 or no "
                f"throttling)")
    if not seen:
        return Verdict(cid, text, UNSURE, evidence + "; the CPU limit was not applied",
                       reason="the CPU limit was not applied")
    if effect is None or share is None:
        return Verdict(cid, text, UNSURE, evidence, reason="CPU time or throttling not measured")
    d = decide(effect, 1.15, 1.4, higher=False)
    if d.verdict == HOLDS and share < 0.05:
        d = Decision(UNSURE, f"throttled in {share:.0%} of periods, under 5%")
    busy = _busy(one, two)
    if d.verdict != HOLDS and busy > BUSY_CORES:
        return verdict(cid, text, d, evidence, effect, UNSURE,
                       f"the machine was busy ({busy:.2f} cores)")
    if share == 0.0:
        return verdict(cid, text, d, evidence, effect, FAILS, "no throttling at all")
    return verdict(cid, text, d, evidence, effect)


def db_pool_caps(runs: Runs, cores: int) -> Verdict:
    cid, text = "async-db-pool-caps-concurrency", (
        "an async process is only as concurrent as its database pool: P connections hold "
        "about P database waits, however many users wait")
    if (v := _missing(cid, text, ["db-pool"], runs)) is not None:
        return v
    rounds = cell_rounds(runs, "db-pool")
    first = rounds[0]
    pool, users, wait_ms = first["db_pool_size"], first["users"], first["io_ms"] or 100
    # Little's law on the database side: connections busy = throughput x the hold time.
    effect = mean_effect("database waits / pool",
                         [float(r["rps"]) * wait_ms / 1000.0 / pool for r in rounds])
    peak = max(int((r.get("database") or {}).get("connections_peak") or 0) for r in rounds)
    evidence = (f"1 Uvicorn process, pool {pool}, {users} users each holding a connection "
                f"{wait_ms} ms: {_med(_rps(rounds)):,.1f} req/s (median), database "
                f"connections at most {peak} (holds: waits 70-120% of the pool with users >= "
                f"4x the pool; does not hold: waits > 1.5x the pool)")
    if users < 4 * pool:
        return verdict(cid, text, Decision(UNSURE, "too few users to show the cap"), evidence,
                       effect)
    # Above 1.0 is the window's edges (requests begun before it): hence 1.2, not 1.0.
    d = all_of(decide(effect, 1.2, 1.5, higher=False), decide(effect, 0.7, 0.0))
    return verdict(cid, text, d, evidence, effect)


def sync_driver_blocks(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-driver-blocks-loop", (
        "a sync database driver inside async def stalls the event loop, as CPU work does")
    if (v := _missing(cid, text, ["db-blocking", "db-async"], runs)) is not None:
        return v
    blocking, good = _pair(runs, "db-blocking", "db-async")
    probes = [[(r.get("probe_ms") or {}).get("p50") for r in side] for side in (blocking, good)]
    if any(p is None for side in probes for p in side):
        return Verdict(cid, text, UNSURE, "no /healthz probe answered during the runs",
                       reason="no probe answered")
    pb, pa = ([float(p) for p in side if p is not None] for side in probes)
    wait_ms = blocking[0]["io_ms"] or 20
    effect = ratio_effect("/healthz p50, sync driver / async driver",
                          [max(p, 0.01) for p in pa], pb)
    evidence = (f"/healthz probe p50 while {blocking[0]['users']} users held the database "
                f"{wait_ms} ms each: {_med(pb):g} ms with the sync driver in async def vs "
                f"{_med(pa):g} ms with the async driver (medians); {_med(_rps(blocking)):,.1f} "
                f"against {_med(_rps(good)):,.1f} req/s (holds: >= 2x and >= half a wait; does "
                f"not hold: < 1.2x)")
    d = decide(effect, 2.0, 1.2)
    if d.verdict == HOLDS and _med(pb) < 0.5 * wait_ms:
        d = Decision(UNSURE, f"the stall {_med(pb):g} ms is under half a wait")
    return verdict(cid, text, d, evidence, effect)


def connections_multiply(runs: Runs, cores: int) -> Verdict:
    cid, text = "connections-multiply-with-workers", (
        "the database sees workers x pool size connections: pools are per process")
    names = ["db-fastapi", "db-flask"]
    if (v := _missing(cid, text, names, runs)) is not None:
        return v
    parts, per_cell = [], []
    for name in names:
        rounds = cell_rounds(runs, name)
        first = rounds[0]
        expected = first["workers"] * first["db_pool_size"]
        counted = [(r.get("database") or {}).get("connections_peak") for r in rounds]
        if None in counted:
            return Verdict(cid, text, UNSURE, "the database's connections were not counted",
                           reason="connections not counted")
        peaks = [int(p) for p in counted if p is not None]
        per_cell.append([p / expected for p in peaks])
        parts.append(f"{first['worker_class']} x{first['workers']}, pool "
                     f"{first['db_pool_size']} per process: {'/'.join(map(str, peaks))} "
                     f"connections (expected {expected})")
    # Per round, the cell farthest from workers x pool speaks for both.
    shares = [max(col, key=lambda v: abs(v - 1.0)) for col in zip(*per_cell, strict=False)]
    effect = mean_effect("connections / (workers x pool)", shares)
    evidence = "; ".join(parts) + (" (holds: exactly workers x pool in every round; does not "
                                   "hold: off by more than 10%)")
    if any(abs(v - 1.0) > 0.1 for col in per_cell for v in col):
        d = Decision(FAILS, "a round was off by more than 10%")
    elif len(shares) < 2:
        d = Decision(UNSURE, "one round, no interval to judge", 1)
    elif all(v == 1.0 for col in per_cell for v in col):
        d = Decision(HOLDS, "every round counted exactly workers x pool")
    else:
        d = Decision(UNSURE, "within 10% but not exact")
    return verdict(cid, text, d, evidence, effect)


def db_bound(runs: Runs, cores: int) -> Verdict:
    cid, text = "db-bound-throughput", (
        "at saturation on /db the database, not the framework, is the limit: both stacks "
        "serve about the same rate")
    if (v := _missing(cid, text, ["db-fastapi", "db-flask"], runs)) is not None:
        return v
    fa, fl = _pair(runs, "db-fastapi", "db-flask")

    def share(run: dict[str, Any]) -> float | None:
        db_cores = (run.get("database") or {}).get("cpu_cores_used")
        svc = (run.get("server") or {}).get("cpu_cores_used")
        if db_cores is None or not svc:
            return None
        return float(db_cores) / (float(db_cores) + float(svc))

    shares = [share(r) for r in fa + fl]
    if None in shares:
        return Verdict(cid, text, UNSURE, "the database's CPU was not measured",
                       reason="database CPU not measured")
    db_share = _med([s for s in shares if s is not None])
    effect = ratio_effect("FastAPI / Flask gevent on /db", _rps(fl), _rps(fa))
    busy = _busy(fa, fl)
    evidence = (f"/db with {fa[0]['users']} users, each service on a {fa[0]['cpus']:g}-CPU "
                f"limit beside the database: FastAPI {_med(_rps(fa)):,.0f} req/s, Flask gevent "
                f"{_med(_rps(fl)):,.0f} req/s (medians); the database took {db_share:.0%} of the "
                f"CPU the service and it used (holds: the ratio within 0.8-1.25x and the "
                f"database >= 40% of the CPU; does not hold: outside 0.67-1.5x, the framework "
                f"decides)")
    d = all_of(decide(effect, 0.8, 0.67), decide(effect, 1.25, 1.5, higher=False))
    if d.verdict == HOLDS and db_share < 0.4:
        d = Decision(UNSURE, f"the database took only {db_share:.0%} of the CPU")
    if d.verdict != HOLDS and busy > BUSY_CORES:
        return verdict(cid, text, d, evidence, effect, UNSURE,
                       f"the machine was busy ({busy:.2f} cores)")
    return verdict(cid, text, d, evidence, effect)


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
    table.add_column("claim", no_wrap=True)  # ids whole: CI and users grep for them
    table.add_column("verdict", no_wrap=True)
    table.add_column("effect [95%]")
    table.add_column("evidence")
    colour = {HOLDS: "green", FAILS: "red", UNSURE: "yellow"}
    for v in verdicts:
        e = v.effect
        size = "-" if not e else (
            f"{e['value']:.2f}" + (f" [{e['low']:.2f}, {e['high']:.2f}]"
                                   if e.get("low") is not None else " (1 round)"))
        more = f"\n{v.more_rounds} more round(s) likely decide" if v.more_rounds else ""
        table.add_row(v.id, f"[{colour[v.verdict]}]{v.verdict}[/]{more}", size, v.evidence)
    Console(width=max(120, Console().width)).print(table)


def claims_command(args: argparse.Namespace) -> int:
    from loadlab.report.html import write_report
    from loadlab.report.results import atomic_write
    from loadlab.runner.options import OptionError, parse_rounds
    from loadlab.runner.runtime import available_cores, runtime_for
    from loadlab.runner.session import StartError, run_cells

    cores = len(available_cores()) or (os.cpu_count() or 1)
    sizes = QUICK if args.quick else FULL
    cells = plan(sizes, cores)
    rounds, until_ci = parse_rounds(
        args.rounds if args.rounds is not None else (
            None if args.until_ci is not None else sizes.repeats), args.until_ci)
    out = Path(args.out)
    runtime = runtime_for(args.runtime)
    try:
        outcome = run_cells(list(cells.values()), out, runtime, resume=False, write_report=False,
                            rounds=rounds, until_ci=until_ci)
    except StartError as exc:
        raise OptionError(str(exc)) from None
    verdicts = judge(runs_by_name(cells, outcome.results.runs), cores)
    atomic_write(out / "claims.json",
                 json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    print_table(verdicts)
    print(f"claims: {out / 'claims.json'}")
    print(f"report: {write_report(out)}")
    return 130 if outcome.interrupted else 0
