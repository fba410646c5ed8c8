"""Intervals over rounds, checked against synthetic data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadlab import stats

TRUE_MEDIAN = 1000.0


def _draw(rng: np.random.Generator, n: int, cv: float = 0.05) -> list[float]:
    # Lognormal around a known median: rps-like, skewed to the right.
    return list(TRUE_MEDIAN * np.exp(rng.normal(0.0, cv, n)))


@pytest.mark.parametrize("n", [8, 12])
def test_median_interval_covers_the_true_median_at_about_95_percent(n: int) -> None:
    rng = np.random.default_rng(1)
    draws = 400
    covered = 0
    for _ in range(draws):
        ci = stats.median_ci(_draw(rng, n), resamples=2000)
        assert ci is not None
        covered += ci[0] <= TRUE_MEDIAN <= ci[1]
    assert stats.level(n) == 0.95
    assert 0.88 <= covered / draws <= 0.995, covered / draws


def test_few_rounds_claim_only_the_coverage_they_have() -> None:
    # Two rounds: the bootstrap interval is their range, which holds the median half the time.
    rng = np.random.default_rng(2)
    draws = 1000
    covered = 0
    for _ in range(draws):
        values = _draw(rng, 2)
        ci = stats.median_ci(values, resamples=500)
        assert ci == pytest.approx((min(values), max(values)))
        covered += ci[0] <= TRUE_MEDIAN <= ci[1]
    assert stats.level(2) == 0.5 and stats.level(3) == 0.75
    assert abs(covered / draws - stats.level(2)) < 0.06
    assert stats.median_ci([5.0]) is None and stats.level(1) == 0.0


def test_ratio_interval_finds_a_20_percent_regression() -> None:
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(100):
        base, cur = _draw(rng, 5), [0.8 * v for v in _draw(rng, 5)]
        r = stats.ratio_ci(base, cur)
        assert r is not None
        found += r.high < 1.0
        assert r.low <= r.ratio <= r.high
    assert found >= 95


@pytest.mark.parametrize("n", [2, 3, 6])
def test_ratio_interval_of_one_distribution_holds_one_95_percent_of_the_time(n: int) -> None:
    rng = np.random.default_rng(4 + n)
    draws = 2000
    false_alarms = 0
    for _ in range(draws):
        r = stats.ratio_ci(_draw(rng, n), _draw(rng, n))
        assert r is not None
        false_alarms += r.excludes(1.0)
    assert 0.02 <= false_alarms / draws <= 0.08, false_alarms / draws


def test_ratio_interval_covers_a_known_ratio() -> None:
    rng = np.random.default_rng(9)
    draws, covered = 1000, 0
    for _ in range(draws):
        r = stats.ratio_ci(_draw(rng, 4), [1.3 * v for v in _draw(rng, 3, cv=0.1)])
        assert r is not None
        covered += r.low <= 1.3 <= r.high
    assert 0.92 <= covered / draws <= 0.98, covered / draws
    assert stats.ratio_ci([1.0], [2.0]) is None


def test_rounds_needed_grows_with_the_square_of_the_precision() -> None:
    values = [100.0, 104.0, 96.0, 102.0]
    now = stats.relative_half_width(values)
    assert now is not None and 0 < now < 0.1
    assert stats.rounds_needed(values, now) == 4
    assert stats.rounds_needed(values, now / 2) == math.ceil(4 * 4.0)
    assert stats.rounds_needed([1.0], 0.05) is None


def test_rounds_to_tell_a_change_is_the_first_count_whose_interval_is_that_narrow() -> None:
    """Rounds of 100 and 110 on each side: a log variance of ln(1.1)^2 / 2 a side, so with n
    rounds a side Welch's df is 2n - 2 and the half-width t(2n - 2) * ln(1.1) / sqrt(n).
    Within ±5% (ln 1.05 = 0.0488): 16 rounds (0.0487); 15 are not enough (0.0504). Within
    ±20% (0.182): 3 (0.153, where 2 give 0.290); within ±50%: the 2 measured do."""
    same = [100.0, 110.0]
    assert stats.rounds_to_tell(same, same, 0.05) == 16
    assert stats.rounds_to_tell(same, same, 0.20) == 3
    assert stats.rounds_to_tell(same, same, 0.50) == 2
    # Unknown spread, no change to tell, or more than 100 rounds: no count.
    assert stats.rounds_to_tell([100.0], same, 0.05) is None
    assert stats.rounds_to_tell(same, same, 0.0) is None
    assert stats.rounds_to_tell([24.70, 24.72], [12.0, 180.0], 0.05) is None
