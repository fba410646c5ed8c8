"""Rounds: alternated cells on fresh servers, medians on top, each round kept, intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runner_cli import SHORT, kill_tagged, loadlab, tagged_env

from loadlab.runner.matrix import MatrixError, parse_matrix
from loadlab.runner.options import OptionError, parse_rounds
from loadlab.runner.rounds import combine, precise_enough, run_rounds


def _round(rps: float, p95: float, status: str = "ok") -> dict:
    return {"key": "k", "status": status, "target": "fastapi", "scenario": "json",
            "requests": int(rps * 2), "failures": 0, "rps": rps,
            "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2},
            "server": {"name": "uvicorn", "cpu_seconds": 1.0, "cpu_per_request_ms": 0.3},
            "machine": {"other_cores": 0.1, "loadavg_1m": 1.0}}


def test_combine_takes_medians_keeps_rounds_and_gives_intervals() -> None:
    run = combine([_round(100, 3.0), _round(120, 2.0), _round(110, 9.0),
                   _round(0, 0, status="failed")])
    assert run["status"] == "ok" and run["rounds_ok"] == 3 and len(run["rounds"]) == 4
    assert run["rps"] == 110 and run["latency_ms"]["p95"] == 3.0
    assert run["ci"]["rps"][0] >= 100 and run["ci"]["rps"][1] <= 120
    assert run["ci_level"] == 0.75 and run["server"]["name"] == "uvicorn"
    assert run["machine"]["loadavg_1m"] == 1.0
    assert [r["rps"] for r in run["rounds"]] == [100, 120, 110, 0]
    assert precise_enough(run, 50, 3) and not precise_enough(run, 1, 3)
    # A summary written before rounds existed reads as one round.
    old = _round(100, 3.0)
    assert run_rounds(old) == [old] and combine([old]) is old
    # Rounds read back carry the cell's fields under their own figures.
    back = run_rounds(run)
    assert [r["rps"] for r in back] == [100, 120, 110, 0]
    assert all(r["target"] == "fastapi" for r in back) and back[3]["status"] == "failed"


def test_each_round_keeps_its_own_bottleneck() -> None:
    """The claims read which resource limited every round, not only the folded run's."""
    limits = ["cpu_quota", "worker_slots"]
    rounds = [{**_round(100, 3.0), "bottleneck": {"resource": r, "evidence": r}}
              for r in limits]
    assert [r["bottleneck"]["resource"] for r in run_rounds(combine(rounds))] == limits


def test_round_options_are_checked() -> None:
    assert parse_rounds(None, None) == (1, None)
    assert parse_rounds(None, "5%") == (10, 5.0)
    assert parse_rounds("4", "2.5") == (4, 2.5)
    for rounds, pct, word in (("0", None, "--rounds"), ("x", None, "--rounds"),
                              ("2", "5", "--until-ci"), (None, "120", "--until-ci"),
                              (None, "abc", "--until-ci")):
        with pytest.raises(OptionError, match=word):
            parse_rounds(rounds, pct)


def test_matrix_files_carry_rounds() -> None:
    text = ('[matrix]\ntargets = ["fastapi"]\nscenarios = ["json"]\nrounds = 3\n'
            'until_ci = "4%"\n')
    m = parse_matrix(text)
    assert (m.rounds, m.until_ci) == (3, 4.0)
    with pytest.raises(MatrixError, match=r"matrix.toml:5: matrix.until_ci"):
        parse_matrix(text.replace('"4%"', "true"))


@pytest.mark.slow
def test_rounds_alternate_on_fresh_servers_and_fold_into_medians(tmp_path: Path) -> None:
    env, tag = tagged_env()
    try:
        done = loadlab(["run", "--target", "both", "--scenario", "json", "--users", "2",
                        *SHORT, "--rounds", "2", "--out", str(tmp_path)], env, timeout=240)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr
    runs = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert [r["target"] for r in runs] == ["fastapi", "flask"]
    order = sorted((rd["started_at"], rd["run_id"], r["target"])
                   for r in runs for rd in r["rounds"])
    assert [t for _, _, t in order] == ["fastapi", "flask", "fastapi", "flask"], order
    for run in runs:
        rounds = run["rounds"]
        assert len(rounds) == 2 and all(rd["status"] == "ok" for rd in rounds)
        assert run["rps"] == pytest.approx(sum(rd["rps"] for rd in rounds) / 2, abs=0.01)
        low, high = run["ci"]["rps"]
        assert low <= run["rps"] <= high and run["ci_level"] == 0.5
        assert set(run["ci"]) == {"rps", "p50", "p95", "p99", "cpu_per_request_ms"}
        # Each round on its own server: two distinct service processes.
        assert all("loadavg_1m" in rd["machine"] and "other_cores" in rd["machine"]
                   for rd in rounds)
        assert all(rd["server"]["cpu_per_request_ms"] for rd in rounds)


@pytest.mark.slow
def test_until_ci_stops_once_the_interval_is_narrow_enough(tmp_path: Path) -> None:
    # ±90% is met by any 3 rounds: the run stops there instead of going on to 5.
    env, tag = tagged_env()
    try:
        done = loadlab(["run", "--target", "fastapi", "--scenario", "json", "--users", "2",
                        *SHORT, "--rounds", "5", "--until-ci", "90%", "--out", str(tmp_path)],
                       env, timeout=240)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr
    run = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
    assert len(run["rounds"]) == 3, [r["rps"] for r in run["rounds"]]
    assert run["precision"]["target_pct"] == 90.0
    assert run["precision"]["half_width_pct"] <= 90.0
    assert "every interval within ±90% after 3 rounds" in done.stdout + done.stderr
