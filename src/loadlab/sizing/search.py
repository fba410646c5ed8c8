"""Each candidate's capacity within the target, and each branch walked until more workers
no longer help. ``measure`` is injected (``command`` runs real rounds; the tests give
known curves), so the search itself is plain arithmetic.

Capacity: the highest arrival rate (open model) whose point meets the target. A point is
``rounds`` runs at one rate; it meets the target when the median over its rounds of the
target's percentile (latency from the intended send time) and of the error rate do.
The search ramps (doubling up from a start, or halving down when the start misses), then
bisects between the last rate met and the first missed. The capacity reported is the
throughput served at the last rate met, median of its rounds, with the rounds' interval.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadlab import stats
from loadlab.report.fit import fit
from loadlab.sizing.candidates import Branch, Candidate
from loadlab.sizing.slo import Slo

MIN_RATE = 1.0
MIN_ROUNDS_TO_JUDGE = 3  # as --until-ci (runner.session.MIN_ROUNDS_FOR_CI)


@dataclass(frozen=True)
class Point:
    """One rate measured in rounds."""

    rate: float
    rps: list[float]             # served per round
    latency_ms: list[float]      # the target's percentile per round
    error_rate: list[float]
    met: bool
    bottleneck: str | None = None  # the verdict of the point's last round
    evidence: str | None = None
    results: str | None = None   # where its runs were written

    def typical(self, values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate, 2), "met": self.met,
            "rps": self.typical(self.rps), "rps_rounds": self.rps,
            "latency_ms": self.typical(self.latency_ms), "error_rate": self.typical(
                self.error_rate), "bottleneck": self.bottleneck, "evidence": self.evidence,
            "results": self.results,
        }


Measure = Callable[[Candidate, float], Point]


def judge(slo: Slo, rate: float, rps: list[float], latency_ms: list[float],
          error_rate: list[float]) -> bool:
    """A point meets the target when its medians do (no measurement: it does not)."""
    if not rps or not latency_ms or not error_rate:
        return False
    return slo.judge(statistics.median(latency_ms), statistics.median(error_rate))


@dataclass
class Outcome:
    """One candidate's search: its points in the order measured, and its capacity."""

    candidate: Candidate
    points: list[Point] = field(default_factory=list)
    capacity: float | None = None      # served req/s at the highest rate met
    ci: tuple[float, float] | None = None
    rate_met: float | None = None      # highest arrival rate met
    rate_missed: float | None = None   # lowest arrival rate missed above it
    stopped: str = ""                  # why the search ended where it did

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "label": c.label(), "worker_class": c.worker_class, "workers": c.workers,
            "threads": c.threads, "db_pool_size": c.db_pool_size,
            "capacity_rps": None if self.capacity is None else round(self.capacity, 2),
            "ci": None if self.ci is None else [round(self.ci[0], 2), round(self.ci[1], 2)],
            "rate_met": self.rate_met, "rate_missed": self.rate_missed,
            "stopped": self.stopped, "points": [p.as_dict() for p in self.points],
        }


def capacity(candidate: Candidate, measure: Measure, slo: Slo, start_rate: float,
             max_rate: float, steps: int) -> Outcome:
    """Ramp, then bisect ``steps`` times, for one candidate."""
    out = Outcome(candidate)

    def at(rate: float) -> Point:
        point = measure(candidate, rate)
        out.points.append(point)
        return point

    rate = max(min(start_rate, max_rate), MIN_RATE)
    first = at(rate)
    met: Point | None = first if first.met else None
    missed: Point | None = None if first.met else first
    if first.met:
        while rate < max_rate:
            rate = min(rate * 2, max_rate)
            point = at(rate)
            if not point.met:
                missed = point
                break
            met = point
    else:
        while rate > MIN_RATE:
            rate = max(rate / 2, MIN_RATE)
            point = at(rate)
            if point.met:
                met = point
                break
            missed = point
    if met is None:
        out.stopped = (f"missed the target even at {missed.rate:g} req/s"
                       if missed else "nothing measured")
        out.rate_missed = missed.rate if missed else None
        return out
    if missed is None:
        out.stopped = f"met the target up to --max-rate {max_rate:g} req/s"
    else:
        for _ in range(steps):
            if missed.rate - met.rate <= max(1.0, 0.02 * met.rate):
                break
            point = at(_round_rate((met.rate + missed.rate) / 2))
            if point.met:
                met = point
            else:
                missed = point
        out.stopped = (f"{missed.rate:g} req/s missed the target"
                       + (f" ({missed.evidence})" if missed.evidence else ""))
        out.rate_missed = missed.rate
    out.rate_met = met.rate
    out.capacity = statistics.median(met.rps) if met.rps else None
    out.ci = stats.median_ci(met.rps)
    return out


def _round_rate(rate: float) -> float:
    """Bisection midpoints to a whole request per second (two decimals below 10)."""
    return float(round(rate)) if rate >= 10 else round(rate, 2)


def significantly_above(a: Outcome, b: Outcome) -> bool:
    """Whether ``a`` serves more than ``b`` beyond both intervals (with one round a point,
    no interval: by more than 5%, the figures alone)."""
    if a.capacity is None:
        return False
    if b.capacity is None:
        return True
    if a.ci is None or b.ci is None:
        return a.capacity > 1.05 * b.capacity
    return a.ci[0] > b.ci[1]


@dataclass
class BranchWalk:
    branch: Branch
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str = ""
    fit: str | None = None


def walk_branch(branch: Branch, workers: Sequence[int], measure: Measure, slo: Slo,
                start_rate: float, max_rate: float, steps: int,
                ceiling: float | None = None) -> BranchWalk:
    """Measure the branch's worker counts upwards; stop when adding workers no longer
    helps: the last step was not significantly better, or the USL fit along the workers
    puts the peak below the next count. ``ceiling``: the best capacity seen so far, where
    the ramp starts from (halved) so a branch does not climb from the bottom again."""
    walk = BranchWalk(branch)
    for i, n in enumerate(workers):
        start = start_rate if ceiling is None else max(start_rate, ceiling / 2)
        outcome = capacity(Candidate(branch, n), measure, slo, start, max_rate, steps)
        walk.outcomes.append(outcome)
        if outcome.capacity is not None:
            ceiling = max(ceiling or 0.0, outcome.capacity)
        if i + 1 >= len(workers):
            walk.stopped = f"measured every worker count planned ({', '.join(map(str, workers))})"
            break
        nxt = workers[i + 1]
        measured = [o for o in walk.outcomes if o.capacity]
        if len(measured) >= 2 and not significantly_above(measured[-1], measured[-2]):
            less = (measured[-1].capacity or 0.0) < (measured[-2].capacity or 0.0)
            how = "less than" if less else "no more than"
            a_ci, b_ci = measured[-1].ci, measured[-2].ci
            overlap = ("" if a_ci is None or b_ci is None or (less and a_ci[1] < b_ci[0])
                       else " (the intervals overlap)")
            walk.stopped = (f"{measured[-1].candidate.workers} workers served {how} "
                            f"{measured[-2].candidate.workers}{overlap}: {nxt} not tried")
            break
        if len(measured) >= 3:
            # Every round at each count's highest rate met is one observation.
            rounds = [(float(o.candidate.workers), x) for o in measured
                      for p in o.points if p.rate == o.rate_met for x in p.rps]
            ns, xs = [n for n, _ in rounds], [x for _, x in rounds]
            law = fit(ns, xs, "usl")
            if law is not None:
                walk.fit = law.describe()
                if law.peak_n is not None and law.peak_n < nxt:
                    walk.stopped = (f"the USL fit puts the peak at N*={law.peak_n:.1f} "
                                    f"workers: {nxt} not tried")
                    break
        if outcome.capacity is None and walk.outcomes[0].capacity is None and i >= 1:
            walk.stopped = "no worker count met the target: more not tried"
            break
    return walk


@dataclass(frozen=True)
class Recommendation:
    best: Outcome | None
    runner_up: Outcome | None
    difference: float | None
    difference_ci: tuple[float, float] | None
    significant: bool
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "best": None if self.best is None else self.best.candidate.label(),
            "best_capacity_rps": None if self.best is None else self.best.capacity,
            "best_ci": None if self.best is None or self.best.ci is None else list(self.best.ci),
            "runner_up": None if self.runner_up is None else self.runner_up.candidate.label(),
            "runner_up_capacity_rps": None if self.runner_up is None
            else self.runner_up.capacity,
            "difference_rps": self.difference,
            "difference_ci": None if self.difference_ci is None
            else [round(v, 2) for v in self.difference_ci],
            "significant": self.significant, "met": self.best is not None,
            "sentence": self.sentence,
        }


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def _ci(ci: tuple[float, float] | None) -> str:
    return f" [{_rate(ci[0])}, {_rate(ci[1])}]" if ci else ""


def difference_ci(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Interval of median(a) − median(b): seeded bootstrap of both sides' medians."""
    import numpy as np

    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(stats.SEED)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    da = np.median(rng.choice(xa, size=(stats.RESAMPLES, len(xa))), axis=1)
    db = np.median(rng.choice(xb, size=(stats.RESAMPLES, len(xb))), axis=1)
    tail = (1 - stats.LEVEL) / 2
    low, high = np.quantile(da - db, [tail, 1 - tail])
    return float(low), float(high)


def recommend(outcomes: Sequence[Outcome], slo: Slo, cpus: float) -> Recommendation:
    ranked = sorted((o for o in outcomes if o.capacity is not None),
                    key=lambda o: -(o.capacity or 0.0))
    if not ranked:
        return Recommendation(None, None, None, None, False,
                              f"No configuration within {cpus:g} CPUs meets {slo} at any "
                              "rate tried: the budget cannot meet the target.")
    best = ranked[0]
    head = (f"{best.candidate.label()} serves {_rate(best.capacity or 0.0)} req/s"
            f"{_ci(best.ci)} within {slo}")
    if len(ranked) == 1:
        return Recommendation(best, None, None, None, False, head + "; no other "
                              "configuration met the target.")
    second = ranked[1]
    diff = (best.capacity or 0.0) - (second.capacity or 0.0)
    met = best.points and [p for p in best.points if p.rate == best.rate_met]
    met2 = second.points and [p for p in second.points if p.rate == second.rate_met]
    a_rounds, b_rounds = (met[-1].rps if met else []), (met2[-1].rps if met2 else [])
    interval = difference_ci(a_rounds, b_rounds)
    # Two rounds give a 50% interval at best: no verdict of significance from them.
    enough = min(len(a_rounds), len(b_rounds)) >= MIN_ROUNDS_TO_JUDGE
    significant = enough and interval is not None and interval[0] > 0
    tail = (f"; {second.candidate.label()} serves {_rate(second.capacity or 0.0)}"
            f"{_ci(second.ci)}: ")
    if significant and interval is not None:
        tail += (f"{_rate(diff)} req/s more [{_rate(interval[0])}, {_rate(interval[1])}] "
                 f"for {best.candidate.label()}.")
    elif interval is None or not enough:
        tail += (f"too few rounds to tell them apart ({min(len(a_rounds), len(b_rounds))}; "
                 f"{MIN_ROUNDS_TO_JUDGE} or more judge the difference).")
    else:
        tail += "no significant difference."
    return Recommendation(best, second, round(diff, 2), interval, significant, head + tail)
