"""The factory every server imports in its workers: the user's app, instrumented.

``uvicorn loadlab.apps.entry:create_app --factory``, ``gunicorn
'loadlab.apps.entry:create_app()'``, ``granian --factory loadlab.apps.entry:create_app``:
each worker imports the app ``loadlab serve`` names in $LOADLAB_APP and wraps it in the
lab's request middleware from outside (the app's code is not touched), with the same
metric names as the built-in services and a bounded ``handler`` (``routes.py``). The
metrics are served on the supervisor's side port only: the app's own paths are all its.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from loadlab.apps.spec import APP_DIR_ENV, APP_ENV, INTERFACE_ENV, AppSpec
from loadlab.servers import ServeError

FRAMEWORK = "app"  # loadlab_server_info's framework label for a user's app


def spec_from_env(environ: dict[str, str] | None = None) -> AppSpec:
    env = os.environ if environ is None else environ
    module, _, attr = env.get(APP_ENV, "").rpartition(":")
    if not module or not attr:
        raise ServeError(f"{APP_ENV} must be MODULE:ATTR, got {env.get(APP_ENV, '')!r}")
    return AppSpec(module, attr, env.get(APP_DIR_ENV, "") or os.getcwd(),
                   env.get(INTERFACE_ENV, ""))


class LifespanProbes:
    """The app's lifespan, watched: the worker probes (event-loop lag, AnyIO's thread
    pool) start when the server opens the lifespan (all three ASGI servers here do, whether
    or not the app answers it) and stop, passing on the last tallies, when its shutdown
    completes. HTTP requests never pass here (the middleware's ``other``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._stop: Callable[[], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        if self._stop is None:
            from loadlab import metrics

            self._stop = metrics.start_async_probes()

        async def watched_send(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._stop is not None:
                self._stop()
                self._stop = None
            await send(message)

        await self.app(scope, receive, watched_send)


def instrument(app: Any, interface: str) -> Any:
    if interface == "asgi":
        from loadlab.apps.routes import asgi_resolver
        from loadlab.metrics.asgi import ASGIMetricsMiddleware

        return ASGIMetricsMiddleware(app, resolve=asgi_resolver(app), excluded=frozenset(),
                                     other=LifespanProbes(app))
    from loadlab.apps.routes import wsgi_resolver
    from loadlab.metrics.wsgi import WSGIMetricsMiddleware

    return WSGIMetricsMiddleware(app, resolve=wsgi_resolver(app), excluded=frozenset())


def create_app() -> Any:
    """Import, check and wrap the app; count this worker live for readiness."""
    from loadlab import metrics
    from loadlab.apps.load import load
    from loadlab.settings import ServiceSettings

    spec = spec_from_env()
    try:
        app, interface = load(spec)
    except ServeError as exc:  # the probe passed, so this worker's import differs: say so
        print(f"loadlab: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    metrics.register_server_info(FRAMEWORK, ServiceSettings())
    return instrument(app, interface)
