"""Amdahl's law and the Universal Scalability Law fitted to a scaling series.

X(N) = λN / (1 + σ(N−1) + κN(N−1)): σ is contention (the serial share), κ coherency (the
cost of keeping N workers in agreement); κ = 0 is Amdahl's law. With κ > 0 throughput
peaks at N* = sqrt((1 − σ)/κ) and falls after it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def amdahl(n: np.ndarray, lam: float, sigma: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1))


@dataclass(frozen=True)
class Fit:
    law: str  # "usl" | "amdahl"
    lam: float
    sigma: float
    kappa: float
    r2: float
    peak_n: float | None  # None: no peak (κ = 0) within reach
    peak_x: float | None
    points: int = 0

    def predict(self, n: Sequence[float] | np.ndarray) -> np.ndarray:
        return usl(np.asarray(n, dtype=float), self.lam, self.sigma, self.kappa)

    def describe(self) -> str:
        text = f"{self.law.upper()}: σ={self.sigma:.3f}"
        if self.law == "usl":
            text += f", κ={self.kappa:.4f}"
        if self.peak_n is not None and self.peak_x is not None:
            text += f", peak {self.peak_x:,.0f} req/s at N≈{self.peak_n:.1f}"
        else:
            text += ", no peak (throughput keeps rising, ever more slowly)"
        text += f", R²={self.r2:.3f} over {self.points} points"
        if self.points <= (3 if self.law == "usl" else 2):
            text += " (as many points as parameters: an exact fit, not a test of the law)"
        return text


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - predicted) ** 2)) / total if total > 0 else 1.0


def fit(ns: Sequence[float], xs: Sequence[float], law: str = "usl") -> Fit | None:
    """Least-squares fit; None when the series is too short or the fit fails."""
    n = np.asarray(ns, dtype=float)
    x = np.asarray(xs, dtype=float)
    ok = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    n, x = n[ok], x[ok]
    params = 3 if law == "usl" else 2
    if len(np.unique(n)) < params:
        return None
    # λ starts from the best per-worker throughput seen: X(1) is rarely measured exactly.
    lam0 = float(np.max(x / n))
    with warnings.catch_warnings():
        # Few points fit exactly and leave no covariance to estimate; the fit still stands.
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            if law == "usl":
                popt, _ = curve_fit(usl, n, x, p0=(lam0, 0.05, 0.001),
                                    bounds=([0, 0, 0], [np.inf, 1, 1]), maxfev=20_000)
                lam, sigma, kappa = (float(v) for v in popt)
            else:
                popt, _ = curve_fit(amdahl, n, x, p0=(lam0, 0.05),
                                    bounds=([0, 0], [np.inf, 1]), maxfev=20_000)
                lam, sigma = (float(v) for v in popt)
                kappa = 0.0
        except (RuntimeError, ValueError):
            return None
    points = len(np.unique(n))
    r2 = _r2(x, usl(n, lam, sigma, kappa))
    if kappa > 1e-9 and sigma < 1:
        peak_n = math.sqrt((1 - sigma) / kappa)
        peak_x = float(usl(np.array([peak_n]), lam, sigma, kappa)[0])
        return Fit(law, lam, sigma, kappa, r2, peak_n, peak_x, points)
    return Fit(law, lam, sigma, kappa, r2, None, None, points)
