"""When a service is ready for load: ``/healthz`` answers and every worker has loaded the app.

``/healthz`` answers as soon as one worker is up. Keep-alive users that connect before the
others have booted stay on that one for the whole run (seen: Gunicorn gthread, 2 workers x 4
threads, served 43 of its 80 req/s), so with several workers readiness also waits for the
service's ``loadlab_workers`` (live workers that loaded the app, summed over them) on
``/metrics`` to reach the count. The runner uses this (watching its process too), and so
does the locustfile, which starts beside a service that is still booting.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

WORKERS_METRIC = "loadlab_workers"


def workers_up(metrics_text: str) -> float:
    """The sum of ``loadlab_workers`` in a Prometheus exposition (0 without it)."""
    return sum(sample.value for family in text_string_to_metric_families(metrics_text)
               if family.name == WORKERS_METRIC for sample in family.samples
               if sample.name == WORKERS_METRIC)


def not_ready(base_url: str, workers: int = 1, timeout_s: float = 2.0) -> str | None:
    """None when the service at ``base_url`` is ready for load, else why not (a few words)."""
    base = base_url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=timeout_s) as reply:
            if reply.status != 200:
                return f"/healthz answered HTTP {reply.status}"
        if workers <= 1:
            return None
        with urllib.request.urlopen(f"{base}/metrics", timeout=timeout_s) as reply:
            up = workers_up(reply.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None if up >= workers else f"{up:g} of {workers} workers up"


def wait_ready(base_url: str, within_s: float, workers: int = 1,
               gone: Callable[[], str | None] | None = None) -> str | None:
    """Poll until ready: None then; else why not, in one line.

    ``gone`` says why waiting is pointless (the service's process exited), or None.
    """
    deadline = time.monotonic() + within_s
    delay = 0.02
    while True:
        reason = gone() if gone is not None else None
        if reason:
            return reason
        last = not_ready(base_url, workers)
        if last is None:
            return None
        if time.monotonic() + delay > deadline:
            return f"not ready after {within_s:g}s ({last})"
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
