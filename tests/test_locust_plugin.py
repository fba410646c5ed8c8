"""The lab's measurement on a user's own locustfile (own user class and task names, no lab
base class): loaded beside it as locust/loadlab_plugin.py, it gives HDR latency, gates and
an exporter whose totals equal Locust's own statistics; the open model paces its tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.locust_process import (
    ROOT,
    Locust,
    exporter_totals,
    free_port,
    get,
    headless,
    stats_totals,
    wait_for,
)

from loadlab.launch import ServiceProcess

OWN = Path(__file__).parent / "locustfiles" / "own_shop.py"
PLUGIN = ROOT / "locust" / "loadlab_plugin.py"
WITH_PLUGIN = f"{OWN},{PLUGIN}"


def _own(host: str, *extra: str, users: int = 4, run_time: str = "3s") -> Locust:
    lo = headless(host, *extra, users=users, run_time=run_time)
    lo.locustfile = WITH_PLUGIN
    return lo


@pytest.mark.slow
def test_own_locustfile_gets_hdr_latency_and_gates(fastapi: ServiceProcess) -> None:
    run = _own(fastapi.url, "--max-p95-ms", "60000", "--max-error-rate", "0.5").start() \
        .finish(timeout_s=90)
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.by_name()) >= {"browse catalogue", "place order"}
    assert run.failures == 0
    report = run.report
    assert report is not None
    assert report["latency_source"] == "hdr"  # the plugin's µs histogram, not Locust's ms
    assert report["latency_ms"]["p50"] > 0 and report["latency_ms"]["mean"] > 0
    assert report["window"]["requests"] > 0
    assert report["scenario"] is None  # the lab's workload options are not there
    assert {g["option"] for g in report["gates"]} == {"--max-p95-ms", "--max-error-rate"}
    assert all(g["passed"] for g in report["gates"])
    assert "gate passed: --max-p95-ms" in run.output


@pytest.mark.slow
def test_own_locustfile_fails_a_missed_gate(fastapi: ServiceProcess) -> None:
    run = _own(fastapi.url, "--min-rps", "1000000").start().finish(timeout_s=90)
    assert run.returncode == 1, run.output[-3000:]
    assert "gate FAILED: --min-rps" in run.output


@pytest.mark.slow
def test_own_locustfile_exporter_equals_locust_stats(fastapi: ServiceProcess) -> None:
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    lo = Locust([], locustfile=WITH_PLUGIN)
    lo.args = ["--host", fastapi.url, "-u", "4", "-r", "20", "-t", "3s", "--autostart",
               "--autoquit", "120", "--web-host", "127.0.0.1", "--web-port", str(port),
               "--json-file", str(lo.json_prefix)]
    lo.start()
    try:
        wait_for(lambda: get(f"{web}/metrics"), 30, "the web UI")
        wait_for(lambda: json.loads(get(f"{web}/stats/requests"))["state"] == "stopped",
                 60, "the swarm to stop")
        text = get(f"{web}/metrics")
    finally:
        lo.terminate()
        run = lo.finish(timeout_s=60)
    assert run.requests > 0
    totals = exporter_totals(text)
    assert {name for name, _ in totals} == {"browse catalogue", "place order"}
    assert totals == stats_totals(run.stats)


@pytest.mark.slow
def test_own_locustfile_in_the_open_model(fastapi: ServiceProcess) -> None:
    run = _own(fastapi.url, "--arrival-rate", "40", users=8, run_time="4s").start() \
        .finish(timeout_s=90)
    assert run.returncode == 0, run.output[-3000:]
    report = run.report
    assert report is not None and report["model"] == "open"
    assert report["intended_latency_ms"]["p50"] > 0
    sent, window_s = report["open_model"]["sent"], report["open_model"]["window_s"]
    # The schedule, not the users' own think time (0-10 ms: hundreds of requests a second
    # from 8 users), decided the sends: at most 40 a second of the window.
    assert 0 < sent <= 40 * window_s + 1, (sent, window_s)
    assert run.requests <= 40 * (window_s + 1) + 8, run.requests
