"""Bad input to the runner and its readers: one line and exit 2 before anything starts, and
the small helpers the runner's safety rests on (one atomic write, one error base, statuses)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.runner_cli import loadlab_here, tagged, tagged_env

from loadlab.contract import MAX_CPU_WORK, MAX_IO_MS
from loadlab.errors import UserError
from loadlab.fileio import atomic_write
from loadlab.runner.execute import machine_figures
from loadlab.runner.session import BROKEN, ERRORS, OK, judge

QUICK = ["--target", "fastapi", "--scenario", "json", "--duration", "1s", "--warmup", "0s"]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _refused(args: list[str], tmp_path: Path, words: str) -> None:
    _, tag = tagged_env()
    result = loadlab_here(args, tag, cwd=tmp_path)
    assert words in one_line(result)
    assert not tagged(tag)  # refused before anything started


@pytest.mark.parametrize(("out", "words"), [
    ("/dev/null", "cannot use it as a results directory"),
    ("FILE/x", "cannot use it as a results directory"),
    ("/proc/loadlab-x", "cannot use it as a results directory"),
])
def test_an_unusable_out_is_one_line(out: str, words: str, tmp_path: Path) -> None:
    (tmp_path / "FILE").write_text("a file, not a directory\n")
    _refused(["run", *QUICK, "--out", out.replace("FILE", str(tmp_path / "FILE"))],
             tmp_path, words)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_an_out_without_permission_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _refused(["run", *QUICK, "--out", str(locked / "x")], tmp_path, "cannot use it")


@pytest.mark.parametrize(("args", "words"), [
    (["--cpu-work", str(MAX_CPU_WORK + 10_000)], f"between 0 and {MAX_CPU_WORK}"),
    (["--io-ms", str(MAX_IO_MS + 1)], f"between 0 and {MAX_IO_MS}"),
    (["--threads", "4"], "--threads 4 needs --worker-class gthread"),
    (["--target", "flask", "--worker-class", "sync", "--threads", "4"], "needs --worker-class"),
    (["--max-error-rate", "5"], "--max-error-rate"),
])
def test_out_of_bounds_is_refused_before_anything_starts(args: list[str], words: str,
                                                         tmp_path: Path) -> None:
    _refused(["run", *QUICK, *args, "--out", str(tmp_path / "o")], tmp_path, words)
    assert not (tmp_path / "o").exists()


MATRIX = '[matrix]\ntargets = ["fastapi"]\nscenarios = ["json"]\nduration = "1s"\n'


@pytest.mark.parametrize(("text", "words"), [
    (MATRIX.encode() + b'name = "caf\xe9"\n', "not UTF-8"),
    (b"override = [1]\n" + MATRIX.encode(), "override must be [[override]] tables"),
    (b'override = [["match"]]\n' + MATRIX.encode(), "override must be [[override]] tables"),
    (MATRIX.encode() + b"io_ms = 10000000\n", f"0-{MAX_IO_MS}"),
    (MATRIX.encode() + b"cpu_work = 10000000\n", f"0-{MAX_CPU_WORK}"),
    (MATRIX.encode() + b"[gates]\nmax_error_rate = 5\n", "0..1"),
])
def test_bad_matrix_files_are_one_line(text: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(text)
    _refused(["matrix", str(path), "--out", str(tmp_path / "o")], tmp_path, words)


GOOD_RUN = {"run_id": "1", "key": "k", "status": "ok", "target": "fastapi", "scenario": "io",
            "worker_class": "uvicorn", "workers": 1, "threads": 1, "users": 4, "cpus": 0.0,
            "rps": 10.0, "requests": 100, "failures": 0, "io_ms": 50,
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}}


@pytest.mark.parametrize(("runs", "words"), [
    ([1], "run 1 is not a table"),
    ([{**GOOD_RUN, "io_ms": "fifty"}], "'io_ms' that is not a number"),
    ([{k: v for k, v in GOOD_RUN.items() if k != "worker_class"}], "'worker_class'"),
    ([GOOD_RUN, {**GOOD_RUN, "latency_ms": [1, 2]}], "run 2 has a 'latency_ms'"),
])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_compare_and_report_on_a_malformed_summary_are_one_line(
    runs: list[object], words: str, command: str, tmp_path: Path,
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({"format": "loadlab-results/1",
                                                  "manifest": {}, "runs": runs}))
    args = ["report", str(bad)] if command == "report" else ["compare", str(bad), str(bad)]
    _refused(args, tmp_path, words)


def test_a_bad_gunicorn_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    """In a container a traceback and exit 1 is a restart loop; exit 2 parks it."""
    env = dict(os.environ, LOADLAB_WORKER_CONNECTIONS="abc", LOADLAB_BIND="127.0.0.1:0")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("gunicorn")), "--config",
         "python:loadlab.gunicorn_conf", "loadlab.gunicorn_conf:app"],
        env=env, text=True, capture_output=True, timeout=60, cwd=tmp_path)
    assert "LOADLAB_WORKER_CONNECTIONS='abc'" in one_line(result)


def test_every_user_error_class_shares_the_base() -> None:
    from loadlab.launch import LaunchError
    from loadlab.offline import OfflineError
    from loadlab.paths import LabFilesMissing
    from loadlab.pgcluster.binaries import PostgresUnavailable
    from loadlab.pgcluster.cluster import ClusterError
    from loadlab.report.compare import CompareError
    from loadlab.runner.compose import ComposeUnavailable
    from loadlab.runner.leftovers import DirectoryBusy
    from loadlab.runner.matrix import MatrixError
    from loadlab.runner.options import OptionError
    from loadlab.runner.runtime_base import RuntimeError_
    from loadlab.runner.session import StartError
    from loadlab.runner.swarm import SwarmUnavailable
    from loadlab.runs.store import ResultsError
    from loadlab.serve import ServeError
    from loadlab.stack import StackError

    for cls in (PostgresUnavailable, ClusterError, LaunchError, OfflineError, LabFilesMissing,
                CompareError, ResultsError, ComposeUnavailable, DirectoryBusy, MatrixError,
                OptionError, RuntimeError_, StartError, SwarmUnavailable, ServeError,
                StackError):
        assert issubclass(cls, UserError), cls
    assert OfflineError.exit_code == 1 and OptionError.exit_code == 2


def test_atomic_write_keeps_the_umask_and_leaves_no_temporary(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640  # not mkstemp's 0600
    atomic_write(tmp_path / "a.json", b"[]\n")
    assert (tmp_path / "a.json").read_text() == "[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _run(**fields: object) -> dict[str, object]:
    return {**GOOD_RUN, "duration_s": 10.0, "measured_s": 10.0, **fields}


def test_a_run_with_too_many_failures_is_not_ok() -> None:
    # The database lost mid-run: 44 of 502 requests failed, 49.8 req/s against ~700.
    lost = judge(_run(requests=502, failures=44, rps=49.8), 0.01)
    assert lost["status"] == ERRORS and "8.76%" in str(lost["error"])
    assert judge(_run(requests=502, failures=44), 0.1)["status"] == OK  # the user's gate
    assert judge(_run(requests=502, failures=44), None)["status"] == OK  # not judged here
    assert judge(_run(status="failed", error="x"), 0.01)["status"] == "failed"


def test_a_run_with_a_broken_window_is_not_ok() -> None:
    broken = judge(_run(measured_s=2.0), 0.01)
    assert broken["status"] == BROKEN and "2 s of the planned 10 s" in str(broken["error"])
    assert judge(_run(measured_s=9.0), 0.01)["status"] == OK


def test_other_cores_is_what_neither_the_service_nor_locust_used() -> None:
    figures = machine_figures(busy_cores=1.5, server_cores=0.5, load_cores=0.25)
    assert figures["other_cores"] == 0.75 and figures["busy_cores"] == 1.5
    assert figures["load_generator_cores"] == 0.25
    # Sampling noise can put the parts above the whole: never a negative tenant.
    assert machine_figures(0.5, 0.4, 0.3)["other_cores"] == 0.0


def test_a_full_disk_is_a_user_error_not_a_traceback(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from loadlab.runs import store as results

    kept = results.ResultsDir(tmp_path, {"command_line": "loadlab run"})

    def full(path: Path, text: str, mode: int | None = None) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results, "atomic_write", full)
    with pytest.raises(results.ResultsError, match="No space left on device"):
        kept.add(dict(GOOD_RUN))
