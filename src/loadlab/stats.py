"""Intervals over rounds: of one figure (bootstrap of the median) and of a ratio (Welch).

A run's headline figure is the median over its rounds; its interval is the 2.5th-97.5th
percentile of the medians of 10,000 resamples (with replacement) of those rounds. A
bootstrap cannot reach outside the rounds it has: the true median lies between the
smallest and largest of n rounds with probability 1 - 2 * 0.5**n (50% with 2 rounds, 75%
with 3, 94% with 5), so ``level()`` reports the coverage an interval can honestly claim,
min(0.95, that). With 2 rounds the interval is the range of the two, a 50% interval.
Seeded, so the same rounds always give the same interval.

A ratio of two sets of rounds (compare, claims) is judged on the log scale: the ratio of
geometric means with Welch's t interval on the difference of mean logs. Unlike a
bootstrap, it can declare a difference from 2 rounds a side (a bootstrap or permutation
of 2 + 2 rounds can never reach 95%), at the price of assuming the log-figures of rounds
spread roughly normally; the interval widens with few rounds through t's degrees of
freedom (t = 4.3 for 2 + 2 rounds).

The claims' intervals read each run's per-second samples as well (``series_estimate``:
batch means, rounds pooled only when they agree), and a claim's two cells measured in
the same rounds as a blocked design (``paired_estimate``: per-round contrasts, so that a
drift of the machine that moves both cancels). docs/claims.md says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 20261202


def level(n: int, wanted: float = LEVEL) -> float:
    """The coverage an interval of the median from ``n`` rounds can claim."""
    if n < 2:
        return 0.0
    return min(wanted, 1.0 - 2.0 * 0.5**n)


def _clean(values: Sequence[float | None]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def _resampled_medians(arr: np.ndarray, rng: np.random.Generator,
                       resamples: int) -> np.ndarray:
    picks = rng.integers(0, len(arr), size=(resamples, len(arr)))
    return np.median(arr[picks], axis=1)


def median_ci(values: Sequence[float | None], wanted: float = LEVEL,
              seed: int = SEED, resamples: int = RESAMPLES) -> tuple[float, float] | None:
    """The bootstrap interval of the median; None with fewer than 2 values."""
    arr = _clean(values)
    if len(arr) < 2:
        return None
    rng = np.random.default_rng(seed)
    meds = _resampled_medians(arr, rng, resamples)
    tail = (1.0 - wanted) / 2.0
    low, high = np.quantile(meds, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Ratio:
    """current / baseline of two sets of rounds, with its interval."""

    ratio: float
    low: float
    high: float
    n_baseline: int
    n_current: int

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high


def ratio_ci(baseline: Sequence[float | None], current: Sequence[float | None],
             wanted: float = LEVEL) -> Ratio | None:
    """Geometric mean(current) / geometric mean(baseline), Welch's t interval (log scale).

    With one round on a side its spread is unknown: the other side's is used (equal
    spread assumed) and the callers call the result inconclusive. None without positive
    values on both sides, or with one round on each.
    """
    a, b = _clean(baseline), _clean(current)
    a, b = a[a > 0], b[b > 0]
    if not len(a) or not len(b) or len(a) + len(b) < 3:
        return None
    la, lb = np.log(a), np.log(b)
    diff = float(lb.mean() - la.mean())
    va = float(la.var(ddof=1)) if len(a) > 1 else float(lb.var(ddof=1))
    vb = float(lb.var(ddof=1)) if len(b) > 1 else va
    half = _welch_half_width(va, len(a), vb, len(b), wanted)
    return Ratio(math.exp(diff), math.exp(diff - half), math.exp(diff + half), len(a), len(b))


def _welch_half_width(va: float, na: int, vb: float, nb: int, wanted: float) -> float:
    """Half the width of Welch's t interval on a difference of means of samples with
    variances ``va``, ``vb`` and sizes ``na``, ``nb``."""
    from scipy.stats import t as student_t

    qa, qb = va / na, vb / nb
    se = math.sqrt(qa + qb)
    if se == 0.0:
        return 0.0
    denom = (qa**2 / max(na - 1, 1)) + (qb**2 / max(nb - 1, 1))
    df = (qa + qb) ** 2 / denom if denom > 0 else math.inf
    return float(student_t.ppf(1.0 - (1.0 - wanted) / 2.0, df)) * se


def rounds_to_tell(baseline: Sequence[float | None], current: Sequence[float | None],
                   change: float, wanted: float = LEVEL, most: int = 100) -> int | None:
    """Rounds a side for ``ratio_ci``'s interval to reach within ±``change`` (0.05 = 5%),
    were the rounds to spread as these do; None when their spread is unknown (one round on
    a side), when ``change`` is not positive, or when it would take more than ``most``.

    The smallest n whose Welch half-width on the logs, t(df) * sqrt((va + vb) / n), is at
    most log(1 + change): t's degrees of freedom grow with n too, so this is a search, not
    the 1/sqrt(n) rule of ``rounds_needed``.
    """
    a, b = _clean(baseline), _clean(current)
    a, b = a[a > 0], b[b > 0]
    if len(a) < 2 or len(b) < 2 or change <= 0:
        return None
    va, vb = float(np.log(a).var(ddof=1)), float(np.log(b).var(ddof=1))
    target = math.log1p(change)
    return next((n for n in range(2, most + 1)
                 if _welch_half_width(va, n, vb, n, wanted) <= target), None)


def mean_ci(values: Sequence[float | None], wanted: float = LEVEL,
            ) -> tuple[float, float, float] | None:
    """Mean with Student's t interval: (mean, low, high); None with fewer than 2 values.

    For an effect measured once per round (a share, a ratio within one round), judged by
    the claims on as few as 2 rounds, where a bootstrap could not reach 95%.
    """
    from scipy.stats import t as student_t

    arr = _clean(values)
    if len(arr) < 2:
        return None
    mean = float(arr.mean())
    se = float(arr.std(ddof=1)) / math.sqrt(len(arr))
    crit = float(student_t.ppf(1.0 - (1.0 - wanted) / 2.0, len(arr) - 1))
    return mean, mean - crit * se, mean + crit * se


def relative_half_width(values: Sequence[float | None]) -> float | None:
    """Half the interval's width over the median (0.05 = ±5%); None when unknown."""
    arr = _clean(values)
    ci = median_ci(arr.tolist())
    if ci is None:
        return None
    mid = float(np.median(arr))
    if mid == 0.0:
        return math.inf
    return (ci[1] - ci[0]) / 2.0 / abs(mid)


def rounds_needed(values: Sequence[float | None], wanted_half_width: float) -> int | None:
    """Rounds likely needed for an interval of ±``wanted_half_width`` (relative).

    The width shrinks about as 1/sqrt(n): n_needed = n * (now / wanted)^2. None when the
    spread is unknown (fewer than 2 rounds).
    """
    arr = _clean(values)
    now = relative_half_width(arr.tolist())
    if now is None or wanted_half_width <= 0:
        return None
    if now <= wanted_half_width:
        return len(arr)
    return math.ceil(len(arr) * (now / wanted_half_width) ** 2)


# Per-second samples within the measured window, batched (the claims' intervals).
#
# A run of n seconds holds n rate samples, not one; but consecutive seconds are not
# independent (a slow spell on the machine spans several), so they are grouped in batches
# of b seconds whose means are nearly independent (the method of batch means), and what
# correlation is left widens the interval. Rounds are fresh servers: their batch means are
# pooled only when the rounds agree with each other as well as their batches suggest
# (one-way analysis of variance, pooled unless the rounds differ at POOL_ALPHA, the
# "sometimes pool" rule); otherwise the rounds themselves are the observations and the
# interval has rounds - 1 degrees of freedom, as before.

POOL_ALPHA = 0.5  # pool rounds unless they differ at this level (see series_estimate)
BATCH_RHO = 0.2  # batches long enough that adjacent ones correlate at most about this much
MIN_BATCHES = 2  # per round, for a within-round spread
SHORT_SHARE = 0.5  # an interval shorter than this share of the median is merged on


@dataclass(frozen=True)
class Estimate:
    """A figure's mean with the variance of that mean and its degrees of freedom.

    ``per_round``: the observations a further round would add (batch means when pooled,
    1 when the rounds are the observations) — what "more rounds" is reckoned with.
    """

    mean: float
    var: float
    df: float
    rounds: int
    observations: int
    per_round: float
    method: str
    rho: float = 0.0  # lag-1 autocorrelation of the per-second samples (bias-corrected)
    batch_s: int = 1  # samples per batch

    def interval(self, wanted: float = LEVEL) -> tuple[float, float]:
        from scipy.stats import t as student_t

        crit = float(student_t.ppf(1.0 - (1.0 - wanted) / 2.0, max(self.df, 1.0)))
        half = crit * math.sqrt(max(self.var, 0.0))
        return self.mean - half, self.mean + half


def merge_short(values: Sequence[float], seconds: Sequence[float]) -> list[tuple[float, float]]:
    """(rate, seconds) per interval, an interval much shorter than the rest (a partial
    second at the window's edge) merged into its neighbour, weighted by its length."""
    pairs = [(float(v), float(s)) for v, s in zip(values, seconds, strict=False)
             if s is not None and v is not None and s > 0 and math.isfinite(float(v))]
    if len(pairs) < 2:
        return pairs
    typical = float(np.median([s for _, s in pairs]))
    out: list[tuple[float, float]] = []
    for v, s in pairs:
        if out and (s < SHORT_SHARE * typical or out[-1][1] < SHORT_SHARE * typical):
            pv, ps = out[-1]
            out[-1] = ((pv * ps + v * s) / (ps + s), ps + s)
        else:
            out.append((v, s))
    return out


def lag1(rounds: Sequence[Sequence[float]]) -> float:
    """The lag-1 autocorrelation of series measured in rounds, pooled within rounds (each
    about its own mean) and corrected for its bias towards -1/n in short series
    (E[r] ~ rho - (1 + 3 rho) / n); 0 when it cannot be read, clipped to [0, 0.95]:
    negative correlation would narrow the interval, which is not claimed."""
    num = den = 0.0
    lengths = []
    for series in rounds:
        arr = np.asarray(series, dtype=float)
        if len(arr) < 3:
            continue
        dev = arr - arr.mean()
        num += float(np.sum(dev[:-1] * dev[1:]))
        den += float(np.sum(dev * dev))
        lengths.append(len(arr))
    if not lengths or den <= 0.0:
        return 0.0
    r = num / den
    n = float(np.mean(lengths))
    rho = (n * r + 1.0) / (n - 3.0) if n >= 8 else r + 1.0 / n
    return float(min(max(rho, 0.0), 0.95))


def batch_means(pairs: Sequence[tuple[float, float]], size: int) -> list[float]:
    """Consecutive batches of ``size`` intervals, each the rate over its batch (a short
    last batch joins the one before it)."""
    groups = [list(pairs[i:i + size]) for i in range(0, len(pairs), size)]
    if len(groups) > 1 and len(groups[-1]) < size:
        groups[-2] += groups.pop()
    return [sum(v * s for v, s in g) / sum(s for _, s in g) for g in groups if g]


def series_estimate(rounds: Sequence[Sequence[tuple[float, float]]],
                    log: bool = False) -> Estimate | None:
    """The mean of a figure sampled each second in every round, from batch means.

    ``rounds``: per round, (value, seconds) per interval (``merge_short``'s). ``log``:
    on the log scale (for ratios: geometric means). None with fewer than 2 rounds or a
    round of fewer than MIN_BATCHES samples: then only the rounds can be used.
    """
    from scipy.stats import f as f_dist

    if len(rounds) < 2 or any(len(r) < MIN_BATCHES for r in rounds):
        return None
    if log and any(v <= 0 for r in rounds for v, _ in r):
        return None
    tf = (lambda v: math.log(v)) if log else (lambda v: v)
    rho = lag1([[tf(v) for v, _ in r] for r in rounds])
    shortest = min(len(r) for r in rounds)
    size = 1
    while rho ** size > BATCH_RHO and shortest // (size + 1) >= MIN_BATCHES:
        size += 1
    left = rho ** size  # adjacent batch means' correlation, at most about this
    inflate = (1.0 + left) / (1.0 - left)
    batches = [[tf(m) for m in batch_means(r, size)] for r in rounds]
    counts = np.asarray([len(b) for b in batches], dtype=float)
    means = np.asarray([float(np.mean(b)) for b in batches])
    total = float(counts.sum())
    grand = float(np.sum(counts * means) / total)
    ss_within = float(sum(np.sum((np.asarray(b) - m) ** 2) for b, m in zip(batches, means,
                                                                          strict=True)))
    ss_between = float(np.sum(counts * (means - grand) ** 2))
    k, df_w = len(batches), total - len(batches)
    ms_w = ss_within / df_w if df_w > 0 else 0.0
    ms_b = ss_between / (k - 1)
    method = (f"batch means ({size} s each, lag-1 autocorrelation {rho:.2f}"
              + (f", variance x{inflate:.2f}" if inflate > 1.0001 else "") + ")")
    p_rounds = float(f_dist.sf(ms_b / ms_w, k - 1, df_w)) if ms_w > 0 else 0.0 if ms_b > 0 else 1.0
    if p_rounds >= POOL_ALPHA:
        # Rounds agree: every batch mean is an observation of one figure.
        pooled = (ss_within + ss_between) / (total - 1)
        return Estimate(grand, inflate * pooled / total, total - 1, k, int(total),
                        total / k, f"{method}, rounds pooled (they agree: p={p_rounds:.2f})",
                        rho, size)
    # Rounds differ more than their seconds do: the rounds are the observations.
    return Estimate(float(means.mean()), float(means.var(ddof=1)) / k, k - 1, k, k, 1.0,
                    f"{method}; rounds differ (p={p_rounds:.2f}): rounds as observations",
                    rho, size)


def difference(a: Estimate, b: Estimate) -> Estimate:
    """b - a, with Welch-Satterthwaite degrees of freedom (on the log scale: a ratio)."""
    var = a.var + b.var
    parts = [v ** 2 / max(e.df, 1.0) for v, e in ((a.var, a), (b.var, b)) if v > 0]
    df = var ** 2 / sum(parts) if parts and sum(parts) > 0 else max(a.df + b.df, 1.0)
    method = a.method if a.method == b.method else f"{a.method} | {b.method}"
    return Estimate(b.mean - a.mean, var, df, min(a.rounds, b.rounds),
                    a.observations + b.observations, (a.per_round + b.per_round) / 2.0,
                    method, max(a.rho, b.rho), max(a.batch_s, b.batch_s))


# Two cells measured in the same rounds (a claim's pair: the plan runs every cell of a
# round before the next round, so both sides of a pair see that round's machine).
#
# The design is blocked by round: a drift of the machine between rounds that moves both
# cells (round 2's CPU cells 10-35% slower than round 1's, both sides alike) is a round
# effect, and the within-round contrast does not contain it. Judged as two independent
# estimates (``difference``), that drift is counted twice against the claim; judged by
# round it cancels. What the contrast does contain is the cell x round interaction (a
# drift that moved one cell and not the other, a server that started slow once) and the
# seconds' own noise: the interaction is tested against the seconds (one-way analysis of
# variance of the per-round contrasts, the same "sometimes pool" rule as
# ``series_estimate``) and, when it is larger than the seconds explain, the per-round
# contrasts themselves are the observations (rounds - 1 degrees of freedom: the paired t).

STEADY_SHARE = 0.75  # an interval shorter than this share of the typical one is partial


def steady(values: Sequence[float | None],
           seconds: Sequence[float | None]) -> list[tuple[float, float]]:
    """(rate, seconds) of a run's full intervals: its first interval and any partial one
    left out.

    The first interval starts at the warm-up mark, a scrape the runner takes out of step
    with the sampler's own, and the service's counters are published in lumps: its rate
    is off more often than not (recorded quick runs: 2,574 against 1,757-1,948 req/s,
    or 0 against 66); a partial interval at either edge (0.04-0.77 s) holds a lump or
    none. Left out, not merged: a lump spread over a neighbour is still a lump. The
    run's headline figures are not touched (they count the whole window)."""
    pairs = [(float(v), float(s)) for v, s in list(zip(values, seconds, strict=False))[1:]
             if s is not None and v is not None and s > 0 and math.isfinite(float(v))]
    if not pairs:
        return []
    typical = float(np.median([s for _, s in pairs]))
    return [(v, s) for v, s in pairs if s >= STEADY_SHARE * typical]


def _run_batches(rounds: Sequence[Sequence[tuple[float, float]]], rho: float,
                 log: bool) -> tuple[list[list[float]], int, float]:
    """Each run's batch means (on the log scale when ``log``), the batch length and the
    variance inflation for the correlation left between adjacent batches."""
    tf = (lambda v: math.log(v)) if log else (lambda v: v)
    shortest = min(len(r) for r in rounds)
    size = 1
    while rho ** size > BATCH_RHO and shortest // (size + 1) >= MIN_BATCHES:
        size += 1
    left = rho ** size
    return ([[tf(m) for m in batch_means(r, size)] for r in rounds], size,
            (1.0 + left) / (1.0 - left))


def paired_estimate(base: Sequence[Sequence[tuple[float, float]]],
                    cur: Sequence[Sequence[tuple[float, float]]]) -> Estimate | None:
    """log(cur / base) of two cells measured in the same rounds (``base[i]`` and
    ``cur[i]`` in round i), blocked by round, from the seconds of every run.

    Per round the contrast d_i = mean log cur_i - mean log base_i (batch means of each
    run's seconds). Two estimates of the mean contrast's variance: the rounds' own,
    var(d) / k with k - 1 degrees of freedom (the paired t), and the seconds', each
    cell's pooled within-run mean square over its batches (widened for the correlation
    left between batches), Satterthwaite degrees of freedom. When the rounds differ no
    more than the seconds explain (F test, p >= POOL_ALPHA: no cell x round interaction
    seen) the two are pooled, weighted by their degrees of freedom; otherwise the rounds
    alone decide. None with fewer than 2 rounds, a cell without two seconds in some run
    to read its spread from, or a rate <= 0."""
    from scipy.stats import f as f_dist

    k = len(base)
    if k < 2 or len(cur) != k:
        return None
    runs = [*base, *cur]
    if any(not r for r in runs) or any(v <= 0 for r in runs for v, _ in r):
        return None
    rho = lag1([[math.log(v) for v, _ in r] for r in runs])
    batches, size, inflate = _run_batches(runs, rho, log=True)
    sides = (batches[:k], batches[k:])
    d = np.asarray([float(np.mean(h)) - float(np.mean(lo)) for lo, h in zip(*sides,
                                                                           strict=True)])
    parts: list[float] = []
    df_parts: list[float] = []
    for side in sides:
        ss = float(sum(np.sum((np.asarray(b) - np.mean(b)) ** 2) for b in side))
        df_side = float(sum(len(b) - 1 for b in side))
        if df_side <= 0:
            return None
        # This side's share of var(mean d): its mean square x sum(1/n_i) / k^2.
        parts.append(inflate * ss / df_side * sum(1.0 / len(b) for b in side) / k ** 2)
        df_parts.append(df_side)
    seconds_var = sum(parts)
    df_seconds = (seconds_var ** 2 / sum(v ** 2 / f for v, f in zip(parts, df_parts,
                                                                   strict=True))
                  if seconds_var > 0 else sum(df_parts))
    rounds_var = float(d.var(ddof=1)) / k
    mean = float(d.mean())
    p = (float(f_dist.sf(rounds_var / seconds_var, k - 1, df_seconds)) if seconds_var > 0
         else 0.0 if rounds_var > 0 else 1.0)
    method = (f"paired by round, batch means ({size} s each, lag-1 autocorrelation {rho:.2f}"
              + (f", variance x{inflate:.2f}" if inflate > 1.0001 else "") + ")")
    total = sum(len(b) for b in batches)
    if p >= POOL_ALPHA:
        df = df_seconds + k - 1
        var = (df_seconds * seconds_var + (k - 1) * rounds_var) / df
        return Estimate(mean, var, df, k, total, total / k,
                        f"{method}, rounds pooled (the pair agrees across rounds: "
                        f"p={p:.2f})", rho, size)
    return Estimate(mean, rounds_var, k - 1, k, k, 1.0,
                    f"{method}; the pair differs by round (p={p:.2f}): rounds as "
                    "observations (paired t)", rho, size)
