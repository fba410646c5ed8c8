"""The ``handler`` label for any app: the framework's route template where it exposes one,
else a bounded guess from the path.

Starlette and FastAPI: the first route of the app's router that matches (``path_format``:
``/items/{item_id}``), as Starlette's own Router picks. Flask: the ``url_rule`` its
``url_map`` matches. Anything else (a bare ASGI or WSGI callable, a router the lab cannot
see): the first path segment, with segments that look like identifiers folded into
``/{id}``, and past ``MAX_SEGMENTS`` distinct values ``<other>``. So 10,000 distinct URLs
make at most a few dozen series, never 10,000.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from loadlab.metrics.labels import UNMATCHED

OTHER = "<other>"
MAX_SEGMENTS = 32  # distinct first segments before the rest share OTHER
# Digits, UUIDs, long hex or base64-ish tokens: an identifier, not a route.
_ID = re.compile(r"(\d+|[0-9a-fA-F-]{16,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{7,})")
_WRAPPED = ("app", "wsgi_app", "application", "_app")  # how middleware keeps what it wraps
_DEPTH = 8


def inner(app: Any, has: Callable[[Any], bool]) -> Any:
    """The first object in ``app``'s middleware chain for which ``has`` holds, or None."""
    seen: set[int] = set()
    frontier = [app]
    for _ in range(_DEPTH):
        following = []
        for obj in frontier:
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            if has(obj):
                return obj
            following += [getattr(obj, name, None) for name in _WRAPPED]
        frontier = following
    return None


class PathBuckets:
    """The fallback: ``/first-segment`` for at most ``cap`` distinct segments."""

    def __init__(self, cap: int = MAX_SEGMENTS) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, path: str) -> str:
        segment = path.lstrip("/").split("/", 1)[0]
        if not segment:
            return "/"
        label = "/{id}" if _ID.fullmatch(segment) else f"/{segment[:64]}"
        if label in self._seen:
            return label
        with self._lock:
            if len(self._seen) >= self.cap:
                return OTHER
            self._seen.add(label)
        return label


def _starlette_router(app: Any) -> Any:
    router = inner(app, lambda o: isinstance(getattr(o, "routes", None), list)
                   and all(hasattr(r, "matches") for r in o.routes))
    return router


def asgi_resolver(app: Any) -> Callable[[Any], str]:
    """scope -> handler: the Starlette router's template, else the bounded fallback."""
    router = _starlette_router(app)
    buckets = PathBuckets()
    if router is None:
        return lambda scope: buckets(scope.get("path") or "/")
    from starlette.routing import Match

    def template(scope: Any) -> str:
        partial = None
        for route in router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return _template_of(route, scope, buckets)
            if match is Match.PARTIAL and partial is None:
                partial = route
        return _template_of(partial, scope, buckets) if partial is not None else UNMATCHED

    return template


def _template_of(route: Any, scope: Any, buckets: PathBuckets) -> str:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path is not None else buckets(scope.get("path") or "/")


def wsgi_resolver(app: Any) -> Callable[[str, str], str]:
    """(method, path) -> handler: Flask's url_rule, else the bounded fallback."""
    owner = inner(app, lambda o: hasattr(getattr(o, "url_map", None), "bind"))
    if owner is not None:
        from loadlab.metrics.wsgi import rule_template

        url_map = owner.url_map
        return lambda method, path: rule_template(url_map, path, method)
    buckets = PathBuckets()
    return lambda method, path: buckets(path)
