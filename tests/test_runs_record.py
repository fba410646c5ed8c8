"""The run record's one reader and its one way of naming a variant (loadlab.runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from loadlab.report.html import write_report
from loadlab.runner.options import Gates, RunSpec
from loadlab.runs.record import Run, read_runs, variant_key, variant_label

# A run as the lab wrote it before rounds, server figures, the load generator's and the
# machine's figures existed (no "format" either): what every reader must still accept.
OLD_RUN: dict[str, Any] = {
    "run_id": "000-fastapi-io", "key": "000-fastapi-io", "status": "ok", "target": "fastapi",
    "framework": "fastapi", "scenario": "io", "cpus": 0.0, "workers": 1,
    "worker_class": "uvicorn", "threads": 1, "users": 10, "spawn_rate": 10,
    "arrival_rate": None, "io_ms": 50, "cpu_work": None, "duration_s": 20.0, "warmup_s": 5.0,
    "started_at": "2026-12-01T10:00:00+00:00", "requests": 3653, "failures": 0,
    "rps": 182.69, "latency_ms": {"p50": 52.0, "p95": 67.6, "p99": 93.6, "max": 104.0},
    "locust_json": "raw/000-fastapi-io.json",
}
FLASK = {**OLD_RUN, "target": "flask", "framework": "flask", "worker_class": "gthread",
         "workers": 2, "threads": 4, "cpus": 1.5, "arrival_rate": 40.0, "cpu_work": 100}


def test_old_runs_read_with_every_table_present() -> None:
    summary = {"manifest": {}, "runs": [OLD_RUN]}
    (run,) = read_runs(summary)
    assert run["server"] == {} and run["load"] == {} and run["machine"] == {}
    assert run["probe_ms"] == {} and run["latency_ms"] == OLD_RUN["latency_ms"]
    assert "server" not in OLD_RUN  # a copy: the summary itself is left as written


def test_a_pre_rounds_summary_still_renders(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"manifest": {"cores": 2},
                                                       "runs": [OLD_RUN, FLASK]}))
    page = write_report(tmp_path).read_text()
    assert "FastAPI on one Uvicorn process" in page
    assert "Flask on 2 Gunicorn gthread workers × 4 threads limited to 1.5 CPU" in page


@pytest.mark.parametrize(("style", "text"), [
    ("line", "flask gthread w2 t4 cpus=1.5 io u10"),
    ("compare", "flask gthread w2 t4 cpus=1.5 io u10 rate=40 io=50 work=100"),
    ("progress", "flask/gthread w2 io u10"),
    ("row", "Flask gthread ×2×4t"),
    ("plot", "flask gthread ×2×4t @1.5 CPU"),
    ("prose", "Flask on 2 Gunicorn gthread workers × 4 threads limited to 1.5 CPU"),
])
def test_each_place_keeps_its_wording(style: Any, text: str) -> None:
    assert variant_label(FLASK, style) == text


def test_no_cpu_limit_is_said_the_way_each_place_said_it() -> None:
    assert "no CPU limit" in variant_label(OLD_RUN)
    assert "cpus=-" in variant_label(OLD_RUN, "compare")
    assert variant_label(OLD_RUN, "plot").endswith(" no CPU limit")
    assert variant_label(OLD_RUN, "prose") == "FastAPI on one Uvicorn process"


def test_a_spec_and_its_fields_have_one_key() -> None:
    spec = RunSpec(target="flask", scenario="io", users=5, worker_class="gthread", threads=4,
                   workers=2, cpus=1.5, io_ms=20, db_pool_size=3, arrival_rate=10.0,
                   extra={"b": "1", "a": "2"})
    assert spec.key == variant_key(spec.fields()) == (
        "flask-io-u5-c1.5-w2-gthread-t4-d30-a10-io20-pool3-a=2-b=1")


def test_a_percentile_recorded_as_none_misses_its_gate() -> None:
    """Typing the record showed ``None > limit`` here (a TypeError ending the command)."""
    run = {**OLD_RUN, "latency_ms": {"p50": 1.0, "p95": None, "p99": None, "max": None}}
    missed = Gates(max_p95_ms=100, max_p99_ms=100).check(cast(Run, run))
    assert [m.split(":")[0] for m in missed] == ["--max-p95-ms 100", "--max-p99-ms 100"]
