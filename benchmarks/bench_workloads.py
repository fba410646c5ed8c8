"""What one unit of ``cpu_work`` costs on this machine, and whether the cost is linear.

    .venv/bin/python benchmarks/bench_workloads.py [--repeats 7] [--cpu N]
    /opt/loadlab-python-ft/venv/bin/python benchmarks/bench_workloads.py --threads 2

``--threads T`` instead times T threads each doing the same work against one thread,
alternated within each round: about 1x on a free-threaded build whose threads run in
parallel, about Tx with the GIL. The median of the per-round ratios is printed.

Sizes are interleaved within each round (noise hits them all alike). On a shared machine
other processes only ever add time, so the fastest run of each size is the cleanest
figure: the slope of a least-squares line through those gives the cost of a unit, its
intercept the fixed cost of a call. Medians are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time

from loadlab.workloads import UNIT_ITERATIONS, cpu_work

SIZES = (50, 100, 200, 400, 800)


def measure(repeats: int) -> dict[int, list[float]]:
    seconds: dict[int, list[float]] = {n: [] for n in SIZES}
    cpu_work(SIZES[0])  # warm up
    for round_ in range(repeats):
        order = SIZES if round_ % 2 == 0 else tuple(reversed(SIZES))
        for n in order:
            started = time.perf_counter()
            cpu_work(n)
            seconds[n].append(time.perf_counter() - started)
    return seconds


def threads_ratio(threads: int, repeats: int, units: int = 2000) -> list[float]:
    """Per round: the time of ``threads`` threads each running ``cpu_work(units)`` / one's."""

    def timed(n: int) -> float:
        workers = [threading.Thread(target=cpu_work, args=(units,)) for _ in range(n)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - started

    cpu_work(SIZES[0])  # warm up
    ratios = []
    for round_ in range(repeats):
        if round_ % 2 == 0:
            one = timed(1)
            many = timed(threads)
        else:
            many = timed(threads)
            one = timed(1)
        ratios.append(many / one)
    return ratios


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of seconds against units."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core")
    parser.add_argument("--threads", type=int, default=None,
                        help="time this many threads against one instead")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.threads is not None:
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        ratios = threads_ratio(args.threads, args.repeats)
        print(f"python {platform.python_version()}, GIL {'on' if gil else 'off'}, "
              f"{os.cpu_count()} cores: {args.threads} threads / 1 thread, time for the same "
              f"work each: median {statistics.median(ratios):.2f}x "
              f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")
        return 0
    seconds = measure(args.repeats)
    print(f"python {platform.python_version()} on {platform.processor() or platform.machine()}, "
          f"{UNIT_ITERATIONS} LCG steps per unit, {args.repeats} rounds")
    best = {n: min(runs) for n, runs in seconds.items()}
    for n, runs in seconds.items():
        print(f"  work={n:<4} fastest {best[n] * 1000:8.2f} ms ({best[n] / n * 1000:.4f} ms/unit)"
              f"  median {statistics.median(runs) * 1000:8.2f} ms")
    slope, intercept = fit(list(best.items()))
    linearity = (best[SIZES[-1]] / SIZES[-1]) / (best[SIZES[0]] / SIZES[0])
    print(f"fit: {slope * 1000:.4f} ms per unit, {intercept * 1e6:+.0f} us per call; "
          f"per-unit cost at work={SIZES[-1]} / at work={SIZES[0]}: {linearity:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
