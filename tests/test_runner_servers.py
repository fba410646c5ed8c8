"""``loadlab run``/``matrix`` on a chosen server and interpreter: ``--server``,
``--backpressure``, ``--python ft``.

Real runs (short) for the record's server, interpreter and GIL fields; option errors are
one line and exit 2. Server names come from the registry (servers.py) only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from support.runner_cli import (
    SHORT,
    assert_nothing_left,
    loadlab,
    loadlab_here,
    one_line_error,
    summary,
)
from support.services import require_ft

from loadlab import servers
from loadlab.runner.commands import with_server_options
from loadlab.runner.interpreter import gil_note
from loadlab.runner.matrix import MatrixError, parse_matrix
from loadlab.runner.options import OptionError, RunSpec
from loadlab.runs.record import variant_label

GRANIAN = "granian"
assert GRANIAN in servers.SERVERS


@pytest.mark.parametrize(("args", "words"), [
    (["--target", "flask", "--worker-class", "gevent", "--python", "ft"],
     "gevent (and the cffi it needs) do not support free-threaded"),
    (["--server", GRANIAN, "--backpressure", "0"], "--backpressure: 0 must be between 1"),
    (["--server", GRANIAN, "--backpressure", "100001"], "--backpressure: 100001 must be"),
    (["--server", GRANIAN, "--backpressure", "many"], "--backpressure: cannot read"),
    (["--target", "both", "--backpressure", "8"], "--backpressure applies to Granian only"),
    (["--target", "flask", "--server", "uvicorn"], "--server uvicorn does not serve flask"),
    (["--server", "nginx"], "--server: unknown server 'nginx'"),
    (["--server", "gunicorn", "--worker-class", GRANIAN], "not Gunicorn's"),
    (["--python", "pypy"], "--python: 'pypy' is not one of default, ft"),
    (["--python", "ft", "--runtime", "compose"], "--python ft runs natively only"),
])
def test_bad_server_options_exit_2_in_one_line(args: list[str], words: str, tmp_path: Path,
                                               env: tuple[dict[str, str], str]) -> None:
    _, tag = env  # refused before anything starts: in this process (cli.main)
    done = loadlab_here(["run", "--scenario", "json", "--out", str(tmp_path / "out"), *args],
                        tag)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in one_line_error(done.stderr)
    assert not (tmp_path / "out" / "summary.json").exists()
    assert_nothing_left(tag)


def test_missing_ft_interpreter_is_refused_before_anything_starts(
        tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    _, tag = env
    done = loadlab_here(["run", "--scenario", "json", "--target", "fastapi", "--python", "ft",
                         "--out", str(tmp_path / "out")], tag,
                        env={"LOADLAB_PYTHON_FT": str(tmp_path / "no-such-python")})
    assert done.returncode == 2, done.stderr
    assert ".ci/build-python-ft" in one_line_error(done.stderr)
    assert_nothing_left(tag)


@pytest.mark.slow
def test_both_apps_run_on_granian_and_the_record_says_so(
        tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    environment, tag = env
    out = tmp_path / "out"
    done = loadlab(["run", "--scenario", "json", "--target", "both", "--server", GRANIAN,
                    "--users", "2", *SHORT, "--out", str(out)], environment)
    assert done.returncode == 0, done.stderr
    runs = {r["target"]: r for r in summary(out)["runs"]}
    assert set(runs) == {"fastapi", "flask"}
    for run in runs.values():
        assert run["status"] == "ok" and run["requests"] > 0, run
        assert run["worker_class"] == GRANIAN and run["server"]["name"] == GRANIAN
        assert run["python"] == "default" and run["backpressure"] is None
        # Inside a request on the normal build, the GIL is on.
        assert run["server"]["gil_enabled"] is True
        assert run["server"]["python"]["free_threaded"] is False
        assert "Granian worker" in variant_label(run, "prose")
    assert "on one Granian worker" in done.stdout
    versions = summary(out)["manifest"]["versions"]
    assert {"granian", "psycopg", "psycopg-pool"} <= set(versions)
    assert_nothing_left(tag)


@pytest.mark.slow
def test_a_free_threaded_run_records_the_gil_off_inside_a_request(
        tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    require_ft()
    environment, tag = env
    out = tmp_path / "out"
    done = loadlab(["run", "--scenario", "json", "--target", "flask", "--server", GRANIAN,
                    "--threads", "2", "--backpressure", "4", "--python", "ft", "--users", "2",
                    *SHORT, "--out", str(out)], environment)
    assert done.returncode == 0, done.stderr
    (run,) = summary(out)["runs"]
    assert run["status"] == "ok" and run["requests"] > 0, run
    assert (run["python"], run["backpressure"], run["threads"]) == ("ft", 4, 2)
    assert run["server"]["python"]["free_threaded"] is True
    assert run["server"]["gil_enabled"] is False
    assert "notes" not in run or not any("GIL" in n for n in run["notes"])
    assert run["key"].endswith("-bp4-pyft")
    assert "(free-threaded)" in variant_label(run, "prose")
    assert "free-threaded" in done.stdout
    # The report's runs table names the server and the interpreter with the GIL's state.
    report = (out / "report.html").read_text()
    assert "3.13" in report and "free-threaded, GIL off" in report
    assert_nothing_left(tag)


@pytest.mark.slow
def test_gthread_on_the_free_threaded_build(tmp_path: Path,
                                            env: tuple[dict[str, str], str]) -> None:
    require_ft()
    environment, tag = env
    out = tmp_path / "out"
    done = loadlab(["run", "--scenario", "json", "--target", "flask", "--worker-class",
                    "gthread", "--threads", "2", "--python", "ft", "--users", "2", *SHORT,
                    "--out", str(out)], environment)
    assert done.returncode == 0, done.stderr
    (run,) = summary(out)["runs"]
    assert run["server"]["name"] == "gunicorn" and run["server"]["gil_enabled"] is False
    assert_nothing_left(tag)


def test_a_ft_build_with_the_gil_on_is_named_so() -> None:
    run = {"target": "flask", "worker_class": GRANIAN, "workers": 1, "threads": 1, "cpus": 0,
           "python": "ft", "server": {"gil_enabled": True}}
    assert "but the GIL was on" in variant_label(run, "prose")
    assert gil_note("ft", True) is not None and gil_note("ft", None) is not None
    assert gil_note("ft", False) is None and gil_note("default", True) is None


def test_cells_on_another_server_or_interpreter_are_other_cells() -> None:
    base = RunSpec("flask", "json", worker_class=GRANIAN)
    keys = {base.key, base.with_(backpressure=8).key, base.with_(python="ft").key}
    assert len(keys) == 3
    # The default ones keep the keys earlier results were stored under.
    assert RunSpec("flask", "json").key == "flask-json-u10-c0-w1-sync-t1-d30"
    with pytest.raises(OptionError, match="--backpressure applies to --worker-class granian"):
        RunSpec("flask", "json", backpressure=8)


MATRIX = """
[matrix]
targets = ["fastapi", "flask"]
scenarios = ["json"]
servers = ["gunicorn", "granian"]
pythons = ["default", "ft"]
threads = [1, 2]
backpressure = 16
"""


def test_a_matrix_names_servers_and_interpreters() -> None:
    cells = parse_matrix(MATRIX).cells
    seen = {(c.target, c.worker_class, c.threads, c.python, c.backpressure) for c in cells}
    assert ("fastapi", GRANIAN, 1, "ft", 16) in seen
    assert ("flask", GRANIAN, 2, "default", 16) in seen  # Granian's blocking threads
    assert ("flask", "sync", 1, "ft", None) in seen  # backpressure is Granian's alone
    assert not any(c.threads > 1 and c.worker_class == "sync" for c in cells)
    assert all(c.worker_class != "gevent" for c in cells)


@pytest.mark.parametrize(("text", "words"), [
    (MATRIX.replace('servers = ["gunicorn", "granian"]',
                    'servers = ["gunicorn"]\nworker_classes = { flask = ["sync"] }'),
     "servers or worker_classes"),
    (MATRIX.replace('servers = ["gunicorn", "granian"]', 'servers = ["nginx"]'),
     "matrix.servers"),
    (MATRIX.replace('pythons = ["default", "ft"]', 'pythons = ["pypy"]'), "matrix.pythons"),
    ('[matrix]\ntargets = ["flask"]\nscenarios = ["json"]\nservers = ["uvicorn"]\n',
     "none of uvicorn serves flask"),
])
def test_bad_matrix_server_keys_name_the_key(text: str, words: str) -> None:
    with pytest.raises(MatrixError, match=words):
        parse_matrix(text)


def _args(**given: str | None) -> argparse.Namespace:
    return argparse.Namespace(**{"server": None, "backpressure": None, "python": None, **given})


def test_matrix_command_options_apply_to_every_cell() -> None:
    cells = parse_matrix('[matrix]\nscenarios = ["json"]\n'
                         'worker_classes = { flask = ["sync", "gthread"] }\n').cells
    moved = with_server_options(cells, _args(server=GRANIAN, backpressure="8", python="ft"))
    # sync and gthread both become Granian: one cell per app.
    assert sorted((c.target, c.worker_class, c.backpressure, c.python) for c in moved) == [
        ("fastapi", GRANIAN, 8, "ft"), ("flask", GRANIAN, 8, "ft")]
    assert with_server_options(cells, _args()) == cells
    with pytest.raises(OptionError, match="Granian only"):
        with_server_options(cells, _args(backpressure="8"))
    with pytest.raises(OptionError, match="gevent"):
        gevent = parse_matrix('[matrix]\ntargets = ["flask"]\nscenarios = ["json"]\n'
                              'worker_classes = { flask = ["gevent"] }\n').cells
        with_server_options(gevent, _args(python="ft"))


def test_granian_workers_are_one_process_on_the_free_threaded_build() -> None:
    """What readiness waits for: Granian's workers are processes on a normal build and
    threads of one process on a free-threaded one (each process counts 1 in
    loadlab_workers)."""
    from loadlab.serve import ServerConfig

    def processes(**options: object) -> int:
        return servers.worker_processes(ServerConfig(**options))  # type: ignore[arg-type]

    assert processes(framework="fastapi", worker_class=GRANIAN, workers=2) == 2
    assert processes(framework="fastapi", worker_class=GRANIAN, workers=2, python="ft") == 1
    assert processes(framework="flask", worker_class="gthread", workers=2, python="ft") == 2


@pytest.mark.slow
def test_several_granian_workers_start_on_the_free_threaded_build(
        tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    require_ft()
    environment, tag = env
    out = tmp_path / "out"
    done = loadlab(["run", "--scenario", "json", "--target", "fastapi", "--server", GRANIAN,
                    "--workers", "2", "--python", "ft", "--users", "2", *SHORT,
                    "--out", str(out)], environment)
    assert done.returncode == 0, done.stderr
    (run,) = summary(out)["runs"]
    assert run["status"] == "ok" and run["workers"] == 2 and run["requests"] > 0, run
    assert run["server"]["gil_enabled"] is False
    assert_nothing_left(tag)


def test_the_shipped_servers_matrix_runs_each_app_on_each_server_that_serves_it() -> None:
    from loadlab.runner.matrix import load_matrix

    root = Path(__file__).resolve().parents[1]
    cells = load_matrix(root / "matrices" / "servers.toml").cells
    by_target = {t: {c.worker_class for c in cells if c.target == t} for t in servers.INTERFACES}
    for target, classes in by_target.items():
        serving = {servers.class_for(s, target) for s in servers.SERVERS} - {None}
        assert classes == serving, target
    assert len(cells) == 2 * sum(len(c) for c in by_target.values())  # two scenarios
    ft = with_server_options(cells, _args(python="ft"))
    assert len(ft) == len(cells) and all(c.python == "ft" for c in ft)
