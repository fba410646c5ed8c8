"""WSGI middleware: request count, duration and in-flight gauge by Flask URL rule.

The handler is the ``url_rule`` Flask will pick, found with the app's own ``url_map``
before the request runs (the in-flight gauge needs it) and cached per (method, path).
A request ends when the server closes the response iterable, so streamed bodies count.
Gunicorn's gthread workers serve requests on several threads: tallies (``tally.py``) are
updated under their series' lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from time import perf_counter
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, RequestRedirect

from loadlab.metrics.labels import EXCLUDED_PATHS, MAX_CACHED_PATHS, UNMATCHED
from loadlab.metrics.tally import Series, SeriesCache

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def rule_template(url_map: Map, path: str, method: str) -> str:
    """The URL rule Flask will route this request to (for a 405, the rule of the path)."""
    adapter = url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path, method, return_rule=True)
        return str(rule.rule)
    except MethodNotAllowed as exc:
        for allowed in exc.valid_methods or ():
            try:
                rule, _ = adapter.match(path, allowed, return_rule=True)
                return str(rule.rule)
            except (HTTPException, RequestRedirect):
                continue
        return UNMATCHED
    except (HTTPException, RequestRedirect):
        return UNMATCHED


def _rule_of(url_map: Map, method: str, path: str) -> str:
    return rule_template(url_map, path, method)


class _Tracked:
    """One request: catches the status, wraps the body, and finishes when the server
    closes it. One object per request instead of closures (this is the hot path)."""

    __slots__ = ("_respond", "body", "series", "started", "status")

    def __init__(self, series: Series, start_response: StartResponse) -> None:
        self.series = series
        self._respond = start_response
        self.status = "500"  # what the client sees if the app fails before answering
        self.body: Iterable[bytes] = ()
        self.started = perf_counter()

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        return self._respond(status, headers, exc_info)

    def finish(self) -> None:
        series = self.series
        elapsed = perf_counter() - self.started
        with series.lock:
            series.in_flight -= 1
            series.done(elapsed, self.status)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()


class WSGIMetricsMiddleware:
    """``resolve`` names a request's handler from (method, path) (default: the rule of
    ``url_map``); ``excluded`` as in the ASGI middleware."""

    def __init__(self, app: WSGIApp, url_map: Map | None = None,
                 resolve: Callable[[str, str], str] | None = None,
                 excluded: frozenset[str] = EXCLUDED_PATHS) -> None:
        self.app = app
        self.url_map = url_map
        if resolve is None:
            if url_map is None:
                raise TypeError("WSGIMetricsMiddleware needs url_map or resolve")
            resolve = partial(_rule_of, url_map)
        self._template = resolve
        self._excluded = excluded
        self._series = SeriesCache()
        self._by_path: dict[tuple[str, str], Series] = {}

    def _resolve(self, method: str, path: str) -> Series:
        key = (method, path)
        series = self._by_path.get(key)
        if series is None:
            series = self._series.get(method, self._template(method, path))
            if len(self._by_path) < MAX_CACHED_PATHS:
                self._by_path[key] = series
        return series

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path in self._excluded:
            return self.app(environ, start_response)
        series = self._resolve(environ.get("REQUEST_METHOD", "GET"), path)
        with series.lock:
            series.in_flight += 1
        tracked = _Tracked(series, start_response)
        try:
            tracked.body = self.app(environ, tracked.start_response)
        except BaseException:
            tracked.finish()
            raise
        return tracked
