"""How many requests a run held at once, counted two ways, and memory per request.

* **In flight at the clients** (Little's law: throughput × mean latency as Locust saw it)
  counts every request a user is waiting for, including those queued in the kernel's
  backlog in front of a busy sync worker.
* **Served** counts only what the server is working on: its own
  ``http_requests_in_progress`` averaged over the measured window's scrapes. When a worker
  answered the scrape (the service port's ``/metrics``: compose, swarm, older results)
  the scrape itself counts too: the gauge leaves ``/metrics`` out, and a sync worker
  answering the scrape is holding that one request instead of another. Scraped at
  ``loadlab serve``'s side port (native runs), no worker holds the scrape.

Memory per request divides by *served*: one sync worker holding one request is not as
frugal per request as an event loop holding fifty, whatever the queue in front of it.
The report and ``loadlab claims`` both use these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadlab.runs.record import Run

# A run, or one of its rounds as the claims hold it (plain dicts until claims/ is typed).
Figures = Run | Mapping[str, Any]


def client_in_flight(run: Figures) -> float:
    """Requests the clients were waiting for at once (Little's law), queued ones included."""
    lat = run.get("latency_ms") or {}
    mean = lat.get("mean") or lat.get("p50") or 0.0
    return float(run.get("rps") or 0.0) * mean / 1000.0


def served_from_gauge(gauge_mean: float, scrape: str | None = None) -> float:
    """Requests the server serves at a scrape: its gauge, and the scrape that reads it when
    a worker answered it (``scrape`` "service-port", the default for older results)."""
    return float(gauge_mean) + (0.0 if scrape == "side-port" else 1.0)


def served(run: Figures) -> float | None:
    """Requests the server was serving at once over the measured window, or None."""
    server = run.get("server") or {}
    gauge = server.get("requests_in_progress")
    return None if gauge is None else served_from_gauge(gauge, server.get("scrape"))


def memory_per_request(run: Figures) -> float | None:
    """Bytes of the whole service's memory per request it was serving, or None.

    Divided by at least one request: a service answering in microseconds holds fewer than
    one at once on average (its gauge reads 0 at most scrapes), and its memory is still
    what it takes to serve one.
    """
    memory = (run.get("server") or {}).get("memory_bytes")
    held = served(run)
    if not memory or held is None:
        return None
    return float(memory) / max(held, 1.0)
