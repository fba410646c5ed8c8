"""loadlab run / matrix / report as a user runs them: real services, real Locust, short runs."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
from pathlib import Path

import pytest
from support.runner_cli import (
    SHORT,
    assert_nothing_left,
    interrupted_in_the_second_run,
    kill_tagged,
    loadlab,
    loadlab_here,
    one_line_error,
    running,
    runs_done,
    spawn,
    summary,
    tagged_env,
    two_cell_matrix,
    under_load,
    wait_for,
)

RUN_FIELDS = {"target", "framework", "server", "scenario", "cpus", "workers", "worker_class",
              "threads", "users", "duration_s", "requests", "failures", "rps", "latency_ms"}


@pytest.mark.parametrize(("args", "words"), [
    (["--target", "django", "--scenario", "io"], "unknown target"),
    (["--target", "flask", "--scenario", "sleep"], "unknown scenario"),
    (["--target", "flask", "--scenario", "io", "--worker-class", "uvicorn"], "worker class"),
    (["--target", "both", "--scenario", "io", "--worker-class", "eventlet"], "worker class"),
    (["--target", "flask", "--scenario", "io", "--duration", "ten"], "--duration"),
    (["--target", "flask", "--scenario", "io", "--arrival-rate", "fast"], "--arrival-rate"),
    (["--target", "flask", "--scenario", "io", "--cpus", "-1"], "--cpus"),
    (["--target", "flask", "--scenario", "io", "--users", "0"], "--users"),
    (["--target", "flask", "--scenario", "io", "--runtime", "k8s"], "runtime"),
])
def test_bad_input_exits_2_in_one_line(args: list[str], words: str, tmp_path: Path,
                                       env: tuple[dict[str, str], str]) -> None:
    """Refused before anything starts, so checked in this process (``cli.main``); the
    process path of the same refusal: test_port_in_use_exits_2."""
    result = loadlab_here(["run", *args, "--out", str(tmp_path / "r")], env[1])
    assert result.returncode == 2
    assert words in one_line_error(result.stderr)
    assert not (tmp_path / "r").exists()
    assert_nothing_left(env[1])


def test_matrix_with_a_wrong_key_names_it(tmp_path: Path,
                                         env: tuple[dict[str, str], str]) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[matrix]\nscenarios = ["io"]\nuser = [10]\n')
    result = loadlab_here(["matrix", str(path)], env[1])
    assert result.returncode == 2
    assert "m.toml:3: matrix.user: unknown key" in one_line_error(result.stderr)


def test_port_in_use_exits_2(tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    """The ``loadlab`` process itself: one line on its stderr, exit 2, nothing left."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = loadlab(["run", "--target", "fastapi", "--scenario", "json", "--port",
                          str(port), *SHORT, "--out", str(tmp_path / "r")], env[0])
    assert result.returncode == 2
    assert "in use" in one_line_error(result.stderr)
    assert_nothing_left(env[1])


@pytest.mark.slow  # a real run whose service fails to start, then its teardown
def test_service_that_fails_to_start_shows_its_log(tmp_path: Path) -> None:
    environment, tag = tagged_env(LOADLAB_SERVICES_DIR=str(tmp_path / "nowhere"))
    try:
        result = loadlab(["run", "--target", "flask", "--scenario", "json", *SHORT,
                          "--out", str(tmp_path / "r")], environment)
        assert result.returncode == 2
        line = one_line_error(result.stderr)
        assert "did not start" in line and "nowhere/flask" in line  # its last log line
        assert_nothing_left(tag)
    finally:
        kill_tagged(tag)


@pytest.mark.slow
def test_run_both_writes_results_and_passes_gates(tmp_path: Path,
                                                 env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "both"
    result = loadlab(["run", "--target", "both", "--scenario", "json", "--users", "4", *SHORT,
                      "--min-rps", "1", "--max-error-rate", "0.05", "--out", "both"], env[0],
                     cwd=tmp_path)  # a relative --out, as users type it
    assert result.returncode == 0, result.stderr
    data = summary(out)
    runs = data["runs"]
    assert [r["target"] for r in runs] == ["fastapi", "flask"]
    for run in runs:
        assert set(run) >= RUN_FIELDS
        assert run["status"] == "ok" and run["requests"] > 0 and run["rps"] > 1
        assert run["latency_ms"]["p50"] <= run["latency_ms"]["p95"] <= run["latency_ms"]["p99"]
        assert run["server"]["name"] in ("uvicorn", "gunicorn")
        assert run["server"]["cpu_seconds"] > 0 and run["server"]["memory_bytes"] > 1e6
        # Sampled at loadlab serve's side port, outside the worker pool.
        assert run["server"]["scrape"] == "side-port" and run["server"]["scrape_errors"] == 0
        assert (out / run["locust_json"]).is_file()
        assert run["machine"]["load_generator_cores"] > 0  # Locust's CPU in the window
        assert run["machine"]["busy_cores"] > 0  # the service and Locust worked in the window
    manifest = data["manifest"]
    for key in ("git_commit", "versions", "lock_sha256", "cpu_model", "cores",
                "cgroup_version", "limits_applied", "load_generator_peak_cpu_percent",
                "command_line"):
        assert key in manifest
    assert manifest["load_generator_peak_cpu_percent"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["lock_sha256"])  # the checkout's uv.lock
    assert "--target both" in manifest["command_line"]
    with (out / "runs.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "report:" in result.stdout and (out / "report.html").is_file()
    assert_nothing_left(env[1])


@pytest.mark.slow
def test_failing_gate_exits_1_naming_gate_and_figure(tmp_path: Path,
                                                     env: tuple[dict[str, str], str]) -> None:
    result = loadlab(["run", "--target", "fastapi", "--scenario", "json", "--users", "2",
                      *SHORT, "--max-p95-ms", "0.001", "--out", str(tmp_path / "g")], env[0])
    assert result.returncode == 1
    assert "gate missed: --max-p95-ms 0.001: fastapi/json p95 = " in result.stderr
    assert_nothing_left(env[1])


@pytest.mark.slow
def test_matrix_then_resume_skips_done_cells(tmp_path: Path,
                                             env: tuple[dict[str, str], str]) -> None:
    matrix = two_cell_matrix(tmp_path / "m.toml", duration="2s")
    out = tmp_path / "m"
    first = loadlab(["matrix", str(matrix), "--out", str(out)], env[0])
    assert first.returncode == 0, first.stderr
    assert [r["users"] for r in summary(out)["runs"]] == [2, 4]
    again = loadlab(["matrix", str(matrix), "--out", str(out), "--resume"], env[0])
    assert again.returncode == 0
    assert "2 of 2 cells already done" in again.stderr
    assert len(summary(out)["runs"]) == 2
    # A results directory from another version is refused, with the reason.
    text = (out / "summary.json").read_text()
    (out / "summary.json").write_text(
        text.replace('"loadlab_version": "', '"loadlab_version": "0.0.0-'))
    other = loadlab(["matrix", str(matrix), "--out", str(out), "--resume"], env[0])
    assert other.returncode == 2
    assert "cannot resume" in one_line_error(other.stderr)
    assert_nothing_left(env[1])


@pytest.mark.slow
def test_ctrl_c_in_the_second_run_keeps_the_first(tmp_path: Path,
                                                  env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "c"
    proc = spawn(["matrix", str(two_cell_matrix(tmp_path / "m.toml", "6s")), "--out", str(out)],
                 env[0])
    stderr = interrupted_in_the_second_run(proc, out)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: kept 1" in stderr
    runs = summary(out)["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    assert not (out / ".running.json").exists()
    assert_nothing_left(env[1])


@pytest.mark.slow
def test_runner_killed_mid_matrix_then_resume_finishes(tmp_path: Path,
                                                       env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "k"
    matrix = two_cell_matrix(tmp_path / "m.toml", "3s")
    proc = spawn(["matrix", str(matrix), "--out", str(out)], env[0])
    try:
        wait_for(lambda: runs_done(out) == 1 and len(running(out)) == 2, 90, "the second run")
        proc.kill()  # SIGKILL: no clean-up at all
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(summary(out)["runs"]) == 1  # valid JSON, the finished run kept
    # Its service and Locust end with it (test_runner_safety); the lock dies with it too.
    assert_nothing_left(env[1])
    resumed = loadlab(["matrix", str(matrix), "--out", str(out), "--resume"], env[0])
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cells already done" in resumed.stderr
    assert [r["users"] for r in summary(out)["runs"]] == [2, 4]
    assert_nothing_left(env[1])


@pytest.mark.slow
def test_service_killed_mid_run_fails_that_run_and_the_matrix_goes_on(
    tmp_path: Path, env: tuple[dict[str, str], str],
) -> None:
    out = tmp_path / "s"
    proc = spawn(["matrix", str(two_cell_matrix(tmp_path / "m.toml", "4s")), "--out", str(out)],
                 env[0])
    try:
        wait_for(lambda: under_load(out), 60, "the first run under load")
        service = next(e for e in running(out) if e["role"] == "service")
        os.killpg(service["pid"], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    first, second = summary(out)["runs"]
    assert first["status"] == "failed" and "service exited" in first["error"]
    assert second["status"] == "ok" and second["requests"] > 0
    assert "failed: fastapi/json: run failed" in stderr
    assert_nothing_left(env[1])
