"""The scaling-law fits recover the parameters that generated a series."""

from __future__ import annotations

import numpy as np
import pytest

from loadlab.report.fit import amdahl, fit, usl


@pytest.mark.parametrize(("lam", "sigma", "kappa"), [
    (1000.0, 0.05, 0.002), (250.0, 0.2, 0.01), (80.0, 0.01, 0.0005),
])
def test_usl_recovers_known_parameters(lam: float, sigma: float, kappa: float) -> None:
    rng = np.random.default_rng(7)
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32], dtype=float)
    x = usl(n, lam, sigma, kappa) * rng.normal(1.0, 0.01, n.size)  # 1% noise
    result = fit(n, x, "usl")
    assert result is not None
    assert result.sigma == pytest.approx(sigma, abs=0.02)
    assert result.kappa == pytest.approx(kappa, rel=0.25)
    assert result.lam == pytest.approx(lam, rel=0.05)
    true_peak = np.sqrt((1 - sigma) / kappa)
    assert result.peak_n == pytest.approx(true_peak, rel=0.15)
    assert result.r2 > 0.98


def test_amdahl_recovers_sigma_and_has_no_peak() -> None:
    n = np.array([1, 2, 4, 8, 16], dtype=float)
    result = fit(n, amdahl(n, 500.0, 0.1), "amdahl")
    assert result is not None
    assert result.sigma == pytest.approx(0.1, abs=1e-3)
    assert result.kappa == 0.0 and result.peak_n is None
    assert "no peak" in result.describe()


def test_too_short_a_series_is_not_fitted() -> None:
    assert fit([1, 2], [100, 180], "usl") is None
    assert fit([1, 1, 1], [100, 110, 90], "amdahl") is None
