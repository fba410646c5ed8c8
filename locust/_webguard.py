"""Keep other web sites out of the Locust web UI, on every bind, with or without a password.

Locust's web app answers any origin (it wraps itself in permissive CORS) and has no CSRF
token, so without this any page the operator opens could POST ``/swarm`` with a host of
its choosing through the UI on loopback (a form post needs no preflight, and a browser
adds its cached basic-auth login to it), read ``/stats/requests``, or reach the UI through
a DNS name it rebinds to 127.0.0.1. Installed by the locustfile on the web app, before
any password check:

- a ``Host`` that is not an IP address, ``localhost``, a single-label name (a container
  or service name such as ``locust-master``), this machine's own name or one listed in
  ``LOADLAB_WEB_HOSTS`` (comma-separated; ``*`` turns the check off) is refused: a name
  an attacker controls cannot be rebound onto the UI;
- a state-changing request (any method but GET/HEAD/OPTIONS: ``/swarm``, ``/stop``,
  ``/stats/reset`` ...) whose ``Origin`` or ``Referer`` is not the UI itself, or that the
  browser marks as sent from another site, is refused;
- a read that a browser marks as cross-origin (an ``Origin`` of another site, or
  ``Sec-Fetch-Site`` other than same-origin/none outside a top-level navigation) is refused,
  and no response carries CORS headers.

Clients that are not browsers (curl, Prometheus, the lab's own tools) send neither
``Origin`` nor ``Sec-Fetch-*`` and are not affected beyond the ``Host`` check.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Any
from urllib.parse import urlsplit

from flask import Response, request

log = logging.getLogger("loadlab")
HOSTS_ENV = "LOADLAB_WEB_HOSTS"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE = frozenset({"same-origin", "none"})


def _split_host(netloc: str) -> str:
    """The host part of ``host[:port]`` (IPv6 in brackets), lower-case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def allowed_names() -> frozenset[str]:
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    names.update(n.strip().lower() for n in os.environ.get(HOSTS_ENV, "").split(",")
                 if n.strip())
    return frozenset(names)


def host_allowed(netloc: str, names: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this UI rather than a name someone else controls."""
    if "*" in names:
        return True
    host = _split_host(netloc).rstrip(".")
    if not host:
        return False
    return (_is_ip(host) or host in names or host.endswith(".localhost")
            or "." not in host)


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def refusal(method: str, host: str, headers: Any, names: frozenset[str]) -> str | None:
    """Why this request is refused, or None to let it through."""
    if not host_allowed(host, names):
        return (f"Host {host!r} is not a name of this UI (DNS rebinding?): "
                f"add it to {HOSTS_ENV} if you use it")
    own = host.strip().lower()
    origin = headers.get("Origin")
    fetch_site = headers.get("Sec-Fetch-Site")
    if method.upper() not in SAFE_METHODS:
        if origin is not None:
            if _netloc(origin) != own:
                return f"cross-site request refused (Origin {origin!r})"
        else:
            referer = headers.get("Referer")
            if referer is not None and _netloc(referer) != own:
                return "cross-site request refused (Referer of another site)"
        if fetch_site is not None and fetch_site not in SAME_SITE:
            return f"cross-site request refused (Sec-Fetch-Site {fetch_site})"
        return None
    if origin is not None and _netloc(origin) != own:
        return f"cross-origin read refused (Origin {origin!r})"
    if (fetch_site is not None and fetch_site not in SAME_SITE
            and headers.get("Sec-Fetch-Mode") != "navigate"):
        return f"cross-origin read refused (Sec-Fetch-Site {fetch_site})"
    return None


def install(app: Any) -> None:
    """Guard a Flask app (idempotent): refuse first, and strip CORS from every answer."""
    if getattr(app, "loadlab_guarded", False):
        return
    app.loadlab_guarded = True
    names = allowed_names()

    @app.before_request
    def _guard() -> Response | None:
        reason = refusal(request.method, request.host, request.headers, names)
        if reason is None:
            return None
        log.warning("loadlab: %s %s refused: %s", request.method, request.path, reason)
        return Response(reason + "\n", status=403, mimetype="text/plain")

    def _no_cors(response: Response) -> Response:
        for header in {h for h, _ in response.headers.items()
                       if h.lower().startswith("access-control-")}:
            del response.headers[header]
        return response

    # Flask runs after-request functions last-registered first: at the head of the list,
    # this one runs after flask-cors has added its headers.
    app.after_request_funcs.setdefault(None, []).insert(0, _no_cors)
