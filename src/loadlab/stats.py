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
    from scipy.stats import t as student_t

    a, b = _clean(baseline), _clean(current)
    a, b = a[a > 0], b[b > 0]
    if not len(a) or not len(b) or len(a) + len(b) < 3:
        return None
    la, lb = np.log(a), np.log(b)
    diff = float(lb.mean() - la.mean())
    va = float(la.var(ddof=1)) if len(a) > 1 else float(lb.var(ddof=1))
    vb = float(lb.var(ddof=1)) if len(b) > 1 else va
    qa, qb = va / len(a), vb / len(b)
    se = math.sqrt(qa + qb)
    if se == 0.0:
        return Ratio(math.exp(diff), math.exp(diff), math.exp(diff), len(a), len(b))
    denom = (qa**2 / max(len(a) - 1, 1)) + (qb**2 / max(len(b) - 1, 1))
    df = (qa + qb) ** 2 / denom if denom > 0 else math.inf
    crit = float(student_t.ppf(1.0 - (1.0 - wanted) / 2.0, df))
    return Ratio(math.exp(diff), math.exp(diff - crit * se), math.exp(diff + crit * se),
                 len(a), len(b))


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
