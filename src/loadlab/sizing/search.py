"""Each candidate's capacity within the target, found with as few runs as the answer needs.
``measure`` (and ``refine``) are injected (``command`` runs real rounds; the tests give
known curves), so the search itself is plain arithmetic.

Capacity: the highest arrival rate (open model) whose point meets the target. A point is
one run at one rate (more rounds only at the rate that sets a capacity, while its interval
is wider than ``precision`` and reaches the best so far);
it meets the target when the median over its rounds of the target's percentile (latency
from the intended send time) and of the error rate do. Its throughput's interval comes
from the per-second samples of its measured window as batch means (``window_estimate``:
the claims' method, ``loadlab.stats``), pooled over rounds when there are several.

The search, candidate by candidate:

- **Order**: branches with the most room first (event loops and greenlets, then the most
  threads), so that the best capacity is known early and the rest can be pruned.
- **Prune** a candidate before measuring it when an upper bound of its capacity lies below
  the lower end of the best interval measured so far: Little's law (``slots`` requests in
  service at once, each holding its slot about the lowest mean latency measured at any
  met point: capacity ≤ slots / service time, times ``LITTLE_MARGIN`` for the client's
  share of that latency), and along a
  branch the USL's most optimistic case (linear scaling: X(n) ≤ X(m)·n/m for m < n, from
  the top of X(m)'s interval).
- **Ramp** from a guess (``GUIDED_START`` of the smaller of the best capacity so far and
  the candidate's bound, by ``GUIDED_GROWTH``; ``start_rate`` for the first, by
  ``GROWTH``) until a point misses (halving down when the first misses), never past the
  bound until a point there has met, then
  **bisect** until the bracket is within ``precision`` of the rate met or ``steps`` are
  spent.
- **Stop a branch** when its last worker count served no more than the one before (their
  intervals overlap) or the USL fitted along the workers puts the peak below the next.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from loadlab import stats
from loadlab.report.fit import fit
from loadlab.runs.bottleneck import BUSY_CORES
from loadlab.runs.record import SizeCandidate, SizePoint, SizeRecommendation
from loadlab.sizing.candidates import Branch, Candidate
from loadlab.sizing.slo import Slo

MIN_RATE = 1.0
MIN_ROUNDS_TO_JUDGE = 3  # as --until-ci (runner.session.MIN_ROUNDS_FOR_CI)
PRECISION = 0.10  # wanted: intervals within ±10% of the capacity, brackets within 10%
LITTLE_MARGIN = 1.25  # Little's bound made looser: latency includes the client's share
GROWTH = 2.0  # the ramp's factor from --start-rate (the scale unknown)
GUIDED_GROWTH = 1.5  # the ramp's factor from a guess (best so far, a bound)
GUIDED_START = 0.75  # of the guess: where a later candidate's ramp starts
# Batches kept in one window: with 4 seconds, two batches of 2 would leave one degree of
# freedom (t = 12.7); four of 1, variance inflated for their correlation, leave three.
ONE_WINDOW_BATCHES = 4
# Worker classes whose requests in service are bounded by workers × threads; the others
# (event loops, greenlets, Granian's runtime) hold as many as arrive.
SLOTTED = ("sync", "gthread")


def window_estimate(rounds: Sequence[Sequence[tuple[float, float]]]) -> stats.Estimate | None:
    """Mean throughput from per-second (rate, seconds) samples of each round's window.

    Two rounds or more: ``stats.series_estimate`` (batch means, pooled when the rounds
    agree). One round: its batch means are the observations (batches long enough that
    adjacent ones correlate at most ``stats.BATCH_RHO`` while ``ONE_WINDOW_BATCHES`` are
    left, what correlation is left widens the variance by (1 + ρ)/(1 − ρ)), a t interval
    with batches − 1 degrees of freedom. None with fewer than two batches."""
    usable = [list(r) for r in rounds if r]
    if len(usable) >= 2:
        return stats.series_estimate(usable)
    if not usable or len(usable[0]) < stats.MIN_BATCHES:
        return None
    pairs = usable[0]
    rho = stats.lag1([[v for v, _ in pairs]])
    size = 1
    # A short window keeps enough batches for a spread (ONE_WINDOW_BATCHES): the
    # correlation left is charged to the variance instead of to fewer, longer batches.
    while rho ** size > stats.BATCH_RHO and len(pairs) // (size + 1) >= ONE_WINDOW_BATCHES:
        size += 1
    left = rho ** size
    inflate = (1.0 + left) / (1.0 - left)
    batches = stats.batch_means(pairs, size)
    if len(batches) < stats.MIN_BATCHES:
        return None
    arr = np.asarray(batches, dtype=float)
    k = len(arr)
    method = (f"batch means of one window ({size} s each, lag-1 autocorrelation {rho:.2f}"
              + (f", variance x{inflate:.2f}" if inflate > 1.0001 else "") + ")")
    return stats.Estimate(float(arr.mean()), inflate * float(arr.var(ddof=1)) / k, k - 1,
                          1, k, float(k), method, rho, size)


@dataclass(frozen=True)
class Point:
    """One rate measured in one run or more (rounds)."""

    rate: float
    rps: list[float]             # served per round
    latency_ms: list[float]      # the target's percentile per round
    error_rate: list[float]
    met: bool
    bottleneck: str | None = None  # the verdict of the point's last round
    evidence: str | None = None
    results: str | None = None   # where its runs were written
    mean_ms: list[float] = field(default_factory=list)  # mean latency per round
    estimate: stats.Estimate | None = None  # served req/s from the windows' batch means
    other_cores: float = 0.0  # the most other work on the machine during its rounds

    def typical(self, values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    @property
    def served(self) -> float | None:
        """Throughput served: the windows' mean (batch means), else the rounds' median."""
        if self.estimate is not None:
            return self.estimate.mean
        return self.typical(self.rps)

    @property
    def ci(self) -> tuple[float, float] | None:
        """95% interval of ``served``: batch means, else the rounds' bootstrap median."""
        if self.estimate is not None:
            return self.estimate.interval()
        return stats.median_ci(self.rps)

    def half_width(self) -> float | None:
        """The interval's half width as a share of ``served`` (None: no interval)."""
        ci, served = self.ci, self.served
        if ci is None or not served:
            return None
        return (ci[1] - ci[0]) / 2 / served

    def as_dict(self) -> SizePoint:
        ci, hw = self.ci, self.half_width()
        return {
            "rate": round(self.rate, 2), "met": self.met, "rounds": len(self.rps),
            "rps": None if self.served is None else round(self.served, 2),
            "rps_rounds": self.rps,
            "ci": None if ci is None else [round(ci[0], 2), round(ci[1], 2)],
            "half_width_pct": None if hw is None else round(100 * hw, 1),
            "interval_method": None if self.estimate is None else self.estimate.method,
            "latency_ms": self.typical(self.latency_ms),
            "mean_ms": self.typical(self.mean_ms), "error_rate": self.typical(
                self.error_rate), "bottleneck": self.bottleneck, "evidence": self.evidence,
            "results": self.results, "other_cores": round(self.other_cores, 2),
        }


Measure = Callable[[Candidate, float], Point]
# Another round of a point (its rounds and their windows pooled); None: no more rounds.
Refine = Callable[[Candidate, Point], Point | None]


def judge(slo: Slo, rate: float, rps: list[float], latency_ms: list[float],
          error_rate: list[float]) -> bool:
    """A point meets the target when its medians do (no measurement: it does not)."""
    if not rps or not latency_ms or not error_rate:
        return False
    return slo.judge(statistics.median(latency_ms), statistics.median(error_rate))


def needs_rounds(point: Point, precision: float = PRECISION) -> bool:
    """The interval rule: another round only where the interval is wider than ±precision
    (or there is none)."""
    hw = point.half_width()
    return hw is None or hw > precision


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
    pruned: bool = False               # not measured: its bound is below the best
    bound: float | None = None         # the upper bound of its capacity known before it

    @property
    def met_point(self) -> Point | None:
        found = [p for p in self.points if p.rate == self.rate_met and p.met]
        return found[-1] if found else None

    def low(self) -> float | None:
        """The lower end of the capacity's interval (the capacity itself without one)."""
        return self.ci[0] if self.ci is not None else self.capacity

    def high(self) -> float | None:
        return self.ci[1] if self.ci is not None else self.capacity

    def as_dict(self) -> SizeCandidate:
        c = self.candidate
        hw = None if self.ci is None or not self.capacity else (
            (self.ci[1] - self.ci[0]) / 2 / self.capacity)
        return {
            "label": c.label(), "worker_class": c.worker_class, "workers": c.workers,
            "threads": c.threads, "db_pool_size": c.db_pool_size,
            "capacity_rps": None if self.capacity is None else round(self.capacity, 2),
            "ci": None if self.ci is None else [round(self.ci[0], 2), round(self.ci[1], 2)],
            "half_width_pct": None if hw is None else round(100 * hw, 1),
            "rate_met": self.rate_met, "rate_missed": self.rate_missed,
            "stopped": self.stopped, "pruned": self.pruned,
            "bound_rps": None if self.bound is None else round(self.bound, 1),
            "points": [p.as_dict() for p in self.points],
        }


def capacity(candidate: Candidate, measure: Measure, slo: Slo, start_rate: float,
             max_rate: float, steps: int, *, bound: float | None = None,
             growth: float = GROWTH, precision: float = PRECISION,
             refine: Refine | None = None, floor: float | None = None) -> Outcome:
    """Ramp, then bisect until the bracket is within ``precision`` (at most ``steps``
    times), for one candidate; then rounds at the rate met while its interval is wider
    than ±precision (``refine``) and reaches ``floor`` (the low end of the best interval
    so far: a candidate wholly below it cannot change the recommendation, and a narrower
    interval would not either). ``bound``: an upper bound of the capacity, where the ramp
    goes before it goes past it."""
    out = Outcome(candidate)

    def at(rate: float) -> Point:
        point = measure(candidate, rate)
        out.points.append(point)
        return point

    # A later candidate's start is derived (half a capacity): whole requests a second too.
    rate = _round_rate(max(min(start_rate, max_rate), MIN_RATE))
    first = at(rate)
    met: Point | None = first if first.met else None
    missed: Point | None = None if first.met else first
    if first.met:
        while rate < max_rate:
            up = rate * growth
            if bound is not None and rate < bound < up:
                up = bound  # the bound is the next rate worth trying
            up = _round_rate(min(up, max_rate))
            if up <= rate:
                # A bound within rounding of the rate met: the next rate is past it (a
                # rate rounded back onto itself would be measured again and again).
                up = _round_rate(min(rate * growth, max_rate))
                if up <= rate:
                    break
            rate = up
            point = at(rate)
            if not point.met:
                missed = point
                break
            met = point
    else:
        while rate > MIN_RATE:
            rate = _round_rate(max(rate / 2, MIN_RATE))
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
            if missed.rate - met.rate <= max(1.0, precision * met.rate):
                break
            point = at(_round_rate((met.rate + missed.rate) / 2))
            if point.met:
                met = point
            else:
                missed = point
        out.stopped = (f"{missed.rate:g} req/s missed the target"
                       + (f" ({missed.evidence})" if missed.evidence else ""))
        out.rate_missed = missed.rate
    narrow(out, met, refine, precision, floor)
    return out


def narrow(out: Outcome, met: Point, refine: Refine | None, precision: float = PRECISION,
           floor: float | None = None) -> None:
    """Rounds at the rate met while its interval is wider than ±precision and reaches
    ``floor``; then ``out``'s capacity from the rate that still meets the target."""
    while refine is not None and needs_rounds(met, precision) and (
            floor is None or (met.ci or (0.0, math.inf))[1] >= floor):
        more = refine(out.candidate, met)
        if more is None:
            break
        out.points[out.points.index(met)] = more
        met = more
        if not more.met:
            # With more rounds the rate no longer meets the target: the next one down does.
            out.rate_missed = more.rate
            out.stopped = f"{more.rate:g} req/s missed the target over {len(more.rps)} rounds"
            lower = [p for p in out.points if p.met and p.rate < more.rate]
            if not lower:
                out.stopped = (f"{more.rate:g} req/s missed the target over {len(more.rps)} "
                               "rounds, and no lower rate was measured")
                out.rate_met = out.capacity = out.ci = None
                return
            met = max(lower, key=lambda p: p.rate)
    out.rate_met = met.rate
    out.capacity = met.served
    out.ci = met.ci


def narrow_rest(outcomes: Sequence[Outcome], refine: Refine, time_left: Callable[[], bool],
                precision: float = PRECISION) -> list[str]:
    """After the search, while ``time_left()``: more rounds of every capacity whose interval
    is still wider than ±precision, the highest capacity first (the recommendation can
    turn on it), the dominated ones too (the search left them wide: they could not change
    the answer, but a wide figure reads as a weak one). The labels of those narrowed."""
    narrowed = []
    wide = sorted((o for o in outcomes if o.met_point is not None
                   and needs_rounds(o.met_point, precision)),
                  key=lambda o: -(o.capacity or 0.0))
    for out in wide:
        met = out.met_point
        if met is None or not time_left():
            break
        narrow(out, met, lambda c, p: refine(c, p) if time_left() else None, precision)
        narrowed.append(out.candidate.label())
    return narrowed


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


def slots(candidate: Candidate) -> float:
    """Requests a candidate can hold in service at once (unbounded for event loops)."""
    if candidate.worker_class in SLOTTED:
        return float(candidate.workers * candidate.threads)
    return math.inf


@dataclass
class Knowledge:
    """What the search has learnt so far, for the bounds: the best outcome and the
    lowest mean latency of any point that met the target (the service time, at most)."""

    best: Outcome | None = None
    service_ms: float | None = None
    service_at: str = ""  # which point it was read at

    def learn(self, outcome: Outcome) -> None:
        for p in outcome.points:
            if p.met and p.mean_ms:
                ms = statistics.median(p.mean_ms)
                if ms > 0 and (self.service_ms is None or ms < self.service_ms):
                    self.service_ms = ms
                    self.service_at = f"{outcome.candidate.label()} at {p.rate:g} req/s"
        if outcome.capacity is not None and (
                self.best is None or (outcome.low() or 0.0) > (self.best.low() or 0.0)):
            self.best = outcome

    def bound(self, candidate: Candidate, earlier: Iterable[Outcome] = ()
              ) -> tuple[float, str] | None:
        """The tightest upper bound of the candidate's capacity known, with its reason."""
        found: list[tuple[float, str]] = []
        n = slots(candidate)
        if self.service_ms is not None and math.isfinite(n):
            cap = n / (self.service_ms / 1000.0) * LITTLE_MARGIN
            found.append((cap, f"Little's law: {n:g} slots / {self.service_ms:.3g} ms "
                               f"(lowest mean latency, {self.service_at}) "
                               f"× {LITTLE_MARGIN:g}"))
        for o in earlier:
            high = o.high()
            m = o.candidate.workers
            if high is not None and o.candidate.branch == candidate.branch \
                    and m < candidate.workers:
                cap = high * candidate.workers / m
                found.append((cap, f"linear scaling (the USL's best case) from "
                                   f"{o.candidate.label()}'s {high:,.1f} req/s × "
                                   f"{candidate.workers}/{m}"))
        return min(found, key=lambda f: f[0]) if found else None

    def prune(self, candidate: Candidate, earlier: Iterable[Outcome] = ()
              ) -> Outcome | None:
        """The candidate as pruned (not measured), when its bound is below the best's
        interval; else None."""
        best = self.best
        bound = self.bound(candidate, earlier)
        low = best.low() if best is not None else None
        if bound is None or best is None or low is None or bound[0] >= low:
            return None
        return Outcome(candidate, pruned=True, bound=bound[0], stopped=(
            f"pruned: at most {bound[0]:,.1f} req/s ({bound[1]}), below "
            f"{best.candidate.label()}'s {low:,.1f} (the low end of its interval)"))


@dataclass
class BranchWalk:
    branch: Branch
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str = ""
    fit: str | None = None


def walk_branch(branch: Branch, workers: Sequence[int], measure: Measure, slo: Slo,
                start_rate: float, max_rate: float, steps: int,
                ceiling: float | None = None, *, known: Knowledge | None = None,
                precision: float = PRECISION, refine: Refine | None = None) -> BranchWalk:
    """Measure the branch's worker counts upwards, pruning those whose bound is below the
    best so far (``known``); stop when adding workers no longer helps: the last step was
    not significantly better, or the USL fit along the workers puts the peak below the
    next count. ``ceiling``: the best capacity seen so far; a later candidate's ramp starts
    near it (or near its bound, the smaller) so it does not climb from the bottom."""
    walk = BranchWalk(branch)
    known = known if known is not None else Knowledge()
    for i, n in enumerate(workers):
        candidate = Candidate(branch, n)
        pruned = known.prune(candidate, walk.outcomes)
        if pruned is not None:
            walk.outcomes.append(pruned)
            if i + 1 >= len(workers):
                walk.stopped = "the last worker count planned was pruned"
            continue
        bound = known.bound(candidate, walk.outcomes)
        if known.best is not None and known.best.capacity is not None:
            ceiling = max(ceiling or 0.0, known.best.capacity)
        guess = [c for c in (ceiling, bound[0] if bound else None) if c is not None]
        start = start_rate if not guess else max(start_rate, GUIDED_START * min(guess))
        outcome = capacity(candidate, measure, slo, start, max_rate, steps,
                           bound=bound[0] if bound else None,
                           growth=GROWTH if not guess else GUIDED_GROWTH,
                           precision=precision, refine=refine,
                           floor=known.best.low() if known.best is not None else None)
        outcome.bound = bound[0] if bound else None
        walk.outcomes.append(outcome)
        known.learn(outcome)
        if outcome.capacity is not None:
            ceiling = max(ceiling or 0.0, outcome.capacity)
        if i + 1 >= len(workers):
            walk.stopped = f"measured every worker count planned ({', '.join(map(str, workers))})"
            break
        nxt = workers[i + 1]
        measured = [o for o in walk.outcomes if o.capacity and not o.pruned]
        if len(measured) >= 2 and not significantly_above(measured[-1], measured[-2]):
            less = (measured[-1].capacity or 0.0) < (measured[-2].capacity or 0.0)
            how = "less than" if less else "no more than"
            a_ci, b_ci = measured[-1].ci, measured[-2].ci
            overlap = ("" if a_ci is None or b_ci is None or (less and a_ci[1] < b_ci[0])
                       else " (the intervals overlap)")
            walk.stopped = (f"{measured[-1].candidate.workers} workers served {how} "
                            f"{measured[-2].candidate.workers}{overlap}: {nxt} not tried")
            _not_tried(walk, workers[i + 1:])
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
                    _not_tried(walk, workers[i + 1:])
                    break
        tried = [o for o in walk.outcomes if not o.pruned]
        if outcome.capacity is None and tried[0].capacity is None and len(tried) >= 2:
            walk.stopped = "no worker count met the target: more not tried"
            _not_tried(walk, workers[i + 1:])
            break
    return walk


def _not_tried(walk: BranchWalk, rest: Sequence[int]) -> None:
    """The counts a stopped branch leaves, listed as pruned with the branch's reason."""
    for n in rest:
        walk.outcomes.append(Outcome(Candidate(walk.branch, n), pruned=True,
                                     stopped=f"pruned: the branch stopped ({walk.stopped})"))


def order(branches: Mapping[Branch, Sequence[int]]) -> list[tuple[Branch, list[int]]]:
    """The most room first (unbounded slots, then the most threads × workers), so the
    best capacity is known early and the bounds can prune the rest; ties keep their
    order."""
    items = [(b, sorted(w)) for b, w in branches.items()]
    return sorted(items, key=lambda item: -slots(Candidate(item[0], max(item[1]))))


def search_all(branches: Mapping[Branch, Sequence[int]], measure: Measure, slo: Slo,
               start_rate: float, max_rate: float, steps: int, *,
               precision: float = PRECISION, refine: Refine | None = None
               ) -> list[BranchWalk]:
    """Every branch walked, most room first, sharing what is learnt (bounds, ramp start)."""
    known = Knowledge()
    walks = []
    for branch, workers in order(branches):
        walks.append(walk_branch(branch, workers, measure, slo, start_rate, max_rate,
                                 steps, known=known, precision=precision, refine=refine))
    return walks


@dataclass(frozen=True)
class Recommendation:
    best: Outcome | None
    runner_up: Outcome | None
    difference: float | None
    difference_ci: tuple[float, float] | None
    significant: bool
    sentence: str
    busy_cores: float = 0.0  # the most other work during any point, in cores

    def as_dict(self) -> SizeRecommendation:
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
            "sentence": self.sentence, "busy_cores": round(self.busy_cores, 2),
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
    """The best capacity, and whether it is significantly above the runner-up's; on a
    machine busy with other work (more than ``BUSY_CORES``) the sentence says so: the
    capacities are what the machine could give then, not the configurations'."""
    busy = max((p.other_cores for o in outcomes for p in o.points), default=0.0)
    found = _recommend(outcomes, slo, cpus)
    if busy <= BUSY_CORES:
        return replace(found, busy_cores=busy)
    return replace(found, busy_cores=busy, sentence=(
        f"{found.sentence} The machine was busy (up to {busy:.2f} cores of other work "
        "during the points): the capacities are what it could give then, not the "
        "configurations'."))


def _recommend(outcomes: Sequence[Outcome], slo: Slo, cpus: float) -> Recommendation:
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
        pruned = sum(1 for o in outcomes if o.pruned)
        return Recommendation(best, None, None, None, False, head + (
            f"; no other configuration measured met the target ({pruned} pruned)."
            if pruned else "; no other configuration met the target."))
    second = ranked[1]
    diff = (best.capacity or 0.0) - (second.capacity or 0.0)
    met, met2 = best.met_point, second.met_point
    a_rounds, b_rounds = (met.rps if met else []), (met2.rps if met2 else [])
    interval: tuple[float, float] | None
    if met is not None and met2 is not None and met.estimate and met2.estimate:
        # The windows' batch means: the difference of two means, Welch's interval.
        interval = stats.difference(met2.estimate, met.estimate).interval()
        enough = True
    else:
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
