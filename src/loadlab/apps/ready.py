"""When a user's app is ready for load: every worker has loaded it and the port accepts.

The built-in services answer ``/healthz``; a user's app may have no such route, and any
route of its own may be slow or touch its database. So readiness reads the supervisor's
side port instead: ``loadlab_workers`` (each worker that imported and wrapped the app
counts 1) reaching the worker count, then a TCP connect to the service port.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from loadlab.readiness import workers_up


def not_ready(host: str, port: int, metrics_url: str, workers: int,
              timeout_s: float = 2.0) -> str | None:
    """None when ready, else why not (a few words)."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout_s) as reply:
            up = workers_up(reply.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as exc:
        return f"metrics port answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"metrics port: {exc or type(exc).__name__}"
    if up < workers:
        return f"{up:g} of {workers} workers loaded the app"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"port {port}: {exc.strerror or exc}"


def wait_ready(host: str, port: int, metrics_url: str, workers: int, within_s: float,
               gone: Callable[[], str | None] | None = None) -> str | None:
    """Poll until ready: None then, else why not in one line (``readiness.wait_ready``)."""
    deadline = time.monotonic() + within_s
    delay = 0.02
    while True:
        reason = gone() if gone is not None else None
        if reason:
            return reason
        last = not_ready(host, port, metrics_url, workers)
        if last is None:
            return None
        if time.monotonic() + delay > deadline:
            return f"not ready after {within_s:g}s ({last})"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
