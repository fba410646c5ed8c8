"""Parsing of durations, rates and CPU counts: property tests and the one-line errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadlab.runner.options import (
    Gates,
    OptionError,
    RunSpec,
    parse_cpus,
    parse_duration,
    parse_rate,
)

units = st.sampled_from([("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)])


@given(st.lists(st.tuples(st.integers(0, 500), units), min_size=1, max_size=4))
def test_duration_sums_its_parts(parts: list[tuple[int, tuple[str, float]]]) -> None:
    text = "".join(f"{n}{unit}" for n, (unit, _) in parts)
    expected = sum(n * scale for n, (_, scale) in parts)
    if expected > 24 * 3600:
        with pytest.raises(OptionError):
            parse_duration(text)
    else:
        assert math.isclose(parse_duration(text), expected, rel_tol=1e-9, abs_tol=1e-9)


@given(st.text(max_size=12))
def test_duration_never_crashes_on_any_text(text: str) -> None:
    try:
        value = parse_duration(text)
    except OptionError as exc:
        assert "\n" not in str(exc) and "--duration" in str(exc)
    else:
        assert 0 <= value <= 24 * 3600


@pytest.mark.parametrize("bad", ["", "s", "10x", "1m30", "-5s", "5 s", "1e3s", "nan", "inf"])
def test_malformed_durations_are_refused(bad: str) -> None:
    with pytest.raises(OptionError, match="--duration"):
        parse_duration(bad)


@given(st.floats(min_value=0.01, max_value=1e5, allow_nan=False),
       st.sampled_from([("", 1.0), ("/s", 1.0), ("/m", 60.0), ("/h", 3600.0)]))
def test_rate_units(value: float, unit: tuple[str, float]) -> None:
    text = f"{value:.2f}{unit[0]}"
    expected = float(f"{value:.2f}") / unit[1]
    if expected <= 0:
        with pytest.raises(OptionError):
            parse_rate(text)
    else:
        assert math.isclose(parse_rate(text), expected, rel_tol=1e-9)


@given(st.text(max_size=10))
def test_rate_never_crashes_on_any_text(text: str) -> None:
    try:
        assert parse_rate(text) > 0
    except OptionError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "10/d", "/s", "1e9"])
def test_malformed_rates_are_refused(bad: str) -> None:
    with pytest.raises(OptionError, match="--arrival-rate"):
        parse_rate(bad)


@pytest.mark.parametrize("bad", ["-1", "two", "nan", "inf", ""])
def test_malformed_cpu_counts_are_refused(bad: str) -> None:
    with pytest.raises(OptionError, match="--cpus"):
        parse_cpus(bad)


def test_unknown_names_are_refused_in_one_line() -> None:
    for kwargs, word in [
        (dict(target="django", scenario="io"), "target"),
        (dict(target="flask", scenario="sleep"), "scenario"),
        (dict(target="flask", scenario="io", worker_class="uvicorn"), "worker class"),
    ]:
        with pytest.raises(OptionError, match=word) as info:
            RunSpec(**kwargs)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)


def test_gates_name_the_gate_and_the_figure() -> None:
    run = {"target": "flask", "scenario": "io", "status": "ok", "requests": 100,
           "failures": 5, "rps": 12.5, "latency_ms": {"p95": 300.0, "p99": 400.0}}
    missed = Gates(max_p95_ms=200, max_p99_ms=500, max_error_rate=0.01, min_rps=20).check(run)
    assert missed == [
        "--max-p95-ms 200: flask/io p95 = 300.0 ms",
        "--max-error-rate 0.01: flask/io error rate = 0.0500",
        "--min-rps 20: flask/io rps = 12.5",
    ]
    assert Gates(max_p95_ms=300, min_rps=12).check(run) == []


def test_open_model_latency_gates_judge_the_intended_send_time() -> None:
    run = {"target": "fastapi", "scenario": "io", "status": "ok", "requests": 10,
           "failures": 0, "rps": 10.0, "latency_ms": {"p95": 12.0},
           "intended_latency_ms": {"p95": 900.0}}
    assert Gates(max_p95_ms=100).check(run) == ["--max-p95-ms 100: fastapi/io p95 = 900.0 ms"]
