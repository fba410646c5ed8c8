"""The supervisor's side port: the metrics stay up while the workers cannot answer.

Real services: a 1-worker Gunicorn sync service with more waiting clients than workers,
and a Uvicorn service whose event loop is blocked by CPU work. Each side-port scrape
must come back (within a generous 2 s) while a scrape of the service port's own
``/metrics`` is still queued behind the load, and it must show the overload (requests in
progress, the accept queue, the stalled loop), not a gap. Also: the buckets from 100 µs
resolve a sub-millisecond /json, and the side port shows what /metrics shows.
"""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.metrics_scrape import Scrape, fetch, settled_scrape
from support.runner_cli import assert_nothing_left, loadlab_here, tagged_env
from support.services import start_service

from loadlab.buckets import LATENCY_BUCKETS_S
from loadlab.launch import ServiceProcess, free_port
from loadlab.metrics.acceptqueue import (
    AcceptQueueReader,
    listen_rows,
    netlink_listeners,
    socket_inodes,
)
from loadlab.runs.samples import histogram_quantile

SIDE_TIMEOUT_S = 2.0  # generous: the side port answers at once, the service port seconds later


def parse(text: str) -> Scrape:
    samples, types = [], {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        samples += [(s.name, dict(s.labels), s.value) for s in family.samples]
    return Scrape(text, samples, types)


def side_scrape(service: ServiceProcess) -> Scrape:
    reply = httpx.get(service.metrics_url, timeout=SIDE_TIMEOUT_S)
    assert reply.status_code == 200, reply.text  # the side port says what failed
    return parse(reply.text)


class QueuedScrape:
    """A scrape of the service port's own /metrics, sent behind the load; ``done`` is set
    once the workers have got to it."""

    def __init__(self, url: str) -> None:
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)

    def _run(self, url: str) -> None:
        try:
            fetch(url, "/metrics", timeout_s=120)
        finally:
            self.done.set()

    def start(self) -> QueuedScrape:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=120)


@contextmanager
def clients(url: str, path: str, count: int) -> Iterator[list[threading.Thread]]:
    """``count`` clients at once, each one request on its own connection."""
    failures: list[BaseException] = []

    def one() -> None:
        try:
            fetch(url, path, timeout_s=120)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures[:3]


def watch_side(service: ServiceProcess, queued: QueuedScrape,
               overloaded: Callable[[Scrape], bool]) -> list[Scrape]:
    """Side-port scrapes until one shows the overload or the queued scrape is answered.
    Every one of them must answer within the timeout (an exception fails the test)."""
    seen: list[Scrape] = []
    while not queued.done.is_set():
        result = side_scrape(service)
        if queued.done.is_set():
            break  # answered after the service port caught up: proves nothing
        seen.append(result)
        if overloaded(result):
            return seen
        queued.done.wait(0.1)
    return seen


@pytest.fixture
def sync_one() -> Iterator[ServiceProcess]:
    service = start_service(framework="flask", worker_class="sync", workers=1)
    try:
        yield service
    finally:
        service.stop()


def test_a_saturated_sync_worker_still_answers_side_scrapes(sync_one: ServiceProcess) -> None:
    with clients(sync_one.url, "/io?ms=200", 30):
        queued = QueuedScrape(sync_one.url).start()

        def overloaded(result: Scrape) -> bool:
            return (result.value("loadlab_accept_queue_connections") > 0
                    and result.value("http_requests_in_progress", handler="/io") >= 1)

        seen = watch_side(sync_one, queued, overloaded)
        assert not queued.done.is_set(), "the service port answered first"
        assert seen and overloaded(seen[-1]), [
            (s.value("loadlab_accept_queue_connections"), s.value("http_requests_in_progress"))
            for s in seen]
        assert seen[-1].value("loadlab_accept_queue_limit") >= 1
        queued.join()


@pytest.mark.slow  # an event loop blocked for seconds
def test_a_blocked_event_loop_still_answers_side_scrapes() -> None:
    service = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    try:
        with clients(service.url, "/cpu/blocking?work=50000", 1):
            # The loop is blocked once the request is in flight; then more clients queue.
            deadline = time.monotonic() + 30
            while side_scrape(service).value("http_requests_in_progress",
                                              handler="/cpu/blocking") < 1:
                assert time.monotonic() < deadline, "the blocking request never showed"
            with clients(service.url, "/json", 5):
                queued = QueuedScrape(service.url).start()

                def overloaded(result: Scrape) -> bool:
                    return (result.value("loadlab_accept_queue_connections") > 0
                            and result.value("loadlab_event_loop_blocked_seconds") > 0)

                seen = watch_side(service, queued, overloaded)
                assert not queued.done.is_set(), "the loop answered before the side port saw it"
                assert seen and overloaded(seen[-1]), [
                    (s.value("loadlab_accept_queue_connections"),
                     s.value("loadlab_event_loop_blocked_seconds")) for s in seen]
                assert seen[-1].value("http_requests_in_progress", handler="/cpu/blocking") == 1
                queued.join()
        # Once the loop turns again the stall leaves the gauge and enters the histogram.
        after = settled_scrape(service.metrics_url.removesuffix("/metrics"))
        assert after.value("loadlab_event_loop_blocked_seconds") == 0
        assert after.value("loadlab_event_loop_lag_seconds_bucket", le="+Inf") >= 1
        assert after.value("loadlab_event_loop_lag_seconds_sum") > 0.5
    finally:
        service.stop()


@pytest.mark.parametrize("options", [
    dict(framework="fastapi", worker_class="uvicorn", workers=1),
    # The other servers' side ports in `make test` (a real service each).
    pytest.param(dict(framework="fastapi", worker_class="uvicorn-worker", workers=1),
                 marks=pytest.mark.slow),
    pytest.param(dict(framework="flask", worker_class="gthread", workers=2, threads=2),
                 marks=pytest.mark.slow),
    pytest.param(dict(framework="flask", worker_class="gevent", workers=1),
                 marks=pytest.mark.slow),
], ids=["uvicorn-1", "uvicorn-worker-1", "gthread-2", "gevent-1"])
def test_side_port_shows_the_same_series_as_metrics(options: dict[str, object]) -> None:
    service = start_service(**options)
    try:
        for _ in range(20):
            fetch(service.url, "/json")
        side = settled_scrape(service.metrics_url.removesuffix("/metrics"))
        own = parse(httpx.get(f"{service.url}/metrics", timeout=10).text)
        assert set(side.types) == set(own.types)
        requests = ("http_requests_total", {"handler": "/json", "method": "GET", "status": "200"})
        assert side.value(requests[0], **requests[1]) == own.value(requests[0], **requests[1]) == 20
        assert side.value("loadlab_workers") == own.value("loadlab_workers") == service.cfg.workers
    finally:
        service.stop()


@pytest.mark.slow  # thousands of real requests
def test_server_p50_resolves_below_half_a_millisecond() -> None:
    """The first bucket was 1 ms: every sub-millisecond p50 read 0.5 ms exactly."""
    service = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    try:
        base = settled_scrape(service.metrics_url.removesuffix("/metrics"))
        host, port = service.url.rsplit("/", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        times = []
        for _ in range(400):
            began = time.perf_counter()
            conn.request("GET", "/json")
            conn.getresponse().read()
            times.append(time.perf_counter() - began)
        conn.close()
        after = settled_scrape(service.metrics_url.removesuffix("/metrics"))
    finally:
        service.stop()
    client_p50 = sorted(times)[len(times) // 2]
    if client_p50 >= 0.0005:
        pytest.skip(f"the client's p50 is {client_p50 * 1e3:.2f} ms here: too busy to tell")

    def buckets(scrape: Scrape) -> dict[float, float]:
        return {float(lab["le"]): v for n, lab, v in scrape.samples
                if n == "http_request_duration_seconds_bucket" and lab["handler"] == "/json"}

    assert min(buckets(after)) == LATENCY_BUCKETS_S[0] == 0.0001
    server_p50 = histogram_quantile(0.5, buckets(base), buckets(after))
    assert not math.isnan(server_p50) and server_p50 < 0.0005, server_p50
    count = (after.value("http_request_duration_seconds_count", handler="/json")
             - base.value("http_request_duration_seconds_count", handler="/json"))
    total = (after.value("http_request_duration_seconds_sum", handler="/json")
             - base.value("http_request_duration_seconds_sum", handler="/json"))
    assert count == 400
    assert 0 < total / count < sum(times) / len(times)  # exact mean: inside the client's


def test_serve_prints_the_metrics_address_and_info_reports_it() -> None:
    service = start_service(framework="flask", worker_class="sync", workers=1)
    try:
        log = service.log_text()
        assert log is not None
        assert f"metrics at {service.metrics_url}" in log, log
        info = httpx.get(f"{service.url}/info", timeout=10).json()
        assert info["metrics_url"] == service.metrics_url
    finally:
        service.stop()


# Two listeners in a process of their own (the test process may hold other tests'
# listeners): ports and the first one's inode on stdout, then "accept" / "close" on stdin.
_LISTENERS = """
import os, socket, sys
mine, other = socket.socket(), socket.socket()
for sock, backlog in ((mine, 7), (other, 3)):
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
print(mine.getsockname()[1], other.getsockname()[1], os.fstat(mine.fileno()).st_ino, flush=True)
for line in sys.stdin:
    if line.strip() == "accept":
        mine.accept()[0].close()
    else:
        mine.close()
        other.close()
    print("done", flush=True)
"""


def test_accept_queue_reads_only_the_listeners_sockets() -> None:
    """From netlink (queue and the kernel's own limit) and from /proc/net/tcp alike."""
    child = subprocess.Popen([sys.executable, "-c", _LISTENERS], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None

    def ask(command: str) -> None:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(command + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"

    try:
        port, _other_port, inode = (int(x) for x in child.stdout.readline().split())
        waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            own = socket_inodes(child.pid) & listen_rows().keys()
            assert inode in own
            assert netlink_listeners() is not None, "NETLINK_SOCK_DIAG is not available here"
            from_proc = AcceptQueueReader(child.pid, backlog=7, netlink=False)
            for reader in (AcceptQueueReader(child.pid, backlog=7), from_proc):
                queue = reader.read()
                # Both sockets are the child's: 3 waiting on one, none on the other.
                assert queue is not None and (queue.connections, queue.sockets) == (3, 2)
            queue = AcceptQueueReader(child.pid, backlog=0).read()
            assert queue is not None and queue.limit == 7 + 3  # what listen() was given
            ask("accept")
            queue = AcceptQueueReader(child.pid, backlog=7).read()
            assert queue is not None and queue.connections == 2
        finally:
            for conn in waiting:
                conn.close()
        ask("close")
        assert AcceptQueueReader(child.pid, backlog=7).read() is None
    finally:
        child.stdin.close()
        child.wait(timeout=10)


# --- PROMETHEUS_MULTIPROC_DIR: only what serve made is ever deleted ------------------------

def test_a_users_multiproc_dir_keeps_its_contents(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    (shared / "notes.txt").write_text("keep me")
    (shared / "sub" / "more.txt").write_text("me too")
    # As a user would: ServiceProcess drops the variable for the services it starts.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "LOADLAB_METRICS_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "loadlab", "serve", "fastapi", "--workers",
                             "2", "--port", str(free_port())], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "metrics at" in line, line
        made = [p for p in shared.iterdir() if p.name.startswith("loadlab-metrics-")]
        assert len(made) == 1 and made[0].is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert (shared / "notes.txt").read_text() == "keep me"
    assert (shared / "sub" / "more.txt").read_text() == "me too"
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt", "sub"]


def serve_refuses(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``loadlab serve ARGS`` with ``env`` set, in this process (``cli.main``): refused
    before anything starts, which the tag checks (the process path:
    test_a_users_multiproc_dir_keeps_its_contents, test_serve)."""
    _, tag = tagged_env()
    done = loadlab_here(["serve", *args], tag, env=env)
    assert_nothing_left(tag, grace_s=0)
    return done


def test_a_multiproc_dir_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "file" / "metrics")}
    result = serve_refuses(env, "fastapi", "--port", "0")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PROMETHEUS_MULTIPROC_DIR" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("--metrics-port", "70000"), ("--metrics-port", "-1")])
def test_bad_metrics_port_is_one_line_and_exit_2(args: tuple[str, str]) -> None:
    result = serve_refuses({}, "flask", "--port", "0", *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_metrics_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = serve_refuses({"LOADLAB_METRICS_PORT": str(port)}, "flask", "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"loadlab serve: error: metrics port 127.0.0.1:{port} is already in use"], result.stderr


@pytest.mark.slow  # a real run
def test_the_native_runner_samples_the_side_port() -> None:
    """The runner's sampler scrapes where the load cannot queue it: during the overload
    every scrape answers (none counted as an error) and reads the requests in flight."""
    from loadlab.runner.native import NativeRuntime
    from loadlab.runner.sampler import ServerSampler
    from loadlab.serve import ServerConfig

    runtime = NativeRuntime()
    endpoint = runtime.start(ServerConfig(framework="flask", worker_class="sync", workers=1))
    try:
        assert endpoint.metrics_url != f"{endpoint.base_url}/metrics"
        info = httpx.get(f"{endpoint.base_url}/info", timeout=10).json()
        assert info["metrics_url"] == endpoint.metrics_url
        sampler = ServerSampler(endpoint.metrics_url, endpoint.pid, endpoint.base_url)
        with clients(endpoint.base_url, "/io?ms=200", 30):
            queued = QueuedScrape(endpoint.base_url).start()
            scrapes = [sampler.scrape()]
            while not scrapes[-1].in_progress and not queued.done.is_set():
                scrapes.append(sampler.scrape())
            assert not queued.done.is_set(), "the service port answered first"
            queued.join()
        assert sampler.scrape_errors == 0 and all(s.ok for s in scrapes)
        assert scrapes[-1].in_progress == 1
    finally:
        runtime.stop()


def test_served_counts_the_scrape_only_when_a_worker_answered_it() -> None:
    """At the side port no worker holds the scrape: one saturated sync worker reads 1."""
    from loadlab.report.concurrency import memory_per_request, served

    def run(scrape: str | None) -> dict[str, object]:
        server: dict[str, object] = {"requests_in_progress": 1.0}
        if scrape is not None:
            server["scrape"] = scrape
        return {"server": server}

    assert served(run("side-port")) == 1.0
    assert served(run("service-port")) == 2.0
    assert served(run(None)) == 2.0  # results from before the side port
    idle = {"server": {"requests_in_progress": 0.0, "scrape": "side-port",
                       "memory_bytes": 50e6}}
    assert served(idle) == 0.0 and memory_per_request(idle) == 50e6  # at least one request


@pytest.mark.slow
@pytest.mark.requires("prometheus")
def test_prometheus_keeps_scraping_a_saturated_sync_worker(
        tmp_path: Path, sync_one: ServiceProcess) -> None:
    """The lab's own Prometheus config and rules, scraping the side port every second
    (timeout 1 s): under an overload that holds a service-port scrape for seconds, ``up``
    stays 1 and Prometheus records the accept queue."""
    from support import prometheus_server as prom

    address = sync_one.metrics_url.removeprefix("http://").removesuffix("/metrics")
    config = prom.lab_config(tmp_path / "config", {"services": {"flask": address}})
    data = tmp_path / "data"
    data.mkdir()
    stop = threading.Event()

    def user() -> None:
        while not stop.is_set():
            fetch(sync_one.url, "/io?ms=200", timeout_s=120)

    users = [threading.Thread(target=user, daemon=True) for _ in range(30)]
    with prom.running(data, scrape_interval="1s", config_dir=config) as port:
        def query(expr: str) -> float | None:
            result = prom.get(port, "/api/v1/query", query=expr)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        deadline = time.monotonic() + 60
        while query('up{service="flask"}') != 1:
            assert time.monotonic() < deadline, prom.log_text(data)[-500:]
            stop.wait(0.2)
        began = time.time()
        for thread in users:
            thread.start()
        try:
            # Until Prometheus holds ten scrapes taken during the overload, one with a queue.
            def since(fn: str, metric: str) -> float:
                span = max(1, round(time.time() - began))
                return query(f'{fn}({metric}{{service="flask"}}[{span}s])') or 0.0

            while since("count_over_time", "loadlab_accept_queue_connections") < 10 or \
                    since("max_over_time", "loadlab_accept_queue_connections") <= 0:
                assert time.monotonic() < deadline + 60, "no scrapes of the overload"
                stop.wait(0.5)
            queued = QueuedScrape(sync_one.url).start()
            seen = query('count_over_time(up{service="flask"}[1m])') or 0
            while (query('count_over_time(up{service="flask"}[1m])') or 0) < seen + 3:
                stop.wait(0.5)
            assert not queued.done.is_set(), "the overload did not hold the service port"
        finally:
            stop.set()
            for thread in users:
                thread.join(timeout=120)
        span = f"{time.time() - began + 1:.0f}s"
        assert query(f'min_over_time(up{{service="flask"}}[{span}])') == 1
        assert (query(f'max_over_time(http_requests_in_progress{{service="flask",'
                      f'handler="/io"}}[{span}])') or 0) >= 1
