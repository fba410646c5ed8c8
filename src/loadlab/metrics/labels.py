"""Label values shared by the ASGI and WSGI middleware: bounded sets, cached children."""

from __future__ import annotations

from typing import Any

from loadlab.metrics.definitions import DURATION, IN_PROGRESS, REQUESTS

UNMATCHED = "<unmatched>"  # every path no route matches: one series, not one per URL
OTHER_METHOD = "OTHER"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# /metrics is left out of the HTTP metrics: a scrape would otherwise always show itself
# in flight, and scrape traffic is Prometheus's own series (scrape_duration_seconds).
EXCLUDED_PATHS = frozenset({"/metrics"})
# Bounds the per-path caches; past it, paths are resolved again (routes with parameters).
MAX_CACHED_PATHS = 1024


class Series:
    """The label children of one (handler, method), so a request does no label lookup."""

    __slots__ = ("duration", "handler", "in_progress", "method", "statuses")

    def __init__(self, handler: str, method: str) -> None:
        self.handler = handler
        self.method = method
        self.in_progress = IN_PROGRESS.labels(handler, method)
        self.duration = DURATION.labels(handler, method)
        self.statuses: dict[Any, Any] = {}

    def count(self, status: int | str) -> None:
        """One answered request; ``status`` is a code or a WSGI status line's code."""
        counter = self.statuses.get(status)
        if counter is None:
            code = str(status)[:3]
            counter = self.statuses[status] = REQUESTS.labels(self.handler, self.method, code)
        counter.inc()


class SeriesCache:
    """(method, handler) -> Series, created on first use."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], Series] = {}

    def get(self, method: str, handler: str) -> Series:
        if method not in METHODS:
            method = OTHER_METHOD
        key = (method, handler)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(handler, method)
        return series
