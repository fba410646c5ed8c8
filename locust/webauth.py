"""Basic auth for the Locust web UI when compose publishes it beyond loopback.

Loaded next to the locustfile by the compose master (``-f locustfile.py,webauth.py``).
With ``LOCUST_WEB_PASSWORD`` set, every page and API call needs it (user
``LOCUST_WEB_USERNAME``, default ``loadlab``), except ``/metrics``, which Prometheus scrapes
from inside the lab's network and which only holds the swarm's figures. Without a
password on a widened ``LOADLAB_BIND`` the UI refuses everything and says why (one line
in the log), instead of serving an open control panel.

Requests from other web sites (cross-site POSTs, cross-origin reads, foreign ``Host``
names) are refused before this check, on every bind, by the locustfile's own guard
(``_webguard.py``): a browser's cached login must not let another page start a swarm.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from flask import Response, request

from loadlab.loopback import is_loopback
from locust import events

log = logging.getLogger("loadlab")
OPEN_PATHS = ("/metrics",)


def widened(bind: str) -> bool:
    return not is_loopback(bind)


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


@events.init.add_listener
def _protect(environment: Any, **_: Any) -> None:
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:  # workers and headless runs have no UI
        return
    bind = os.environ.get("LOADLAB_BIND", "127.0.0.1")
    user = os.environ.get("LOCUST_WEB_USERNAME", "loadlab")
    password = os.environ.get("LOCUST_WEB_PASSWORD", "")
    if not password:
        if not widened(bind):
            return
        log.error("LOADLAB_BIND=%s publishes the Locust UI beyond this machine: set "
                  "LOCUST_WEB_PASSWORD in .env; refusing every request until then", bind)

        @web_ui.app.before_request
        def _refuse() -> Response:
            return Response("set LOCUST_WEB_PASSWORD to use the Locust UI on a widened bind\n",
                            status=503, mimetype="text/plain")
        return

    @web_ui.app.before_request
    def _check() -> Response | None:
        if request.path in OPEN_PATHS:
            return None
        auth = request.authorization
        if auth is not None and _same(auth.username, user) and _same(auth.password, password):
            return None
        return Response("authentication required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Basic realm="loadlab locust"'})
