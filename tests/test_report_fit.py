"""The scaling-law fits: known parameters recovered with intervals that hold them, too few
points refused, the law chosen by AICc, and the figure drawn from real-looking runs."""

from __future__ import annotations

import numpy as np
import pytest

from loadlab.report.fit import MIN_POINTS, amdahl, choose, fit, usl
from loadlab.report.fitplot import scaling_fit_figure, scaling_section

N = np.array([1, 2, 3, 4, 6, 8, 12, 16], dtype=float)


def _rounds(f, rounds: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    ns = np.repeat(N, rounds)
    return ns, f(ns) * rng.normal(1.0, noise, ns.size)


@pytest.mark.parametrize(("lam", "sigma", "kappa"), [
    (1000.0, 0.05, 0.002), (250.0, 0.2, 0.01), (80.0, 0.02, 0.005),
])
def test_usl_recovers_known_parameters_inside_its_intervals(lam: float, sigma: float,
                                                            kappa: float) -> None:
    ns, xs = _rounds(lambda n: usl(n, lam, sigma, kappa), 3, 0.02, 7)
    result = fit(ns, xs, "usl")
    assert result is not None and result.observations == ns.size and result.points == 8
    for name, true in (("lam", lam), ("sigma", sigma), ("kappa", kappa)):
        low, high = result.ci[name]
        assert low <= true <= high, (name, true, result.ci[name])
    true_peak = np.sqrt((1 - sigma) / kappa)
    low, high = result.ci["peak_n"]
    assert low <= true_peak <= high and result.peak_n == pytest.approx(true_peak, rel=0.3)
    assert "R²" not in result.describe() and "N*=" in result.describe()


def test_usl_intervals_cover_at_about_95_percent() -> None:
    covered = {"sigma": 0, "kappa": 0}
    draws = 150
    for seed in range(draws):
        ns, xs = _rounds(lambda n: usl(n, 500.0, 0.1, 0.01), 2, 0.03, seed)
        result = fit(ns, xs, "usl")
        assert result is not None
        for name, true in (("sigma", 0.1), ("kappa", 0.01)):
            low, high = result.ci[name]
            covered[name] += low <= true <= high
    for name, count in covered.items():
        assert 0.85 <= count / draws <= 1.0, (name, count / draws)


def test_amdahl_recovers_sigma_and_its_ceiling() -> None:
    ns, xs = _rounds(lambda n: amdahl(n, 500.0, 0.1), 2, 0.01, 3)
    result = fit(ns, xs, "amdahl")
    assert result is not None and result.kappa == 0.0 and result.peak_n is None
    low, high = result.ci["sigma"]
    assert low <= 0.1 <= high
    assert result.ceiling == pytest.approx(5000, rel=0.15)
    c_low, c_high = result.ci["ceiling"]
    assert c_low <= 5000 <= c_high and "ceiling" in result.describe()


def test_too_few_points_are_refused_and_said_so() -> None:
    assert MIN_POINTS == {"linear": 2, "amdahl": 3, "usl": 4}
    assert fit([1, 2, 4], [100, 180, 300], "usl") is None
    assert fit([1, 2, 1, 2], [100, 180, 101, 178], "amdahl") is None
    assert fit([1, 1, 1], [100, 110, 90], "linear") is None
    choice = choose([1, 1], [100, 101])
    assert choice.chosen is None and "no fit" in choice.note
    choice = choose([1, 2, 4, 1, 2, 4], [100, 180, 300, 102, 178, 305])
    assert {f.law for f in choice.fits} == {"linear", "amdahl"}
    assert "usl needs 4 distinct points" in choice.note


def test_aicc_picks_the_law_that_generated_the_data() -> None:
    ns, xs = _rounds(lambda n: usl(n, 500.0, 0.05, 0.02), 3, 0.01, 5)
    assert choose(ns, xs).chosen.law == "usl"  # type: ignore[union-attr]
    ns, xs = _rounds(lambda n: 300.0 * n, 3, 0.01, 6)
    assert choose(ns, xs).chosen.law == "linear"  # type: ignore[union-attr]
    ns, xs = _rounds(lambda n: amdahl(n, 300.0, 0.15), 3, 0.01, 8)
    assert choose(ns, xs).chosen.law in ("amdahl", "usl")  # κ ≈ 0 costs a parameter
    assert "chosen by AICc" in choose(ns, xs).note


def _run(axis_value: float, axis: str, rps: list[float]) -> dict:
    run = {"status": "ok", "target": "flask", "worker_class": "sync", "scenario": "cpu",
           "users": 8, "threads": 1, "io_ms": None, "cpu_work": 50, "cpus": 2.0,
           "workers": 2, "rps": float(np.median(rps)),
           "rounds": [{"status": "ok", "rps": x} for x in rps],
           "ci": {"rps": [min(rps), max(rps)]}}
    run[axis] = axis_value
    return run


def test_cores_and_workers_are_separate_series_with_a_band() -> None:
    runs = [_run(c, "cpus", [usl(np.array([c]), 100, 0.05, 0.0)[0] * k for k in (0.98, 1.02)])
            for c in (0.25, 0.5, 1.0, 1.5, 2.0)]
    runs += [_run(w, "workers", [90.0 * min(w, 2) * k for k in (0.97, 1.03)])
             for w in (1, 2)]
    svg, chosen = scaling_fit_figure(runs, "cpus")
    assert svg is not None and svg.startswith("<svg") and len(chosen) == 1
    assert chosen[0][1].chosen is not None
    _, by_workers = scaling_fit_figure(runs, "workers")
    assert len(by_workers) == 1 and by_workers[0][1].chosen is not None  # linear, 2 points
    assert by_workers[0][1].chosen.law == "linear"
    section = scaling_section(runs)
    assert "Scaling against cpus" in section and "Scaling against workers" in section
    assert scaling_section(runs[:1]) == ""  # no series: left out, not announced
    assert "amdahl needs 3 distinct points" in section and "usl needs 4" in section
