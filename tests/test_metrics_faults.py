"""A worker SIGKILLed under load: replaced, and the aggregated metrics stay consistent.

Gunicorn marks the dead worker from its ``child_exit`` hook; Uvicorn's supervisor has no
hook, so the scrape's sweep does it. Either way: counters never go backwards, the dead
worker's in-flight requests leave ``http_requests_in_progress``, ``loadlab_workers``
returns to the configured count, and counting stays exact afterwards.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest
from support.metrics_scrape import (
    fetch,
    scrape,
    server_master,
    settled_scrape,
    wait_for,
    worker_pids,
)
from support.services import start_service

from loadlab.launch import ServiceProcess

pytestmark = pytest.mark.slow  # workers stopped and killed under load

VARIANTS = {
    "flask-sync": dict(framework="flask", worker_class="sync", workers=2),
    "fastapi-uvicorn": dict(framework="fastapi", worker_class="uvicorn", workers=2),
}
SLOW_MS = 4000
LOAD_LIMIT = 3000  # requests; the load also stops when the test says so
MONOTONIC = ("http_requests_total", "http_request_duration_seconds_count",
             "loadlab_cpu_usage_seconds_total")


def open_connections(pid: int, port: int) -> int:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


class Watch:
    """Scrapes over and over, keeping the totals that must never go backwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.series: list[tuple[float, ...]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set() and len(self.series) < 1000:
            try:
                result = scrape(self.url)
            except Exception:  # a scrape may land on the worker being killed
                continue
            self.series.append(tuple(result.value(name) for name in MONOTONIC))
            time.sleep(0.05)


class Load:
    """/json on fresh connections until told to stop (bounded in count)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok_at: list[float] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(LOAD_LIMIT):
            if self.stop.is_set():
                return
            try:
                if fetch(self.url, "/json", timeout_s=10)[0] == 200:
                    self.ok_at.append(time.monotonic())
            except (OSError, http.client.HTTPException):  # IncompleteRead: cut by the kill
                self.failed += 1


def _slow(url: str) -> int:
    try:
        return fetch(url, f"/io?ms={SLOW_MS}")[0]
    except (OSError, http.client.HTTPException):
        return -1  # the connection died with its worker


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_killed_worker(variant: str) -> None:
    service: ServiceProcess = start_service(**VARIANTS[variant])
    watch, load = Watch(service.url), Load(service.url)
    try:
        old = worker_pids(service)
        assert len(old) == 2
        # A sync worker serves one request at a time: one slow request, the other worker
        # stays free. Uvicorn workers take several each.
        flying = 1 if service.cfg.worker_class == "sync" else 4
        pool = ThreadPoolExecutor(flying)
        slow: list[Future[int]] = [pool.submit(_slow, service.url) for _ in range(flying)]
        wait_for(lambda: scrape(service.url).value("http_requests_in_progress",
                                                   handler="/io") == flying, 10, "slow requests")
        victim = max(old, key=lambda pid: open_connections(pid, service.cfg.port))
        assert open_connections(victim, service.cfg.port) >= 1
        watch.thread.start()
        load.thread.start()
        # Scrapes and answered requests on both sides of the kill.
        wait_for(lambda: len(watch.series) >= 3 and len(load.ok_at) >= 3, 10,
                 "scrapes and requests before the kill")

        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: sum(f.done() for f in slow) >= 1, 10, "the victim's requests to fail")

        def replaced() -> bool:
            pids = worker_pids(service)
            return len(pids) == 2 and victim not in pids
        wait_for(replaced, 30, "a replacement worker")
        [fresh] = worker_pids(service) - old

        def answers() -> bool:  # the replacement has loaded the app and serves
            return json.loads(fetch(service.url, "/info")[1])["pid"] == fresh
        wait_for(answers, 30, "the replacement worker to serve")
        assert scrape(service.url).value("loadlab_workers") == 2

        def in_flight_matches() -> bool:
            expected = sum(not f.done() for f in slow)
            return scrape(service.url).value("http_requests_in_progress",
                                             handler="/io") == expected
        wait_for(in_flight_matches, 10, "the dead worker's in-flight requests to leave")
        wait_for(lambda: any(t > killed_at + 0.2 for t in load.ok_at), 10, "answers after the kill")
        load.stop.set()
        load.thread.join(30)
        watch.stop.set()
        watch.thread.join(30)

        assert len(watch.series) >= 5
        for name, column in zip(MONOTONIC, zip(*watch.series, strict=True), strict=True):
            assert all(b >= a for a, b in itertools.pairwise(column)), name
        assert all(f.result(timeout=SLOW_MS / 1000 + 10) in (200, -1) for f in slow)
        settled = settled_scrape(service.url)
        assert settled.value("http_requests_in_progress") == 0

        before = settled.value("http_requests_total", handler="/json")
        assert all(fetch(service.url, "/json")[0] == 200 for _ in range(40))
        after = settled_scrape(service.url).value("http_requests_total", handler="/json")
        assert after == before + 40
        pool.shutdown(wait=True)
    finally:
        load.stop.set()
        watch.stop.set()
        service.stop()


@pytest.mark.parametrize("variant", ["fastapi-uvicorn", "flask-sync"])
def test_a_worker_stopped_gracefully_keeps_its_last_tallies(variant: str) -> None:
    """A worker that exits normally passes on what it served just before (Uvicorn: its
    lifespan shutdown, since its process ends with os._exit; Gunicorn: worker_exit)."""
    service: ServiceProcess = start_service(**VARIANTS[variant])
    try:
        before = settled_scrape(service.url).value("http_requests_total", handler="/json")
        old = worker_pids(service)
        assert len(old) == 2
        sent = 60
        assert all(fetch(service.url, "/json")[0] == 200 for _ in range(sent))
        # At once, inside the flush interval: Uvicorn's supervisor drops a worker on
        # SIGTTOU; Gunicorn's master replaces a worker sent SIGTERM.
        if service.cfg.server == "uvicorn":
            os.kill(server_master(service).pid, signal.SIGTTOU)
            wait_for(lambda: len(worker_pids(service)) == 1, 20, "one worker to stop")
        else:
            victim = max(old)
            os.kill(victim, signal.SIGTERM)
            wait_for(lambda: victim not in worker_pids(service) and
                     len(worker_pids(service)) == 2, 30, "a replacement worker")
        after = settled_scrape(service.url).value("http_requests_total", handler="/json")
        assert after == before + sent
    finally:
        service.stop()
