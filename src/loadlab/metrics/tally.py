"""Request tallies: the hot path adds to plain integers, prometheus_client gets the totals.

Five prometheus_client updates a request (in-flight up and down, the histogram's sum and
bucket, the counter), each behind a lock and in multiprocess mode an mmap write, cost
more than a bare FastAPI ``/json`` can spare. Here a request only adds to the integers
of its (handler, method) ``Series``; ``flush()`` hands the differences to the
prometheus_client children (in multiprocess mode: this worker's files):

* at every scrape this process answers, so a single-process service is always exact;
* every ``FLUSH_INTERVAL_S`` from a daemon thread, so a scrape answered by another worker
  sees this one at most that late;
* when a worker stops normally: atexit (Gunicorn's workers end with ``sys.exit``) and the
  ASGI lifespan's shutdown (Uvicorn's worker processes end with ``os._exit``).

A worker killed with SIGKILL loses at most its last interval, which no scrape had seen:
aggregated counters still never go backwards.
"""

from __future__ import annotations

import atexit
import os
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from loadlab.metrics.definitions import DURATION, DURATION_BUCKETS, IN_PROGRESS, REQUESTS
from loadlab.metrics.labels import METHODS, OTHER_METHOD

# A tenth of the sampler's one-second intervals: the runner's per-second series (the
# claims' and `loadlab size`'s batch means) read differences of the side port's totals, and
# with a one-second flush a second's sample held 0 to 2 of a worker's flushes (a run's
# series read [0, 343, 365] req/s at a steady 346): noise of up to +-100% a sample, only
# from when the workers happened to flush. A flush writes a few changed values.
FLUSH_INTERVAL_S = 0.1
_BOUNDS = (*DURATION_BUCKETS, float("inf"))  # the histogram's upper bounds, +Inf last


class Series:
    """One (handler, method): what its requests add up to since the process started.

    Writers: the event loop (ASGI, no lock needed) or request threads holding ``lock``
    (WSGI). The flusher only reads them, and keeps what it has passed on separately.
    """

    __slots__ = ("_duration", "_in_progress", "_passed_buckets", "_passed_in_flight",
                 "_passed_seconds", "_passed_statuses", "buckets", "handler", "in_flight",
                 "lock", "method", "seconds", "statuses")

    def __init__(self, handler: str, method: str) -> None:
        self.handler = handler
        self.method = method
        self.lock = threading.Lock()
        self.in_flight = 0
        self.buckets = [0] * len(_BOUNDS)
        self.seconds = 0.0
        self.statuses: dict[Any, int] = {}  # status code or WSGI status line -> answers
        self._duration = DURATION.labels(handler, method)
        self._in_progress = IN_PROGRESS.labels(handler, method)
        self._passed_in_flight = 0
        self._passed_buckets = [0] * len(_BOUNDS)
        self._passed_seconds = 0.0
        self._passed_statuses: dict[Any, int] = {}

    def done(self, elapsed: float, status: int | str) -> None:
        """One answered request (the caller has already taken it out of ``in_flight``)."""
        self.buckets[bisect_left(_BOUNDS, elapsed)] += 1
        self.seconds += elapsed
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1

    def flush(self) -> None:
        """Pass on what changed since the last flush (callers hold the module's lock)."""
        in_flight = self.in_flight
        if in_flight != self._passed_in_flight:
            self._in_progress.set(in_flight)
            self._passed_in_flight = in_flight
        # Buckets before the sum: a request finishing in between shows in the sum one
        # flush early, never in the count without its time.
        buckets = list(self.buckets)
        seconds = self.seconds
        _add_observations(self._duration, buckets, self._passed_buckets,
                          seconds - self._passed_seconds)
        self._passed_buckets, self._passed_seconds = buckets, seconds
        passed = self._passed_statuses
        for status, total in list(self.statuses.items()):
            if total != passed.get(status, 0):
                code = str(status)[:3]  # a WSGI status line starts with its code
                REQUESTS.labels(self.handler, self.method, code).inc(total - passed.get(status, 0))
                passed[status] = total


def _add_observations(child: Any, buckets: list[int], before: list[int], seconds: float) -> None:
    """Add whole buckets of observations to a Histogram child.

    prometheus_client has no bulk ``observe``; this writes the same values its
    ``observe()`` does (``_sum`` and one ``_buckets[i]`` per observation), which
    tests/test_metrics_tally.py checks against ``observe()`` itself.
    """
    changed = False
    for i, (now, then) in enumerate(zip(buckets, before, strict=True)):
        if now != then:
            child._buckets[i].inc(now - then)
            changed = True
    if changed or seconds:
        child._sum.inc(seconds)


class HistogramTally:
    """Observations of one Histogram child, tallied as a request's duration is.

    For figures observed on the request path besides the request itself (the database's
    pool waits and queries): one uncontended lock and two additions per observation.
    """

    __slots__ = ("_bounds", "_child", "_lock", "_passed_buckets", "_passed_seconds",
                 "buckets", "seconds")

    def __init__(self, child: Any, buckets: tuple[float, ...]) -> None:
        self._child = child
        self._bounds = (*buckets, float("inf"))
        self._lock = threading.Lock()
        self.buckets = [0] * len(self._bounds)
        self.seconds = 0.0
        self._passed_buckets = [0] * len(self._bounds)
        self._passed_seconds = 0.0
        _register(self)

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.buckets[bisect_left(self._bounds, seconds)] += 1
            self.seconds += seconds

    def flush(self) -> None:
        with self._lock:
            buckets, seconds = list(self.buckets), self.seconds
        _add_observations(self._child, buckets, self._passed_buckets,
                          seconds - self._passed_seconds)
        self._passed_buckets, self._passed_seconds = buckets, seconds


class SeriesCache:
    """(method, handler) -> Series, created on first use; starts the flusher."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], Series] = {}

    def get(self, method: str, handler: str) -> Series:
        if method not in METHODS:
            method = OTHER_METHOD
        key = (method, handler)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(handler, method)
            _register(series)
        return series


_lock = threading.Lock()
_all: list[Series | HistogramTally] = []
_hooks: list[Callable[[], None]] = []
_flusher_pid = [0]


def _register(series: Series | HistogramTally) -> None:
    with _lock:
        _all.append(series)
    _ensure_flusher()


def add_flush_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` at every flush, before the tallies: gauges sampled from elsewhere (the
    database pools' own figures) reach prometheus_client on the same beat."""
    with _lock:
        _hooks.append(hook)
    _ensure_flusher()


def flush() -> None:
    """Hand every series' news to prometheus_client now (scrape, exit, the flusher)."""
    with _lock:
        for hook in _hooks:
            hook()
        for series in _all:
            series.flush()


def _ensure_flusher() -> None:
    """One flusher thread per process, started in the process that serves (after fork)."""
    pid = os.getpid()
    if _flusher_pid[0] == pid:
        return
    _flusher_pid[0] = pid
    never = threading.Event()  # an interruptible sleep, also under gevent's patching

    def run() -> None:
        while not never.wait(FLUSH_INTERVAL_S):
            flush()

    threading.Thread(target=run, name="loadlab-metrics-flush", daemon=True).start()
    atexit.register(flush)
