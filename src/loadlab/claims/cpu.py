"""Claims on CPU-bound work: processes scale it up to the cores, threads do not (the GIL),
and a CPU limit caps it however many workers run. Each needs a quiet machine: a verdict
says so when other work took more than ``BUSY_CORES``."""

from __future__ import annotations

import statistics

from loadlab.claims.claim import Cell, Claim, Reading, Sizes
from loadlab.claims.verdicts import (
    BUSY_CORES,
    FAILS,
    HOLDS,
    UNSURE,
    Decision,
    Verdict,
    busy_machine,
    ceiling_series,
    decide,
    median,
    other_work,
    ratio_effect,
    rps_of,
    rps_ratio,
    rps_text,
    same_rounds,
    series_of,
)
from loadlab.runner.options import RunSpec


def _flask_cpu(s: Sizes, worker_class: str, workers: int, cpus: float,
               threads: int = 1) -> RunSpec:
    """Gunicorn on ``/cpu`` with 4 users: enough to keep every worker (thread) busy."""
    return RunSpec(target="flask", users=4, worker_class=worker_class, workers=workers,
                   threads=threads, cpus=cpus, **s.cpu())


PROCS_1 = Cell("procs-1", lambda s, cores: _flask_cpu(s, "sync", 1, float(cores)))
PROCS_N = Cell("procs-n", lambda s, cores: _flask_cpu(s, "sync", max(cores, 2), float(cores)))


def _cpu_scales(seen: Reading) -> Verdict:
    one, many = seen.rounds(PROCS_1), seen.rounds(PROCS_N)
    cores = seen.cores
    n = many[0]["workers"]
    ideal = min(n, cores)
    need = 1 + 0.5 * (ideal - 1)
    effect = rps_ratio(f"rps {n} workers / 1 worker", one, many)
    busy = other_work(one, many)
    evidence = (f"Gunicorn sync, ~{(one[0]['cpu_work'] or 100) * 0.1:g} ms CPU per request: "
                f"1 worker {rps_text(one)} req/s, {n} workers {rps_text(many)} req/s on "
                f"{cores} cores; other work on the machine up to {busy:.2f} cores "
                f"({seen.bands(need=need, busy_cores=BUSY_CORES)})")
    d = decide(effect, need, 1.15)
    if ideal < 2:
        return seen.verdict(d, evidence, effect, UNSURE, "one core cannot show scaling")
    if why := busy_machine(d, busy):
        return seen.verdict(d, evidence, effect, UNSURE, why)
    return seen.verdict(d, evidence, effect)


CPU_SCALES_WITH_PROCESSES = Claim(
    id="cpu-scales-with-processes",
    text="CPU-bound throughput grows with worker processes up to the cores",
    cells=(PROCS_1, PROCS_N),
    judge=_cpu_scales,
    holds=">= {need:.2f}x, half the ideal gain",
    fails="< 1.15x",
    unsure="other work exceeds {busy_cores} cores",
)


THREADS_1 = Cell("threads-1", lambda s, cores: _flask_cpu(
    s, "gthread", 1, float(cores), threads=1))
# Two threads on the (at least) two cores: as many as could run at once if the GIL let
# them. The free-threaded claim reads the same cell as its normal-build side.
THREADS_2 = Cell("threads-2", lambda s, cores: _flask_cpu(
    s, "gthread", 1, float(cores), threads=2))


def _threads_not_parallel(seen: Reading) -> Verdict:
    one, many = seen.rounds(THREADS_1), seen.rounds(THREADS_2)
    cores = seen.cores
    effect = rps_ratio(f"rps {many[0]['threads']} threads / 1 thread", one, many)
    used = max(float((r.get("server") or {}).get("cpu_cores_used") or 0.0) for r in many)
    busy = other_work(one, many)
    evidence = (f"Gunicorn gthread, 1 worker: 1 thread {rps_text(one)} req/s, "
                f"{many[0]['threads']} threads {rps_text(many)} req/s; the threaded worker "
                f"used at most {used:.2f} cores of the {cores} it could; other work up to "
                f"{busy:.2f} cores ({seen.bands()})")
    d = decide(effect, 1.2, 1.5, higher=False)
    if cores < 2:
        return seen.verdict(d, evidence, effect, UNSURE, "one core cannot tell")
    if used > 1.5:
        return seen.verdict(d, evidence, effect, FAILS,
                            f"the threaded worker used {used:.2f} cores")
    if busy > BUSY_CORES and d.verdict != FAILS:
        # A starved worker gains nothing from threads either: no evidence about the GIL.
        return seen.verdict(d, evidence, effect, UNSURE,
                            f"the machine was busy ({busy:.2f} cores of other work)")
    if d.verdict == HOLDS and used > 1.2:
        return seen.verdict(d, evidence, effect, UNSURE,
                            f"the threaded worker used {used:.2f} cores, above 1.2")
    return seen.verdict(d, evidence, effect)


THREADS_NOT_PARALLEL_CPU = Claim(
    id="threads-not-parallel-cpu",
    text="threads do not speed up pure-Python CPU work (the GIL)",
    cells=(THREADS_1, THREADS_2),
    judge=_threads_not_parallel,
    holds="ratio <= 1.2 and <= 1.2 cores used",
    fails=">= 1.5 or > 1.5 cores used",
)


LIMIT_2 = Cell("limit-2", lambda s, cores: _flask_cpu(s, "sync", 2, 1.0))


def _limit_caps(seen: Reading) -> Verdict:
    # The 1-worker cell of cpu-scales-with-processes gives the CPU cost of one request.
    one, two = seen.rounds(PROCS_1), seen.rounds(LIMIT_2)
    limit = float(two[0]["cpus"])
    seen_limit = (two[0].get("server") or {}).get("cpu_limit")
    # The ceiling the limit allows: limit / CPU cost of one request, measured with 1 worker
    # (the cpu-scales cell: one sync worker uses one core at most, with or without a limit).
    ceilings = [limit * r["requests"] / r["server"]["cpu_seconds"] for r in one
                if (r.get("server") or {}).get("cpu_seconds") and r["requests"]]
    shares = [s for r in two if (s := (r.get("server") or {}).get("throttled_share"))
              is not None]
    share = statistics.median(shares) if shares else None
    p1, p2 = same_rounds(one, two)
    effect = ratio_effect(f"rps {two[0]['workers']} workers / the ceiling", ceilings,
                          rps_of(two), ceiling_series(p1, limit),
                          series_of(p2), paired=True) if ceilings else None
    ceiling_text = f"{median(ceilings):,.1f}" if ceilings else "unknown"
    share_text = "unknown" if share is None else f"{share:.0%}"
    evidence = (f"Gunicorn sync: 1 worker (no limit) {rps_text(one)} req/s, "
                f"{two[0]['workers']} workers under a {limit:g}-CPU limit {rps_text(two)} "
                "req/s; the limit allows "
                f"{ceiling_text} req/s at the CPU cost measured with 1 worker; "
                f"{two[0]['workers']} workers throttled in {share_text} of periods; limit seen "
                f"by the service: {seen_limit if seen_limit is not None else 'unknown'} "
                f"({seen.bands()})")
    if not seen_limit:
        return seen.unsure(evidence + "; the CPU limit was not applied",
                           "the CPU limit was not applied")
    if effect is None or share is None:
        return seen.unsure(evidence, "CPU time or throttling not measured")
    d = decide(effect, 1.15, 1.4, higher=False)
    if d.verdict == HOLDS and share < 0.05:
        d = Decision(UNSURE, f"throttled in {share:.0%} of periods, under 5%")
    busy = other_work(one, two)
    if why := busy_machine(d, busy, "cores"):
        return seen.verdict(d, evidence, effect, UNSURE, why)
    if share == 0.0:
        return seen.verdict(d, evidence, effect, FAILS, "no throttling at all")
    return seen.verdict(d, evidence, effect)


CPU_LIMIT_CAPS_SCALING = Claim(
    id="cpu-limit-caps-scaling",
    text="more workers than the CPU limit buys nothing and shows throttling",
    cells=(PROCS_1, LIMIT_2),
    judge=_limit_caps,
    holds="ratio to the ceiling <= 1.15 and >= 5% throttled",
    fails="> 1.4 or no throttling",
)


CLAIMS = (CPU_SCALES_WITH_PROCESSES, THREADS_NOT_PARALLEL_CPU, CPU_LIMIT_CAPS_SCALING)
