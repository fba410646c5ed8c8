"""Instrumentation shared by both services (names fixed in docs/design.md's metrics contract).

* ``ASGIMetricsMiddleware`` / ``WSGIMetricsMiddleware``: per-request metrics.
* ``register_server_info(framework, settings)``: at app creation, once per worker.
* ``start_async_probes()``: event-loop lag and AnyIO thread pool, from an ASGI lifespan.
* ``render()``: the exposition for ``GET /metrics``, aggregated over all workers.

The map: ``definitions`` (the metric objects, once for both services), ``labels`` (their
bounded label values), ``asgi`` and ``wsgi`` (the request middleware), ``tally`` (the hot
path's plain counters, flushed to prometheus_client), ``collectors`` (service-wide figures
at scrape time), ``acceptqueue`` (the listening socket's queue), ``looplag`` and
``threadpool`` (the ASGI probes), ``multiprocess`` (workers' files, dead workers, one
locked collect), ``side`` (the supervisor's side port serving them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from loadlab.metrics import collectors, multiprocess, tally
from loadlab.metrics.definitions import HTTP_REGISTRY, workers_gauge
from loadlab.metrics.looplag import measure_loop_lag
from loadlab.metrics.threadpool import sample_threadpool
from loadlab.settings import ServiceSettings

if TYPE_CHECKING:
    from loadlab.metrics.asgi import ASGIMetricsMiddleware
    from loadlab.metrics.wsgi import WSGIMetricsMiddleware


def __getattr__(name: str) -> Any:
    # Each middleware imports its framework (Starlette, Werkzeug); an image carries only one.
    if name == "ASGIMetricsMiddleware":
        from loadlab.metrics.asgi import ASGIMetricsMiddleware
        return ASGIMetricsMiddleware
    if name == "WSGIMetricsMiddleware":
        from loadlab.metrics.wsgi import WSGIMetricsMiddleware
        return WSGIMetricsMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ASGIMetricsMiddleware",
    "WSGIMetricsMiddleware",
    "register_server_info",
    "render",
    "start_async_probes",
]

_labels: collectors.ServerLabels | None = None


class _Collected(Collector):
    """Families already collected (the request metrics, read once per scrape)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        return self._families


def http_families() -> list[Metric]:
    """The request metrics and worker probes: merged over workers, or this process's."""
    tally.flush()  # this process's requests up to now; other workers flush on their own
    path = multiprocess.metrics_dir()
    if path is None:
        return list(HTTP_REGISTRY.collect())
    multiprocess.sweep(path)  # Uvicorn's supervisor has no hook that marks workers dead
    return list(multiprocess.LockedMultiProcessCollector(path).collect())


def exposition(http: list[Metric], service: collectors.ServiceCollector) -> bytes:
    """The text of one scrape: the request metrics, then the service-wide families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected(http))
    registry.register(service)
    return generate_latest(registry)


def render() -> tuple[bytes, str]:
    """A registry per scrape: the request metrics of all workers, then the service-wide
    collector, computed once here rather than once per worker. The supervisor's side port
    (``side.py``) renders the same families from outside the worker pool."""
    http = http_families()
    service = collectors.ServiceCollector(_labels, http, collectors.own_accept_queue())
    return exposition(http, service), CONTENT_TYPE_LATEST


def register_server_info(framework: str, settings: ServiceSettings) -> None:
    """Record the variant for ``loadlab_server_info`` and count this worker as live."""
    global _labels
    _labels = collectors.ServerLabels(
        framework=framework, server=settings.server, worker_class=settings.worker_class,
        workers=settings.workers, threads=settings.threads,
    )
    workers_gauge().set(1)


def start_async_probes() -> Callable[[], None]:
    """Start the event-loop lag and thread-pool probes on the running loop; the returned
    stop() ends them and passes on this worker's last request tallies."""
    tasks = [asyncio.ensure_future(measure_loop_lag()), asyncio.ensure_future(sample_threadpool())]

    def stop() -> None:
        for task in tasks:
            task.cancel()
        # Uvicorn's worker processes end with os._exit (multiprocessing): no atexit there.
        tally.flush()

    return stop


