"""The exporter at Locust's /metrics: its counts equal Locust's own statistics (from the
--json-file output), single-process and distributed, and a killed worker breaks nothing."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from support.locust_process import (
    ROOT,
    Locust,
    aggregated_requests,
    exporter_totals,
    free_port,
    get,
    metrics,
    settled_metrics,
    stats_totals,
    stop_and_collect,
    wait_for,
)
from support.services import start_service
from support.system_tools import require_tool

from loadlab.launch import ServiceProcess


@pytest.fixture(scope="module")
def fastapi() -> Iterator[ServiceProcess]:
    proc = start_service(framework="fastapi", worker_class="uvicorn", workers=2)
    try:
        yield proc
    finally:
        proc.stop()


def web_run(url: str, web_port: int, run_time: str, *extra: str) -> Locust:
    """The web UI started on loopback that starts a swarm by itself and stops after run_time."""
    lo = Locust([])
    lo.args = [
        "--host", url, "--scenario", "all", "--io-ms", "5", "--cpu-work", "5",
        "-u", "6", "-r", "30", "-t", run_time, "--autostart", "--autoquit", "120",
        "--web-host", "127.0.0.1", "--web-port", str(web_port),
        "--json-file", str(lo.json_prefix), *extra,
    ]
    return lo


def check_promtool(text: str) -> None:
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def assert_histogram_is_true(text: str) -> None:
    """Buckets are cumulative, end at +Inf = count, and the sum is plausible."""
    samples = metrics(text)
    for (name, labels), count in samples.items():
        if name != "locust_response_time_seconds_count":
            continue
        lab = dict(labels)
        buckets = sorted(
            ((float(dict(lb)["le"]), v) for (n, lb), v in samples.items()
             if n == "locust_response_time_seconds_bucket"
             and all(dict(lb)[k] == lab[k] for k in ("name", "method", "target"))),
        )
        values = [v for _, v in buckets]
        assert values == sorted(values) and values[-1] == count, (lab, buckets)
        assert len(values) > 2


@pytest.mark.slow
def test_single_process_exporter_equals_locust_stats(fastapi: ServiceProcess) -> None:
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    master = web_run(fastapi.url, port, "3s").start()
    try:
        wait_for(lambda: get(f"{web}/metrics"), 30, "the web UI")
        text = settled_metrics(web, quiet_s=0)
    finally:
        run = stop_and_collect(master)
    check_promtool(text)
    assert_histogram_is_true(text)
    assert run.requests > 0
    assert exporter_totals(text) == stats_totals(run.stats)
    assert metrics(text)[("locust_users", ())] == 0  # stopped


def start_workers(master_port: int, count: int) -> list[Locust]:
    return [
        Locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)])
        .start() for _ in range(count)
    ]


@pytest.mark.slow
def test_distributed_exporter_sums_the_workers(fastapi: ServiceProcess) -> None:
    port, master_port = free_port(), free_port()
    web = f"http://127.0.0.1:{port}"
    master = web_run(fastapi.url, port, "4s", "--master", "--expect-workers", "2",
                     "--master-bind-host", "127.0.0.1",
                     "--master-bind-port", str(master_port)).start()
    workers = start_workers(master_port, 2)
    try:
        wait_for(lambda: get(f"{web}/metrics"), 30, "the web UI")
        text = settled_metrics(web)
    finally:
        run = stop_and_collect(master, *workers)
    check_promtool(text)
    assert_histogram_is_true(text)
    assert exporter_totals(text) == stats_totals(run.stats)
    per_worker = {dict(lb)["worker"]: v for (n, lb), v in metrics(text).items()
                  if n == "locust_worker_requests_total"}
    assert len(per_worker) == 2 and all(v > 0 for v in per_worker.values()), per_worker
    assert sum(per_worker.values()) == run.requests


@pytest.mark.slow
def test_killed_worker_master_carries_on(fastapi: ServiceProcess) -> None:
    port, master_port = free_port(), free_port()
    web = f"http://127.0.0.1:{port}"
    master = web_run(fastapi.url, port, "9s", "--master", "--expect-workers", "2",
                     "--master-bind-host", "127.0.0.1",
                     "--master-bind-port", str(master_port)).start()
    workers = start_workers(master_port, 2)
    try:
        wait_for(lambda: aggregated_requests(web) > 100, 30, "load to flow")
        victim = workers[0]
        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)
        at_kill = aggregated_requests(web)
        text = settled_metrics(web)
    finally:
        run = stop_and_collect(master, *workers)
    assert "failed to send heartbeat" in run.output, run.output[-3000:]
    assert run.requests > at_kill  # the surviving worker kept the swarm going
    assert exporter_totals(text) == stats_totals(run.stats)
    states = {dict(lb)["state"]: v for (n, lb), v in metrics(text).items()
              if n == "locust_workers"}
    assert states.get("ready", 0) + states.get("running", 0) == 1, states
    assert "Traceback" not in run.output


def test_a_series_buckets_are_read_again_only_when_it_changed() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "locust"))
    from _exporter import Series

    series = Series()
    series.add(0.002, failed=False)
    first = series.cumulative()
    assert series.cumulative() is first  # unchanged: the last reading, not a new walk
    series.add(0.2, failed=True)
    second = series.cumulative()
    assert second is not first and second[-1] == ("+Inf", 2)
    assert dict(second)["0.1"] == 1 and dict(second)["0.25"] == 2
