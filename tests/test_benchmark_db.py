"""The database benchmark's machinery, once at a toy size, so that it cannot rot: the lab
and the bare app side by side with their own connections, the database's CPU attributed,
one point of the pool curve with the connections the database saw. No timed assertions."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_db
from _reliability import can_pin

from loadlab.pgcluster import PostgresCluster, PostgresUnavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_pin() or shutil.which("wrk") is None
                       or shutil.which("taskset") is None,
                       reason="needs cores 0 and 1, wrk and taskset"),
]


@pytest.fixture(scope="module")
def cluster(database_url: str) -> Iterator[PostgresCluster]:
    """A cluster of this module's own: the benchmark reads its postmaster's CPU."""
    del database_url  # skips (or fails in CI) the same way when PostgreSQL is missing
    before = os.sched_getaffinity(0)
    try:
        own = PostgresCluster().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    try:
        bench_db.place_database(own, bench_db.PLACEMENTS["server"])
        yield own
    finally:
        own.stop()
        os.sched_setaffinity(0, before)  # the pinning helper moved us to the load core


def test_pair_measures_both_apps_and_the_database(cluster: PostgresCluster) -> None:
    variant = bench_db.VARIANTS["flask-sync-1w"]
    result = bench_db.measure_pair(cluster, variant, ["/db", "/db/sleep?ms=2"], rounds=1,
                                   seconds=1)
    assert result["pool_size"] == 1
    for figures in result["paths"].values():
        (one,) = figures["rounds"]
        for app in bench_db.APPS:
            assert one[app]["requests"] > 0 and one[app]["bad"] == 0
            assert one[app]["ms_per_request"] > 0
            # Each app's own connection did its queries.
            assert one[app]["db_backend_ms_per_request"] > 0
        assert one["db_ms_per_request"] > 0 and figures["rps_ratio"] > 0
    # Everything the pair started is gone: only this module's monitor may remain.
    with bench_db.monitor(cluster) as conn:
        assert not any(bench_db.backend_pids(conn, f"bench-{app}") for app in bench_db.APPS)


def test_curve_point_sees_the_pool_in_the_database(cluster: PostgresCluster) -> None:
    (point,) = [bench_db.measure_point(cluster, variant, pool, clients=8, ms=20, seconds=1)
                for variant, pool in bench_db.curve_points([2], [])]
    assert point["bad"] == 0 and point["rps"] > 0
    # One Uvicorn process with pool 2 holds exactly two connections, both busy under load.
    assert point["db_connections"]["app"] == 2
    assert point["db_connections"]["active_peak"] == 2
    assert point["ceiling_rps"] == 100


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_db.parse_args(["--pools", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "bench_db: --pools must be 1-200"
