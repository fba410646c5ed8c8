"""The measured window counts what the server finished inside it: requests still queued at
the stop, which the server drains during Locust's --stop-timeout, are not served capacity.
A real sync worker with a backlog, through the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runner_cli import kill_tagged, loadlab, summary, tagged_env

pytestmark = pytest.mark.slow  # a real Locust run with a backlog


def test_a_backlog_drained_after_the_stop_is_not_counted_as_served(tmp_path: Path) -> None:
    env, tag = tagged_env()
    try:
        done = loadlab(["run", "--target", "flask", "--worker-class", "sync", "--workers", "1",
                        "--scenario", "io", "--io-ms", "100", "--users", "10",
                        "--duration", "3s", "--warmup", "1s", "--out", str(tmp_path)], env)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr
    run = summary(tmp_path)["runs"][0]
    # One sync worker holds one 100 ms wait at a time: 10 completions a second at most.
    # (+1: a completion that straddles the window's start.)
    assert 0 < run["requests"] <= 10 * run["measured_s"] + 1, run
    assert run["rps"] <= 10.4, run
    lab = json.loads(next((tmp_path / "raw").glob("*.loadlab.json")).read_text())
    assert lab["window"]["requests"] == run["requests"]
    # Locust's own totals also hold the nine users' requests queued at the stop.
    assert lab["requests"] >= run["requests"] + 5, (lab["requests"], run["requests"])
