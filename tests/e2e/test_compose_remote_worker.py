"""A Locust worker from outside the lab (here a native process on this machine, as on
another host) joins the compose lab's master through its published port 5557."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from support.compose_project import ROOT, Stack

from loadlab.procs import kill_group
from loadlab.runner.locust_driver import locust_bin

# Locust delists a worker after every stop until it says it is ready again, this long here:
# longer than a scrape interval, so the master's exporter is scraped while it is away.
REJOIN_AFTER_S = 8


def native_worker(stack: Stack) -> str | None:
    """The id of the one worker the master counts, once it is this machine's (Locust names
    a worker after its host) and the compose workers have left."""
    stats = stack.locust("/stats/requests")
    active = [w["id"] for w in stats.get("workers", []) if w["state"] != "missing"]
    if int(stats.get("worker_count", 0)) != 1 or len(active) != 1:
        return None
    return active[0] if active[0].startswith(f"{socket.gethostname()}_") else None


def settled(stack: Stack, hold_s: float = 4.0) -> dict[str, Any]:
    """The master's statistics once they held longer than a worker's report interval
    (3 s): a worker's last rows can arrive after the stop."""
    stats = stack.locust("/stats/requests")
    held = time.monotonic()
    deadline = held + 30
    while time.monotonic() - held < hold_s and time.monotonic() < deadline:
        time.sleep(0.5)
        again = stack.locust("/stats/requests")
        if again["stats"] != stats["stats"]:
            stats, held = again, time.monotonic()
    return stats


def test_a_native_worker_joins_through_the_published_port(stack: Stack,
                                                          tmp_path: Path) -> None:
    port = stack.ports["LOCUST_MASTER_PORT"]
    # An earlier test's `loadlab run --runtime compose` stops the service after its run.
    stack.compose("up", "--detach", "--wait", "--no-deps", "fastapi", timeout=180)
    # Scraped since it (re)started. Only samples newer than that count here and below: an
    # earlier test restarts Prometheus, whose scrape cache then holds nothing to mark stale,
    # so a container the earlier run replaced (another address) still shows `up` and its
    # last counts for 5 minutes, and they vanish mid-test (seen: `before` 3,059 from them).
    started = time.time()
    fresh_up = (f'up{{job="services", service="fastapi"}} == 1 and '
                f'(timestamp(up{{job="services", service="fastapi"}}) > {started:.3f})')
    stack.wait_for("fastapi scraped since it started", lambda: stack.prometheus(
        "/api/v1/query", query=fresh_up)["result"], 90)
    stack.compose("stop", "--timeout", "5", "locust-worker")  # only the outside worker
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [locust_bin(), "-f", str(ROOT / "locust" / "locustfile.py"), "--worker",
         "--master-host", "127.0.0.1", "--master-port", str(port)],
        cwd=str(ROOT / "locust"), stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ,
             "LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP": str(REJOIN_AFTER_S)},
        start_new_session=True)
    try:
        native = stack.wait_for("the compose workers to leave and the native one to join",
                                lambda: native_worker(stack), 60)
        json_requests = 'http_requests_total{service="fastapi", handler="/json"}'
        served = f"sum({json_requests} and (timestamp({json_requests}) > {started:.3f}))"
        before = sum(stack.query(served).values())
        # The address the outside worker reaches the service by: its published port.
        # Target "host" said outright: the master keeps the form's last choice (an earlier
        # test's "both" would send this worker to compose names it cannot resolve).
        stack.locust("/swarm", {"user_count": "4", "spawn_rate": "4", "scenario": "json",
                                "target": "host", "host": stack.url("FASTAPI_PORT")})
        time.sleep(5)
        stack.locust("/stop", {})
        stack.wait_for("the swarm to stop",
                       lambda: stack.locust("/stats/requests")["state"] == "stopped", 60)
        stats = settled(stack)
        rows = {s["name"]: s for s in stats["stats"]}
        sent = int(rows["/json"]["num_requests"])
        assert sent > 50 and rows["/json"]["num_failures"] == 0, rows["/json"]
        # The exporter counts it as a worker like the others: all the requests are its own,
        # kept while the master delisted it after the stop.
        mine = f'locust_worker_requests_total{{worker="{native}"}}'
        deadline = time.monotonic() + 30
        while (exported := sum(stack.query(mine).values())) != sent:
            assert time.monotonic() < deadline, (native, sent, exported, stack.prometheus(
                "/api/v1/query", query="locust_worker_requests_total"))
            time.sleep(1)
        stack.wait_for("the exporter to count the worker's requests", lambda: (
            sum(stack.query('sum(locust_requests_total{name="/json"})').values())
            >= sent), 30)
        counted: list[float] = []
        try:
            stack.wait_for("the service to count them", lambda: (
                counted.append(sum(stack.query(served).values()))
                or counted[-1] - before >= sent), 60)
        except AssertionError:
            series = stack.prometheus("/api/v1/query", query=json_requests)
            up = stack.prometheus("/api/v1/query", query='up{service="fastapi"}')
            raise AssertionError(
                f"{sent} sent, service count {before:g} before, {counted[-3:]} after; "
                f"series {series}; up {up}; {stack.compose('ps', 'fastapi').stdout}") from None
        assert sent <= sum(stack.query(served).values()) - before <= sent + 4
    finally:
        kill_group(worker.pid, 15, proc=worker)
        log.close()
        stack.compose("up", "--detach", "--wait", "--no-deps", "locust-worker", timeout=180)
