"""The database scenarios end to end: Locust against services behind a real pool, and
``loadlab run`` starting (and removing) its own PostgreSQL, recording what it saw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.locust_process import headless
from support.runner_cli import SHORT, assert_nothing_left, kill_tagged, loadlab, summary, tagged_env
from support.services import VARIANTS, db_service

from loadlab.launch import ServiceProcess
from loadlab.pgcluster.cluster import clusters_root
from loadlab.runner.matrix import parse_matrix

ROUTES = {"db": "/db", "queries": "/queries", "db-sleep": "/db/sleep",
          "db-blocking": "/db/blocking"}


@pytest.fixture(scope="module", params=["fastapi-uvicorn", "flask-gthread"])
def service(request: pytest.FixtureRequest, database_url: str) -> Iterator[ServiceProcess]:
    with db_service(database_url, **VARIANTS[request.param]) as proc:
        yield proc


@pytest.mark.slow
def test_every_database_scenario_runs_clean(service: ServiceProcess) -> None:
    procs = {name: headless(service.url, "--scenario", name, "--io-ms", "5", "--queries", "3",
                            users=3, run_time="4s").start() for name in ROUTES}
    for name, lo in procs.items():
        run = lo.finish(timeout_s=90)
        assert run.returncode == 0, f"{name}: exit {run.returncode}\n{run.output[-2000:]}"
        seen = {e["name"] for e in run.stats if e["num_requests"] > 0}
        assert seen == {ROUTES[name]}, (name, seen)
        assert run.requests > 0 and run.failures == 0, (name, run.stats)


@pytest.mark.slow
def test_run_starts_its_database_and_records_it(tmp_path: Path, database_url: str) -> None:
    del database_url  # the same skip (or CI failure) when PostgreSQL is missing
    env, tag = tagged_env()
    env.pop("DATABASE_URL", None)
    out = tmp_path / "db"
    try:
        result = loadlab(["run", "--target", "both", "--scenario", "db", "--users", "8",
                          "--workers", "2", "--db-pool-size", "3", *SHORT, "--out", str(out)],
                         env, timeout=300)
    finally:
        kill_tagged(tag)
    assert result.returncode == 0, result.stderr[-2000:]
    data = summary(out)
    database = data["manifest"]["database"]
    assert database["version"].startswith(("15", "16", "17")) and database["source"]
    assert int(database["max_connections"]) >= 10
    for run in data["runs"]:
        assert run["status"] == "ok" and run["failures"] == 0 and run["requests"] > 0
        assert run["db_pool_size"] == 3
        seen = run["database"]
        # Pools are per process and fixed-size: 2 workers x 3 connections, on both stacks.
        assert seen["connections_peak"] == 2 * 3, run["target"]
        # Measured (whole clock ticks: a 2 s window of a light load may read 0.0).
        assert seen["cpu_seconds"] is not None and seen["cpu_seconds"] >= 0
    assert not [p for p in clusters_root().glob("loadlab-pg-*")
                if str(out) in p.name], "the cluster's directory is gone"
    assert_nothing_left(tag)


@pytest.mark.parametrize(("args", "words"), [
    (["--db-pool-size", "0"], "--db-pool-size"),
    (["--db-pool-size", "x"], "--db-pool-size"),
])
def test_bad_pool_size_is_one_line_exit_2(args: list[str], words: str) -> None:
    env, _ = tagged_env()
    result = loadlab(["run", "--scenario", "db", *args], env, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr


def test_matrix_sweeps_the_pool_size() -> None:
    matrix = parse_matrix('[matrix]\ntargets = ["fastapi"]\nscenarios = ["db-sleep"]\n'
                          'db_pool_size = [1, 5, 10]\n[[override]]\n'
                          'match = { db_pool_size = 10 }\nusers = [40]\n')
    assert [c.db_pool_size for c in matrix.cells] == [1, 5, 10]
    assert [c.users for c in matrix.cells] == [10, 10, 40]
    assert len({c.key for c in matrix.cells}) == 3
