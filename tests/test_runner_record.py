"""The run record as a pure function of the spec and a measurement (runner/execute.py
``record_from``), on measurements recorded from real short runs (tests/fixtures/runs/:
FastAPI with I/O waits, closed model; Flask gthread under a CPU limit, open model), and on
those measurements with one thing changed (a dead service, no report, a busy generator)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from loadlab.runner.execute import Measurement, record_from, window_seconds
from loadlab.runner.interpreter import gil_note
from loadlab.runner.loadgen import LoadFigures
from loadlab.runner.options import RunSpec
from loadlab.runs import bottleneck
from loadlab.runs.record import PythonFigures

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def recorded(name: str) -> tuple[RunSpec, str, Measurement, dict[str, Any]]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return (RunSpec(**data["spec"]), data["run_id"], Measurement.from_json(data["measurement"]),
            data["record"])


def as_stored(record: Any) -> Any:
    """What summary.json holds: JSON, in the record's own key order."""
    return json.loads(json.dumps(record))


def test_the_fixtures_are_there() -> None:
    assert NAMES == ["fastapi-io", "flask-open"]


@pytest.mark.parametrize("name", NAMES)
def test_a_recorded_measurement_gives_its_recorded_record(name: str) -> None:
    spec, run_id, m, expected = recorded(name)
    record = as_stored(record_from(spec, run_id, m))
    assert record == expected
    assert list(record) == list(expected)  # summary.json keeps the order it was written in


@pytest.mark.parametrize("name", NAMES)
def test_a_measurement_goes_through_json_unchanged(name: str) -> None:
    _, _, m, _ = recorded(name)
    assert Measurement.from_json(json.loads(json.dumps(m.as_json()))) == m


@pytest.mark.parametrize("name", NAMES)
def test_the_locustfile_s_window_and_hdr_latency_are_the_figures(name: str) -> None:
    spec, run_id, m, _ = recorded(name)
    assert m.lab is not None and m.figures is not None
    record = record_from(spec, run_id, m)
    inside = m.lab["window"]
    assert record["requests"] == inside["requests"] != m.figures.requests
    assert record["rps"] == round(inside["requests"] / inside["seconds"], 2)
    assert record["measured_s"] == round(inside["seconds"], 3) == window_seconds(spec, m)
    assert record["latency_source"] == "hdr"
    assert record["latency_ms"] == {k: round(v, 3) for k, v in m.lab["latency_ms"].items()}
    cpu = m.window.cpu_seconds
    assert cpu is not None
    assert record["server"]["cpu_per_request_ms"] == round(cpu * 1000 / inside["requests"], 4)
    assert record["server"]["cpu_cores_used"] == round(cpu / inside["seconds"], 3)
    machine = record["machine"]
    neither = (m.window.machine_busy_cores - cpu / m.window.seconds
               - (m.load_cpu_seconds or 0) / m.window.seconds)
    assert machine["other_cores"] == round(max(neither, 0.0), 3)
    assert record["probe_ms"]["count"] == len(m.probes_ms)


def test_the_open_model_keeps_its_intended_latency_and_its_sends() -> None:
    spec, run_id, m, _ = recorded("flask-open")
    assert m.lab is not None
    record = record_from(spec, run_id, m)
    assert record["model"] == "open"
    assert record["open_model"] == m.lab["open_model"]
    assert record["intended_latency_ms"] == {
        k: round(v, 3) for k, v in m.lab["intended_latency_ms"].items()}
    closed = record_from(*recorded("fastapi-io")[:3])
    assert closed["model"] == "closed" and "open_model" not in closed


def test_without_the_locustfile_s_report_locust_s_figures_are_used() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    assert m.figures is not None
    record = record_from(spec, run_id, replace(m, lab=None))
    assert record["latency_source"] == "locust"
    assert record["requests"] == m.figures.requests
    assert record["rps"] == round(m.figures.rps, 2)
    assert record["latency_ms"]["p95"] == round(m.figures.latency_ms["p95"], 1)
    assert record["measured_s"] == m.figures.window_s
    assert "model" not in record and record["load"]["saturated"] is False


@pytest.mark.parametrize("name", NAMES)
def test_a_service_that_died_fails_the_run_with_its_log(name: str) -> None:
    spec, run_id, m, _ = recorded(name)
    record = record_from(spec, run_id, replace(m, service_died=True,
                                                service_log="Worker exiting (pid 7)"))
    assert record["status"] == "failed"
    assert record["error"] == "the service exited during the run: Worker exiting (pid 7)"
    assert record["requests"] > 0  # what was measured is still recorded


@pytest.mark.parametrize(("code", "how"), [
    (-9, "Locust ended by signal 9"), (1, "Locust wrote no report"),
    (None, "Locust wrote no report")])
def test_no_report_fails_the_run_saying_how_locust_ended(code: int | None, how: str) -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    record = record_from(spec, run_id, replace(m, figures=None, lab=None, load_exit=code))
    assert record["status"] == "failed"
    assert record["error"] == f"{how}: {m.load_log}"
    assert record["requests"] == 0 and record["rps"] == 0.0
    assert record["latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert record["server"]["cpu_per_request_ms"] is None


def test_no_request_in_the_window_fails_the_run() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    empty = LoadFigures(0, 0, 0.0, {"p50": 0.0}, 3.0, "all")
    record = record_from(spec, run_id, replace(m, figures=empty, lab=None))
    assert record["status"] == "failed"
    assert record["error"] == "no request completed in the window"


def test_a_saturated_generator_and_the_runtime_s_notes_are_both_kept() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    assert m.lab is not None
    busy = {**m.lab, "locust_cpu_warning": True, "locust_cpu_peak_percent": {"1": 97.4}}
    notes = {"prometheus": {"gaps": 1}, "notes": ["Prometheus was down for 2 s"]}
    record = record_from(spec, run_id, replace(m, lab=busy, runtime_notes=notes))
    assert record["load"]["saturated"] is True
    assert record["prometheus"] == {"gaps": 1}
    assert record["notes"] == [
        "Prometheus was down for 2 s",
        "warning: the load generator reached 97% CPU: it may be what limits this "
        "measurement (fewer users per process, or more cores for Locust)"]


def test_the_interpreter_read_while_serving_is_the_server_s_and_ft_notes_a_gil_seen_on() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    ft = replace(spec, python="ft")
    python: PythonFigures = {"implementation": "cpython", "version": "3.13.5",
                             "free_threaded": True}
    off = record_from(ft, run_id, replace(m, python=python, gil_enabled=False))
    assert off["python"] == "ft" and off["backpressure"] is None
    assert off["server"]["python"] == python and off["server"]["gil_enabled"] is False
    assert "notes" not in off
    on = record_from(ft, run_id, replace(m, python=python, gil_enabled=True))
    assert on["notes"] == [gil_note("ft", True)] and on["notes"][0] is not None
    unread = record_from(ft, run_id, m)  # /info did not answer
    assert unread["server"]["python"] is None and unread["server"]["gil_enabled"] is None
    assert unread["notes"] == [gil_note("ft", None)]
    assert "notes" not in record_from(spec, run_id, replace(m, gil_enabled=True))
    granian = replace(spec, worker_class="granian", backpressure=32)
    assert record_from(granian, run_id, m)["backpressure"] == 32


def test_a_database_run_carries_its_database() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    database = {"version": "15.8", "cpu_seconds": 0.4, "connections_peak": 3}
    assert record_from(spec, run_id, replace(m, database=database))["database"] == database
    assert "database" not in record_from(spec, run_id, m)


def test_the_record_is_a_pure_function() -> None:
    spec, run_id, m, _ = recorded("flask-open")
    before = json.dumps(m.as_json())
    first = as_stored(record_from(spec, run_id, m))
    assert as_stored(record_from(spec, run_id, m)) == first
    assert json.dumps(m.as_json()) == before


def _gauges(queue: float) -> list[bottleneck.Gauges]:
    return [bottleneck.Gauges(ok=True, in_progress=1.0, accept_queue=queue, threadpool_busy=None,
                              threadpool_size=None, db_pool_in_use=None, db_pool_size=None,
                              db_pool_waiting=None, loop_lag_buckets={0.005: n, float("inf"): n})
            for n in (10.0, 20.0, 30.0)]


def test_the_bottleneck_is_the_verdict_on_the_window_s_gauges_and_none_without() -> None:
    spec, run_id, m, _ = recorded("flask-open")
    assert "bottleneck" not in record_from(spec, run_id, m)  # recorded before the gauges
    with_gauges = replace(m, gauges=_gauges(queue=8.0))
    record = record_from(spec, run_id, with_gauges)
    without = {k: v for k, v in record.items() if k != "bottleneck"}
    assert record["bottleneck"] == bottleneck.for_run(without, with_gauges.gauges or [])
    assert record["bottleneck"] != record_from(spec, run_id,
                                               replace(m, gauges=[]))["bottleneck"]
    assert Measurement.from_json(json.loads(json.dumps(with_gauges.as_json()))) == with_gauges


def test_the_user_s_own_load_is_recorded_after_the_server() -> None:
    spec, run_id, m, _ = recorded("fastapi-io")
    own = replace(spec, scenario="", request_templates=("GET /items/{id}",))
    record = list(as_stored(record_from(own, run_id, m)))
    assert record[record.index("server") + 1] == "request_templates"
    assert "locustfile" not in record and "app" not in record
