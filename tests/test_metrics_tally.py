"""Request tallies reach prometheus_client exactly as per-request updates would."""

from __future__ import annotations

import random
import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadlab.metrics import tally
from loadlab.metrics.definitions import DURATION_BUCKETS, HTTP_REGISTRY


def _samples(name: str, handler: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """This handler's samples of ``name`` in the lab's registry (labels without handler)."""
    found = {}
    for family in HTTP_REGISTRY.collect():
        for s in family.samples:
            if s.name.startswith(name) and s.labels.get("handler") == handler:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "handler"))
                found[(s.name, labels)] = s.value
    return found


def test_flushed_histogram_equals_observe() -> None:
    rng = random.Random(7)
    durations = [rng.choice((0.0, 0.001, 0.03, 31.0)) or rng.expovariate(20) for _ in range(500)]
    series = tally.SeriesCache().get("GET", "/tally-histogram")
    reference = Histogram("ref_seconds", "reference", ("handler", "method"),
                          buckets=DURATION_BUCKETS, registry=(registry := CollectorRegistry()))
    for i, elapsed in enumerate(durations):
        series.done(elapsed, 200)
        reference.labels("/tally-histogram", "GET").observe(elapsed)
        if i % 97 == 0:  # flushes in between pass on only what is new
            tally.flush()
    tally.flush()
    tally.flush()  # nothing new: no change

    ours = _samples("http_request_duration_seconds", "/tally-histogram")
    theirs = {}
    for family in registry.collect():
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "handler"))
            theirs[(s.name.replace("ref_seconds", "http_request_duration_seconds"), labels)] = \
                s.value
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert abs(ours[key] - value) < 1e-9, key
    assert b"ref_seconds_bucket" in generate_latest(registry)


def test_statuses_and_in_flight() -> None:
    series = tally.SeriesCache().get("GET", "/tally-status")
    series.in_flight = 3
    for status in (200, 200, "404 NOT FOUND", "200 OK"):
        series.done(0.01, status)
    tally.flush()
    counts = _samples("http_requests_total", "/tally-status")
    assert counts[("http_requests_total", (("method", "GET"), ("status", "200")))] == 3
    assert counts[("http_requests_total", (("method", "GET"), ("status", "404")))] == 1
    gauge = _samples("http_requests_in_progress", "/tally-status")
    assert list(gauge.values()) == [3]
    series.in_flight = 0
    series.done(0.01, 200)
    tally.flush()
    assert list(_samples("http_requests_in_progress", "/tally-status").values()) == [0]
    assert _samples("http_requests_total", "/tally-status")[
        ("http_requests_total", (("method", "GET"), ("status", "200")))] == 4


def test_concurrent_writers_with_the_lock_lose_nothing() -> None:
    """Gunicorn gthread: request threads tally under the series' lock while flushes run."""
    series = tally.SeriesCache().get("GET", "/tally-threads")
    per_thread, threads = 2000, 4

    def work() -> None:
        for _ in range(per_thread):
            with series.lock:
                series.in_flight += 1
            with series.lock:
                series.in_flight -= 1
                series.done(0.002, 200)

    def flushing(stop: threading.Event) -> None:
        while not stop.is_set():
            tally.flush()

    stop = threading.Event()
    flusher = threading.Thread(target=flushing, args=(stop,))
    flusher.start()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    flusher.join()
    tally.flush()
    counts = _samples("http_requests_total", "/tally-threads")
    assert counts[("http_requests_total", (("method", "GET"), ("status", "200")))] == \
        per_thread * threads
    assert list(_samples("http_requests_in_progress", "/tally-threads").values()) == [0]
