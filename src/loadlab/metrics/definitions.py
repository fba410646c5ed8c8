"""The metric objects of docs/design.md's "Metrics contract", defined once for both services.

They live in their own registry (``HTTP_REGISTRY``), never in prometheus_client's global
one: a single-process service renders this registry, a multi-process one renders the
files every worker writes (prometheus_client's multiprocess mode, chosen by the library
when ``PROMETHEUS_MULTIPROC_DIR`` is set before import). Every gauge here is
``livesum``: summed over the workers that are alive, dropped when a worker is marked dead.
Process-wide figures (CPU, memory, limit, info) are not here: they are computed at scrape
time by ``collectors.py`` so that no worker counts them twice.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import disable_created_metrics

from loadlab.buckets import LATENCY_BUCKETS_S
from loadlab.metrics.multiprocess import use_cached_pid

# *_created series exist only in single-process mode; without them both modes look alike.
disable_created_metrics()
use_cached_pid()

HTTP_REGISTRY = CollectorRegistry(auto_describe=True)

THREADPOOL_BUSY = "loadlab_threadpool_busy"
THREADPOOL_SIZE = "loadlab_threadpool_size"

DURATION_BUCKETS = LATENCY_BUCKETS_S  # the load generator's too
# Sleep overshoot of the event loop: a healthy loop stays under a millisecond.
LOOP_LAG_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

# The database's figures on the same ladder: a pooled connection is handed over in
# microseconds and a primary-key query on loopback takes a few hundred.
DB_BUCKETS = LATENCY_BUCKETS_S

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ("handler", "method", "status"),
    registry=HTTP_REGISTRY,
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the application to the end of its response.",
    ("handler", "method"),
    buckets=DURATION_BUCKETS,
    registry=HTTP_REGISTRY,
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "Requests being handled now, summed over the live workers.",
    ("handler", "method"),
    multiprocess_mode="livesum",
    registry=HTTP_REGISTRY,
)
# Created on first use only: a metric without labels writes its zero sample at creation,
# and these would then show up (as zeros) on services that have no loop or no pool, or
# in a process that is not a worker (Gunicorn's master imports this package for its hook).
@cache
def workers_gauge() -> Gauge:
    return Gauge(
        "loadlab_workers",
        "Live worker processes (each live worker that loaded the app counts 1).",
        multiprocess_mode="livesum",
        registry=HTTP_REGISTRY,
    )


@cache
def loop_lag() -> Histogram:
    return Histogram(
        "loadlab_event_loop_lag_seconds",
        "How late the event loop wakes a sleeping task (sleep overshoot), all workers.",
        buckets=LOOP_LAG_BUCKETS,
        registry=HTTP_REGISTRY,
    )


@cache
def loop_blocked() -> Gauge:
    return Gauge(
        "loadlab_event_loop_blocked_seconds",
        "How long the event loop has not turned, now, beyond its probe's interval (0 while "
        "it turns on time); the largest over the live workers.",
        multiprocess_mode="livemax",
        registry=HTTP_REGISTRY,
    )


@cache
def threadpool_gauges() -> tuple[Gauge, Gauge]:
    """(busy, size) of the request thread pool, summed over the live workers."""
    busy = Gauge(
        THREADPOOL_BUSY,
        "Threads of the request thread pool in use now, summed over the live workers.",
        multiprocess_mode="livesum",
        registry=HTTP_REGISTRY,
    )
    size = Gauge(
        THREADPOOL_SIZE,
        "Threads the request thread pool may use, summed over the live workers.",
        multiprocess_mode="livesum",
        registry=HTTP_REGISTRY,
    )
    return busy, size


@cache
def db_pool_gauges() -> tuple[Gauge, Gauge, Gauge]:
    """(size, in use, waiting) of the database connection pools, summed over live workers."""
    def gauge(name: str, doc: str) -> Gauge:
        return Gauge(name, doc, multiprocess_mode="livesum", registry=HTTP_REGISTRY)

    return (
        gauge("loadlab_db_pool_size", "Connections the pools may hold, summed over workers."),
        gauge("loadlab_db_pool_in_use", "Pooled connections lent to requests now."),
        gauge("loadlab_db_pool_waiting", "Requests waiting for a pooled connection now."),
    )


@cache
def db_histograms() -> tuple[Histogram, Histogram]:
    """(pool wait, query duration by query) of the database calls, all workers."""
    wait = Histogram(
        "loadlab_db_pool_wait_seconds",
        "Time a request waited for a pooled database connection.",
        buckets=DB_BUCKETS,
        registry=HTTP_REGISTRY,
    )
    query = Histogram(
        "loadlab_db_query_duration_seconds",
        "Time of one database query on a pooled connection, by query.",
        ("query",),
        buckets=DB_BUCKETS,
        registry=HTTP_REGISTRY,
    )
    return wait, query


@cache
def db_errors() -> Counter:
    return Counter(
        "loadlab_db_errors_total",
        "Database calls answered 503, by kind: unavailable, pool_timeout, query.",
        ("kind",),
        registry=HTTP_REGISTRY,
    )
