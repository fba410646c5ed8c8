"""Pure ASGI middleware: request count, duration and in-flight gauge by route template.

Not Starlette's BaseHTTPMiddleware, which costs about two thirds of /json throughput.
The handler is resolved before the request runs (the in-flight gauge needs it) with the
router's own matching -- the first full match, else the first partial one (a 405), just
as Starlette's Router picks ``scope["route"]`` -- and cached per (method, path).
Every request runs on the event loop thread, so its tallies (``tally.py``) need no lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from starlette.routing import Match

from loadlab.metrics.labels import EXCLUDED_PATHS, MAX_CACHED_PATHS, UNMATCHED
from loadlab.metrics.tally import Series, SeriesCache

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope) -> str:
    """The path template of the route the application will pick for this request."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", app), "routes", None) or ()
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", UNMATCHED))
        if match is Match.PARTIAL and partial is None:
            partial = route
    return str(getattr(partial, "path", UNMATCHED)) if partial is not None else UNMATCHED


class ASGIMetricsMiddleware:
    """``resolve`` names a request's handler (default: the Starlette router the app
    puts in the scope); ``excluded`` are paths left out (the lab's own /metrics; a user's
    app, whose metrics are on the side port, leaves none out: loadlab.apps); ``other``
    takes what is not measured (lifespan, websockets, excluded paths; default: the app),
    so a wrapper that only watches the lifespan costs HTTP requests nothing."""

    def __init__(self, app: ASGIApp, resolve: Callable[[Scope], str] | None = None,
                 excluded: frozenset[str] = EXCLUDED_PATHS,
                 other: ASGIApp | None = None) -> None:
        self.app = app
        self._template = resolve or route_template
        self._excluded = excluded
        self._other = other or app
        self._series = SeriesCache()
        self._by_path: dict[tuple[str, str], Series] = {}

    def _resolve(self, scope: Scope) -> Series:
        key = (scope["method"], scope["path"])
        series = self._by_path.get(key)
        if series is None:
            series = self._series.get(key[0], self._template(scope))
            if len(self._by_path) < MAX_CACHED_PATHS:
                self._by_path[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self._other(scope, receive, send)
            return
        series = self._resolve(scope)
        status = 500  # what the client sees if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        series.in_flight += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            series.in_flight -= 1
            series.done(perf_counter() - started, status)
