"""Claims on the free-threaded build (CPython 3.13t, PEP 703): threads run pure-Python CPU
work in parallel there, as they do not with the GIL, and one thread pays for it. The
cells run the same Gunicorn gthread worker on both interpreters (``RunSpec.python``);
without the free-threaded interpreter the claims say it was not measured and why."""

from __future__ import annotations

from typing import Any

from loadlab.claims.claim import Cell, Claim, Reading, Sizes
from loadlab.claims.cpu import THREADS_1, THREADS_2
from loadlab.claims.verdicts import (
    BUSY_CORES,
    FAILS,
    UNSURE,
    Decision,
    Verdict,
    all_of,
    busy_machine,
    decide,
    other_work,
    rps_ratio,
    rps_text,
)
from loadlab.runner.options import RunSpec

NOT_BUILT = "the free-threaded interpreter is not built (bash .ci/build-python-ft)"


def ft_missing() -> str | None:
    """Why the free-threaded cells cannot run here, or None."""
    from loadlab.servers import ServeError, ft_python

    try:
        ft_python()
    except ServeError:
        return NOT_BUILT
    return None


def _gthread_cpu(s: Sizes, cores: int, threads: int, python: str) -> RunSpec:
    """One Gunicorn gthread worker on ``/cpu``, all cores free, 4 users (every thread busy)."""
    return RunSpec(target="flask", users=4, worker_class="gthread", workers=1, threads=threads,
                   cpus=float(cores), python=python, **s.cpu())


# THREADS_1 and THREADS_2 (cpu.py) are the normal build's one and two threads.
FT_THREADS_1 = Cell("ft-threads-1", lambda s, cores: _gthread_cpu(s, cores, 1, "ft"),
                    ft_missing)
FT_THREADS_2 = Cell("ft-threads-2", lambda s, cores: _gthread_cpu(s, cores, 2, "ft"),
                    ft_missing)


def gil_enabled(run: dict[str, Any]) -> bool | None:
    """Whether the GIL was on inside a request of this run (the service's /info), or None."""
    for where in (run, run.get("server") or {}, run.get("python") or {}):
        value = where.get("gil_enabled") if isinstance(where, dict) else None
        if isinstance(value, bool):
            return value
    return None


def _parallel(seen: Reading) -> Verdict:
    g1, g2 = seen.rounds(THREADS_1), seen.rounds(THREADS_2)
    f1, f2 = seen.rounds(FT_THREADS_1), seen.rounds(FT_THREADS_2)
    ft = rps_ratio("rps 2 threads / 1, free-threaded", f1, f2)
    gil = rps_ratio("rps 2 threads / 1, with the GIL", g1, g2)
    busy = other_work(g1, g2, f1, f2)
    gil_on = [gil_enabled(r) for r in f1 + f2]
    evidence = (f"Gunicorn gthread, 1 worker, ~{(g1[0].get('cpu_work') or 100) * 0.1:g} ms "
                f"CPU per request on {seen.cores} cores: free-threaded 1 thread "
                f"{rps_text(f1)} req/s, 2 threads {rps_text(f2)} req/s, {ft.text()}; with the "
                f"GIL 1 thread {rps_text(g1)}, 2 threads {rps_text(g2)}; other work up to "
                f"{busy:.2f} cores ({seen.bands(busy_cores=BUSY_CORES)})")
    d = all_of(decide(ft, 1.5, 1.15), decide(gil, 1.2, 1.5, higher=False))
    if seen.cores < 2:
        return seen.verdict(d, evidence, ft, UNSURE, "one core cannot show parallel threads")
    if any(g is True for g in gil_on):
        return seen.verdict(d, evidence, ft, UNSURE,
                            "the GIL was on inside a request of the free-threaded service")
    if why := busy_machine(d, busy):
        return seen.verdict(d, evidence, ft, UNSURE, why)
    # The effect shown is the free-threaded one, unless the GIL side decided against.
    gil_fails = decide(gil, 1.2, 1.5, higher=False).verdict == FAILS
    return seen.verdict(d, evidence, gil if gil_fails else ft)


FREE_THREADING_PARALLEL_CPU = Claim(
    id="free-threading-parallel-cpu",
    text=("one gthread worker with 2 threads on 2 cores serves CPU-bound work about 2x one "
          "thread on the free-threaded build, about 1x with the GIL"),
    cells=(THREADS_1, THREADS_2, FT_THREADS_1, FT_THREADS_2),
    judge=_parallel,
    holds="free-threaded 2 threads / 1 >= 1.50x and with the GIL <= 1.20x",
    fails="free-threaded < 1.15x or with the GIL >= 1.50x",
    unsure=("other work exceeds {busy_cores} cores, one core, or the GIL was on inside a "
            "free-threaded request"),
)


def _single_cost(seen: Reading) -> Verdict:
    g1, f1 = seen.rounds(THREADS_1), seen.rounds(FT_THREADS_1)
    # Time per request, free-threaded / normal build = rps normal / rps free-threaded.
    effect = rps_ratio("time per request, free-threaded / with the GIL", f1, g1)
    busy = other_work(g1, f1)
    evidence = (f"Gunicorn gthread, 1 worker, 1 thread, ~{(g1[0].get('cpu_work') or 100) * 0.1:g}"
                f" ms CPU per request: with the GIL {rps_text(g1)} req/s, free-threaded "
                f"{rps_text(f1)} req/s; other work up to {busy:.2f} cores "
                f"({seen.bands(busy_cores=BUSY_CORES)})")
    d = decide(effect, 1.05, 1.0)
    if any(gil_enabled(r) is True for r in f1):
        return seen.verdict(d, evidence, effect, UNSURE,
                            "the GIL was on inside a request of the free-threaded service")
    if why := busy_machine(d, busy):
        return seen.verdict(d, evidence, effect, UNSURE, why)
    if d.verdict == FAILS:
        d = Decision(FAILS, d.reason + ": the free-threaded build is not slower here")
    return seen.verdict(d, evidence, effect)


FREE_THREADING_SINGLE_THREAD_COST = Claim(
    id="free-threading-single-thread-cost",
    text=("the same CPU-bound work single-threaded costs more on the free-threaded build "
          "(the ratio, with its interval)"),
    cells=(THREADS_1, FT_THREADS_1),
    judge=_single_cost,
    holds="time per request free-threaded / with the GIL >= 1.05x",
    fails="< 1.00x (the free-threaded build faster)",
    unsure="other work exceeds {busy_cores} cores or the GIL was on",
)


CLAIMS = (FREE_THREADING_PARALLEL_CPU, FREE_THREADING_SINGLE_THREAD_COST)
