"""Real short runs of the built-in services, one per textbook bottleneck: the run record
names the resource that limited it, and the terminal says it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.runner_cli import SHORT, assert_nothing_left, kill_tagged, loadlab, summary, tagged_env

CASES = {
    "worker_slots": ["--target", "flask", "--worker-class", "sync", "--workers", "1",
                     "--scenario", "io", "--io-ms", "50", "--users", "50"],
    "event_loop": ["--target", "fastapi", "--scenario", "cpu-blocking", "--cpu-work", "200",
                   "--users", "10"],
    "cpu_quota": ["--target", "flask", "--worker-class", "sync", "--workers", "2",
                  "--cpus", "1", "--scenario", "cpu", "--cpu-work", "200", "--users", "10"],
    "offered_load": ["--target", "fastapi", "--scenario", "io", "--io-ms", "50",
                     "--users", "50"],
}


@pytest.mark.slow
@pytest.mark.parametrize("resource", list(CASES))
def test_a_real_run_names_its_bottleneck(resource: str, tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "out"
    try:
        done = loadlab(["run", *CASES[resource], "--duration", "4s", "--warmup", "2s",
                        "--out", str(out)], env, timeout=180)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["status"] == "ok", run.get("error")
    verdict = run["bottleneck"]
    assert verdict["resource"] == resource, verdict
    assert verdict["evidence"] in done.stdout + done.stderr
    assert_nothing_left(tag)


@pytest.mark.slow
def test_a_small_pool_under_many_database_users_is_the_bottleneck(
        tmp_path: Path, database_url: str) -> None:
    del database_url  # the same skip (or CI failure) when PostgreSQL is missing
    env, tag = tagged_env()
    env.pop("DATABASE_URL", None)
    out = tmp_path / "db"
    try:
        done = loadlab(["run", "--target", "fastapi", "--scenario", "db-sleep", "--io-ms", "50",
                        "--users", "50", "--db-pool-size", "5", *SHORT, "--out", str(out)],
                       env, timeout=300)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["bottleneck"]["resource"] == "db_pool", run["bottleneck"]
    assert_nothing_left(tag)
