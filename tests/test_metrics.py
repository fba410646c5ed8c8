"""The metrics contract on every variant (2 workers each): real servers, real scrapes."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import timeit
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from support.metrics_scrape import (
    Scrape,
    fetch,
    get_all,
    metrics_dir,
    promtool_check,
    scrape,
    settled_scrape,
    wait_for,
)

from loadlab.contract import MAX_CPU_WORK
from loadlab.launch import ServiceProcess
from loadlab.metrics.looplag import INTERVAL_S
from loadlab.workloads import cpu_work

THREADS = 4
PER_THREAD = 25
ANYIO_DEFAULT_TOKENS = 40  # AnyIO's default thread limiter, per worker
# A loop stall counts once the probe wakes later than this (a bucket bound of the histogram);
# a stall this much longer than the probe's sleep surely does, wherever it starts.
STALL_LE = "0.25"
STALL_SHOWS_S = INTERVAL_S + float(STALL_LE)


def _repeat(url: str, path: str, stop: threading.Event, deadline: float) -> list[int]:
    """GET ``path`` again and again on one kept-alive connection (so one worker) until
    ``stop`` is set or ``deadline`` (monotonic) passes; the statuses."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    statuses: list[int] = []
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()
    return statuses


def _load(url: str) -> tuple[set[int], int]:
    """Spread /json and /info over the workers; returns the pids seen and the /info count."""
    def one_thread(_: int) -> list[int]:
        pids = []
        for i in range(PER_THREAD):
            assert fetch(url, "/json")[0] == 200
            if i % 5 == 0:
                pids.append(json.loads(fetch(url, "/info")[1])["pid"])
        return pids

    with ThreadPoolExecutor(THREADS) as pool:
        seen = [pid for pids in pool.map(one_thread, range(THREADS)) for pid in pids]
    return set(seen), len(seen)


def _delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


@pytest.mark.slow
def test_counts_are_exact_across_workers(service: ServiceProcess) -> None:
    url = service.url
    before = settled_scrape(url)
    pids: set[int] = set()
    infos = rounds = 0
    while len(pids) < 2 and rounds < 6:  # the kernel may hand a burst to one worker
        seen, count = _load(url)
        pids |= seen
        infos += count
        rounds += 1
    odd = get_all(url, ["/io?ms=1"] * 3 + ["/no/such/path", "/json?x=1%2F2"])
    wrong_method = [fetch(url, "/json", "POST")[0] for _ in range(2)]
    assert odd == [200, 200, 200, 404, 200]
    assert wrong_method == [405, 405]
    after = settled_scrape(url)

    assert len(pids) == 2, "the requests did not reach both workers"
    total = "http_requests_total"
    assert _delta(after, before, total, handler="/json", method="GET", status="200") == \
        rounds * THREADS * PER_THREAD + 1
    assert _delta(after, before, total, handler="/info", status="200") == infos
    assert _delta(after, before, total, handler="/io", status="200") == 3
    assert _delta(after, before, total, handler="<unmatched>", status="404") == 1
    assert _delta(after, before, total, handler="/json", method="POST", status="405") == 2
    count = "http_request_duration_seconds_count"
    assert _delta(after, before, count, handler="/json", method="GET") == \
        rounds * THREADS * PER_THREAD + 1
    # Route templates only: no query strings, no raw unknown paths, /metrics left out.
    handlers = {lab["handler"] for lab in after.labelsets(total)}
    assert "/no/such/path" not in handlers and "/metrics" not in handlers
    assert all("?" not in h for h in handlers)
    assert {"/json", "/info", "/io", "<unmatched>"} <= handlers


@pytest.mark.slow
def test_in_progress_back_to_zero(service: ServiceProcess) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: httpx.get(f"{service.url}/io?ms=300", timeout=30), range(4)))
    result = settled_scrape(service.url)
    gauges = [v for n, _, v in result.samples if n == "http_requests_in_progress"]
    assert gauges and all(v == 0 for v in gauges)


@pytest.mark.slow
def test_in_progress_counts_requests_in_flight(service: ServiceProcess) -> None:
    # A sync worker serves one request at a time: keep one free to answer the scrape.
    flying = 1 if service.cfg.worker_class == "sync" else 2
    with ThreadPoolExecutor(flying) as pool:
        slow = [pool.submit(httpx.get, f"{service.url}/io?ms=1500", timeout=30)
                for _ in range(flying)]
        wait_for(lambda: scrape(service.url).value("http_requests_in_progress",
                                                   handler="/io") == flying, 10, "in flight")
        assert all(f.result().status_code == 200 for f in slow)
    assert settled_scrape(service.url).value("http_requests_in_progress", handler="/io") == 0


def test_server_info_and_workers(service: ServiceProcess) -> None:
    result = scrape(service.url)
    cfg = service.cfg
    [info] = result.labelsets("loadlab_server_info")
    assert info == {
        "framework": cfg.framework, "server": cfg.server, "worker_class": cfg.worker_class,
        "workers": str(cfg.workers), "threads": str(cfg.threads), "cpus": "0",
    }
    assert result.value("loadlab_server_info") == 1
    assert result.value("loadlab_workers") == cfg.workers
    assert result.value("loadlab_cpu_limit_cores") == 0


@pytest.mark.slow
def test_thread_pool(service: ServiceProcess) -> None:
    cfg = service.cfg
    result = scrape(service.url)
    if cfg.framework == "fastapi":
        expected = ANYIO_DEFAULT_TOKENS * cfg.workers
        wait_for(lambda: scrape(service.url).value("loadlab_threadpool_size") == expected,
                 5, "both workers to report their limiter")
        # Each worker's loop samples its limiter once a second, so a request shorter than
        # that can fall between two looks: keep 3 `def` requests (each holding a token) in
        # flight on 3 kept-alive connections until both workers' looks add up to them.
        stop = threading.Event()
        deadline = time.monotonic() + 30
        with ThreadPoolExecutor(3) as pool:
            holders = [pool.submit(_repeat, service.url, "/cpu?work=3000", stop, deadline)
                       for _ in range(3)]
            try:
                wait_for(lambda: scrape(service.url).value("loadlab_threadpool_busy") >= 3,
                         20, "3 borrowed tokens")
            finally:
                stop.set()
            statuses = [status for holder in holders for status in holder.result()]
        assert statuses and set(statuses) == {200}, statuses
    elif cfg.worker_class == "gthread":
        assert result.value("loadlab_threadpool_size") == cfg.threads * cfg.workers
        with ThreadPoolExecutor(3) as pool:
            slow = [pool.submit(httpx.get, f"{service.url}/io?ms=1500", timeout=30)
                    for _ in range(3)]
            wait_for(lambda: scrape(service.url).value("loadlab_threadpool_busy") == 3,
                     10, "3 busy threads")
            assert all(f.result().status_code == 200 for f in slow)
    else:  # sync and gevent workers have no thread pool to report
        assert not result.has("loadlab_threadpool_size")
        assert not result.has("loadlab_threadpool_busy")


@pytest.mark.slow
def test_cpu_and_memory_of_the_service(service: ServiceProcess) -> None:
    before = scrape(service.url)
    get_all(service.url, ["/cpu?work=2000"] * 4)  # ~0.2 s of CPU each
    after = scrape(service.url)
    used = _delta(after, before, "loadlab_cpu_usage_seconds_total")
    assert used >= 0.4, used
    assert after.types["loadlab_cpu_usage_seconds"] == "counter"
    # PSS of serve + master + 2 workers: tens of MB, far below the machine's memory.
    assert 20e6 < after.value("loadlab_memory_bytes") < 4e9


@pytest.mark.slow
def test_event_loop_lag(service: ServiceProcess) -> None:
    lag = "loadlab_event_loop_lag_seconds_bucket"
    if service.cfg.framework == "flask":  # no event loop: no lag series at all
        assert not scrape(service.url).has("loadlab_event_loop_lag_seconds_count")
        return
    def stalls() -> float:  # observations over 0.25 s, all workers
        result = scrape(service.url)
        return result.value("loadlab_event_loop_lag_seconds_count") - result.value(lag, le=STALL_LE)

    # The probe sleeps INTERVAL_S (0.5 s) between looks, so a stall of D seconds shows as
    # a late wake-up of D - 0.5 s at least, D at most (a shorter stall can fall inside the
    # probe's sleep and show as nothing). Stalls of 1.5 s show as more than 1 s, whatever
    # the machine's speed: the work is sized here, in the service's interpreter.
    path = f"/cpu/blocking?work={cpu_units_lasting(1.5)}"
    before = stalls()
    statuses, took = [], []
    for _ in range(2):  # one after the other, on fresh connections: most often both workers
        started = time.monotonic()
        statuses.append(fetch(service.url, path)[0])
        took.append(round(time.monotonic() - started, 2))
    assert statuses == [200, 200] and min(took) >= STALL_SHOWS_S, (path, statuses, took)
    try:
        wait_for(lambda: stalls() > before, 5, "a loop stall in the lag histogram")
    except AssertionError as exc:  # once in a busy clean-container run: say what each file held
        raise AssertionError(f"{exc} (before {before}, {path} took {took} s; "
                             f"{lag_by_file(service)})") from None


def cpu_units_lasting(seconds: float) -> int:
    """Units of CPU work that take at least ``seconds`` in this interpreter (the one the
    service runs), timed rather than assumed: a fixed 12,000 units took 1.04 s with this
    machine's Python and 0.92 s with Debian's, and would take less on a faster machine,
    down to a stall the probe may not see (under STALL_SHOWS_S)."""
    sample = 1000
    fastest = min(timeit.repeat(lambda: cpu_work(sample), number=1, repeat=3))
    return min(MAX_CPU_WORK, math.ceil(seconds * sample / fastest))


def lag_by_file(service: ServiceProcess) -> dict[str, tuple[float, float]]:
    """Each histogram sample file's loop-lag (count, count at or below 0.25 s)."""
    found = {}
    for path in sorted(metrics_dir(service).glob("histogram_*.db")):
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            if family.name == "loadlab_event_loop_lag_seconds":
                values = {(x.name, x.labels.get("le")): x.value for x in family.samples}
                found[path.name] = (values.get((f"{family.name}_count", None), 0.0),
                                    values.get((f"{family.name}_bucket", STALL_LE), 0.0))
    return found


@pytest.mark.requires("promtool")  # before the service fixture starts anything
def test_exposition_passes_promtool(service: ServiceProcess) -> None:
    get_all(service.url, ["/json", "/io?ms=1", "/nothing"])
    result = promtool_check(scrape(service.url).text)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
