"""Scaling laws fitted honestly: enough points or no fit, intervals, a model chosen by AICc.

X(N) = λN / (1 + σ(N−1) + κN(N−1)): σ is contention (the serial share), κ coherency (the
cost of keeping N workers in agreement); κ = 0 is Amdahl's law (ceiling λ/σ), σ = κ = 0
linear scaling. With κ > 0 throughput peaks at N* = √((1 − σ)/κ) and falls after it.

- A law is fitted only with more distinct N than it has parameters: linear 2, Amdahl 3,
  USL 4 (``MIN_POINTS``); with fewer, ``fit`` returns None and the report says so.
- Every round is an observation (a point measured in 3 rounds counts 3 times), so the
  residuals measure the noise and not only the misfit.
- Parameter intervals: ±t(0.975, n−k)·SE, SE from ``scipy.optimize.curve_fit``'s
  covariance, clipped to the law's bounds (λ ≥ 0, 0 ≤ σ, κ ≤ 1). Derived figures (N*,
  X(N*), the Amdahl ceiling) and the curve's band: the
  2.5th–97.5th percentiles over 4,000 seeded draws of the parameters from that covariance.
- The law is chosen by AICc (Akaike's criterion corrected for small samples) among the
  ones with enough points: the simplest law within 2 of the lowest AICc (a difference
  under 2 is no real support for the extra parameter); no R² (it is not meaningful for
  these nonlinear fits).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import t as student_t

LAWS = ("linear", "amdahl", "usl")
MIN_POINTS = {"linear": 2, "amdahl": 3, "usl": 4}
PARAMS = {"linear": ("lam",), "amdahl": ("lam", "sigma"), "usl": ("lam", "sigma", "kappa")}
DRAWS = 4000
AICC_MARGIN = 2.0  # a simpler law within this of the lowest AICc is preferred
SEED = 20261202
Interval = tuple[float, float] | None


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def amdahl(n: np.ndarray, lam: float, sigma: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1))


def linear(n: np.ndarray, lam: float) -> np.ndarray:
    return lam * n


MODELS: dict[str, Callable[..., np.ndarray]] = {"linear": linear, "amdahl": amdahl,
                                                "usl": usl}


@dataclass(frozen=True)
class Fit:
    law: str  # "linear" | "amdahl" | "usl"
    lam: float
    sigma: float
    kappa: float
    peak_n: float | None  # None: no peak (κ = 0)
    peak_x: float | None
    points: int = 0  # distinct N
    observations: int = 0  # rounds over all points
    aicc: float | None = None
    ci: dict[str, Interval] = field(default_factory=dict)  # lam, sigma, kappa, peak_n, ...
    ceiling: float | None = None  # Amdahl: λ/σ, what no N exceeds
    cov: tuple[tuple[float, ...], ...] = ()

    @property
    def params(self) -> np.ndarray:
        return np.array([self.lam, self.sigma, self.kappa][: len(PARAMS[self.law])])

    def predict(self, n: Sequence[float] | np.ndarray) -> np.ndarray:
        return usl(np.asarray(n, dtype=float), self.lam, self.sigma, self.kappa)

    def draws(self, count: int = DRAWS) -> np.ndarray:
        """Parameter draws from the fit's covariance (rows: lam, sigma, kappa), clipped to
        the law's bounds."""
        rng = np.random.default_rng(SEED)
        k = len(PARAMS[self.law])
        cov = np.array(self.cov, dtype=float) if self.cov else np.zeros((k, k))
        if not np.all(np.isfinite(cov)):
            cov = np.zeros((k, k))
        sample = rng.multivariate_normal(self.params, cov, size=count, method="eigh")
        full = np.zeros((count, 3))
        full[:, :k] = sample
        full[:, 0] = np.clip(full[:, 0], 1e-12, None)
        full[:, 1:] = np.clip(full[:, 1:], 0.0, 1.0)
        return full

    def band(self, grid: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 95% band of the curve over ``grid`` (from the parameter draws)."""
        g = np.asarray(grid, dtype=float)
        d = self.draws()
        curves = d[:, [0]] * g / (1 + d[:, [1]] * (g - 1) + d[:, [2]] * g * (g - 1))
        low, high = np.quantile(curves, [0.025, 0.975], axis=0)
        return low, high

    def describe(self) -> str:
        def iv(name: str, fmt: str) -> str:
            ci = self.ci.get(name)
            return f" [{format(ci[0], fmt)}, {format(ci[1], fmt)}]" if ci else ""

        text = f"{self.law.upper()}: λ={self.lam:,.1f}{iv('lam', ',.1f')}"
        if self.law in ("amdahl", "usl"):
            text += f", σ={self.sigma:.3f}{iv('sigma', '.3f')}"
        if self.law == "usl":
            text += f", κ={self.kappa:.4f}{iv('kappa', '.4f')}"
        if self.peak_n is not None and self.peak_x is not None:
            text += (f", peak {self.peak_x:,.0f}{iv('peak_x', ',.0f')} req/s at "
                     f"N*={self.peak_n:.1f}{iv('peak_n', '.1f')}")
        elif self.ceiling is not None:
            text += f", ceiling λ/σ = {self.ceiling:,.0f}{iv('ceiling', ',.0f')} req/s"
        text += (f"; {self.points} points, {self.observations} rounds; 95% intervals"
                 + (f"; AICc {self.aicc:.1f}" if self.aicc is not None else ""))
        return text


def _clean(ns: Sequence[float], xs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(ns, dtype=float)
    x = np.asarray(xs, dtype=float)
    ok = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    return n[ok], x[ok]


def aicc(rss: float, observations: int, k: int) -> float | None:
    """Akaike's criterion with the small-sample correction; None when n <= k + 1."""
    n = observations
    if n <= k + 1:
        return None
    rss = max(rss, 1e-12 * n)
    return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _derived(f: Fit) -> dict[str, Interval]:
    d = f.draws()
    lam, sigma, kappa = d[:, 0], d[:, 1], d[:, 2]
    out: dict[str, Interval] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if f.law == "usl" and f.peak_n is not None:
            peak = np.sqrt((1 - sigma) / kappa)
            peak_x = lam * peak / (1 + sigma * (peak - 1) + kappa * peak * (peak - 1))
            for name, values in (("peak_n", peak), ("peak_x", peak_x)):
                v = values[np.isfinite(values)]
                if len(v) > DRAWS // 2:
                    lo, hi = np.quantile(v, [0.025, 0.975])
                    out[name] = (float(lo), float(hi))
        if f.law == "amdahl" and f.ceiling is not None:
            ceiling = lam / sigma
            v = ceiling[np.isfinite(ceiling)]
            if len(v) > DRAWS // 2:
                lo, hi = np.quantile(v, [0.025, 0.975])
                out["ceiling"] = (float(lo), float(hi))
    return out


def fit(ns: Sequence[float], xs: Sequence[float], law: str = "usl") -> Fit | None:
    """Least squares over every observation; None with too few distinct N or no fit."""
    n, x = _clean(ns, xs)
    points = len(np.unique(n))
    if law not in MODELS or points < MIN_POINTS[law]:
        return None
    k = len(PARAMS[law])
    # λ starts from the best per-worker throughput seen: X(1) is rarely measured exactly.
    lam0 = float(np.max(x / n))
    p0 = {"linear": (lam0,), "amdahl": (lam0, 0.05), "usl": (lam0, 0.05, 0.001)}[law]
    bounds = ([0.0] * k, [np.inf] + [1.0] * (k - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            popt, pcov = curve_fit(MODELS[law], n, x, p0=p0, bounds=bounds, maxfev=20_000)
        except (RuntimeError, ValueError):
            return None
    values = [float(v) for v in popt] + [0.0] * (3 - k)
    lam, sigma, kappa = values
    residuals = x - MODELS[law](n, *popt)
    rss = float(np.sum(residuals**2))
    dof = len(x) - k
    ci: dict[str, Interval] = {}
    cov = np.asarray(pcov, dtype=float)
    if dof > 0 and np.all(np.isfinite(cov)):
        crit = float(student_t.ppf(0.975, dof))
        for i, name in enumerate(PARAMS[law]):
            se = math.sqrt(max(cov[i, i], 0.0))
            top = math.inf if name == "lam" else 1.0  # clipped to the law's bounds
            ci[name] = (max(values[i] - crit * se, 0.0), min(values[i] + crit * se, top))
    else:
        cov = np.zeros((k, k))
    peak_n = peak_x = ceiling = None
    if law == "usl" and kappa > 1e-9 and sigma < 1:
        peak_n = math.sqrt((1 - sigma) / kappa)
        peak_x = float(usl(np.array([peak_n]), lam, sigma, kappa)[0])
    if law == "amdahl" and sigma > 1e-9:
        ceiling = lam / sigma
    result = Fit(law, lam, sigma, kappa, peak_n, peak_x, points, len(x),
                 aicc(rss, len(x), k), ci, ceiling,
                 tuple(tuple(float(v) for v in row) for row in cov))
    if ci:
        ci.update(_derived(result))
    return result


@dataclass(frozen=True)
class Choice:
    """Every law that could be fitted, the one AICc prefers, and what was refused."""

    fits: list[Fit]
    chosen: Fit | None
    note: str


def choose(ns: Sequence[float], xs: Sequence[float]) -> Choice:
    n, _ = _clean(ns, xs)
    points = len(np.unique(n))
    fits = [f for law in LAWS if (f := fit(ns, xs, law)) is not None]
    refused = [f"{law} needs {MIN_POINTS[law]} distinct points" for law in LAWS
               if points < MIN_POINTS[law]]
    if not fits:
        return Choice([], None, f"{points} distinct point(s): no fit ("
                      + "; ".join(refused) + ")")
    scored = [f for f in fits if f.aicc is not None]
    if not scored:
        simplest = fits[0]
        return Choice(fits, simplest, f"too few rounds to compare laws by AICc; showing "
                      f"{simplest.law}" + ("; " + "; ".join(refused) if refused else ""))
    lowest = min(f.aicc for f in scored if f.aicc is not None)
    best = next(f for f in scored if f.aicc is not None and f.aicc <= lowest + AICC_MARGIN)
    others = ", ".join(f"{f.law} {f.aicc:.1f}" for f in scored if f is not best)
    note = f"{best.law} chosen by AICc ({best.aicc:.1f}" + (f"; {others}" if others else "") + ")"
    if refused:
        note += "; " + "; ".join(refused)
    return Choice(fits, best, note)
