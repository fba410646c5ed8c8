"""Real short runs through the runner's execute(): the warm-up is out of every figure, a
saturated load generator is said in the run's record and on the terminal, and a service
stopped behind (while the next starts) is gone before the next is ready."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support.metrics_scrape import scrape
from support.runner_cli import loadlab, summary, tagged_env

from loadlab.runner.execute import execute
from loadlab.runner.native import NativeRuntime
from loadlab.runner.options import RunSpec
from loadlab.runner.runtime_base import Endpoint
from loadlab.serve import ServerConfig

IO_MS = 50


@dataclass
class CountingRuntime(NativeRuntime):
    """The native runtime, reading the service's own request counter just before it stops
    it: what the service answered over the whole run, the warm-up included."""

    served: float | None = None
    _url: str = ""

    def launch(self, cfg: ServerConfig,
               env: Mapping[str, str] | None = None) -> Endpoint:  # start() calls it too
        endpoint = super().launch(cfg, env)
        self._url = endpoint.base_url
        return endpoint

    def stop(self) -> None:
        if self._url and self.served is None:
            self.served = scrape(self._url).value("http_requests_total", handler="/io",
                                                  method="GET", status="200")
        super().stop()


@pytest.mark.slow
def test_requests_of_the_warm_up_are_not_in_the_figures(tmp_path: Path) -> None:
    users, warmup_s, duration_s = 2, 3.0, 3.0
    spec = RunSpec(target="fastapi", scenario="io", users=users, warmup_s=warmup_s,
                   duration_s=duration_s, io_ms=IO_MS)
    runtime = CountingRuntime()
    record = execute(spec, runtime, tmp_path / "raw", "warmup-check")
    assert record["status"] == "ok", record.get("error")
    assert record["warmup_excluded"] == "all"  # the locustfile reset its statistics
    assert runtime.served is not None
    # Each user waits for each answer, and each answer takes at least IO_MS on the server:
    # the measured window cannot hold more than this, whatever the machine's speed ...
    most = users * (record["measured_s"] * 1000 / IO_MS + 1)
    assert 0 < record["requests"] <= most, (record["requests"], most)
    # ... while the service answered the warm-up's requests too (the same users, 3 s).
    warmup_requests = runtime.served - record["requests"]
    assert warmup_requests >= 10, (runtime.served, record["requests"])
    assert record["load"]["saturated"] is False
    assert "notes" not in record or not any("load generator" in n for n in record["notes"])


@pytest.mark.slow
def test_a_saturated_load_generator_is_recorded_and_printed(tmp_path: Path) -> None:
    """The locustfile's CPU warning with its threshold at 1%, which any run exceeds."""
    matrix = tmp_path / "m.toml"
    matrix.write_text(
        "[matrix]\n"
        'targets = ["fastapi"]\n'
        'scenarios = ["json"]\n'
        "users = [4]\n"
        'duration = "3s"\n'
        'warmup = "1s"\n'
        '[matrix.extra]\n'
        '"cpu-warn-percent" = 1\n'
    )
    env, _ = tagged_env()
    out = tmp_path / "out"
    done = loadlab(["matrix", str(matrix), "--out", str(out)], env)
    assert done.returncode == 0, done.stderr
    [run] = summary(out)["runs"]
    assert run["load"]["saturated"] is True
    [line] = [n for n in run["notes"] if "load generator" in n]
    assert line.startswith("warning: the load generator reached ") and "% CPU" in line
    assert "note: warning: the load generator reached" in done.stderr  # on the terminal
    lab = json.loads(next((out / "raw").glob("*.loadlab.json")).read_text())
    assert lab["locust_cpu_warning"] is True  # where the record's flag comes from


@pytest.mark.slow
def test_a_service_stopped_behind_is_gone_once_the_next_one_is_ready() -> None:
    runtime = NativeRuntime()
    first = runtime.start(ServerConfig(framework="flask", worker_class="sync", workers=3))
    assert first.pid is not None
    old = psutil.Process(first.pid)
    tree = [old, *old.children(recursive=True)]
    runtime.stop_behind()  # SIGTERM sent; its exit overlaps the next start
    second = runtime.launch(ServerConfig(framework="fastapi"))
    try:
        runtime.wait_ready()  # settles first: nothing of the old service is left to sample
        assert not any(p.is_running() for p in tree), tree
        with urllib.request.urlopen(f"{second.base_url}/healthz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        runtime.stop()
    assert second.pid is not None and not psutil.pid_exists(second.pid)
