"""How many requests a run held at once, counted two ways, and memory per request.

* **In flight at the clients** (Little's law: throughput × mean latency as Locust saw it)
  counts every request a user is waiting for, including those queued in the kernel's
  backlog in front of a busy sync worker.
* **Served** counts only what the server is working on: its own
  ``http_requests_in_progress`` averaged over the measured window's scrapes, plus the
  scrape itself (the gauge leaves ``/metrics`` out, and a sync worker answering the scrape
  is holding that one request instead of another).

Memory per request divides by *served*: one sync worker holding one request is not as
frugal per request as an event loop holding fifty, whatever the queue in front of it.
The report and ``loadlab claims`` both use these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadlab.results.record import Run

# A run, or one of its rounds as the claims hold it (plain dicts until claims/ is typed).
Figures = Run | Mapping[str, Any]


def client_in_flight(run: Figures) -> float:
    """Requests the clients were waiting for at once (Little's law), queued ones included."""
    lat = run.get("latency_ms") or {}
    mean = lat.get("mean") or lat.get("p50") or 0.0
    return float(run.get("rps") or 0.0) * mean / 1000.0


def served_from_gauge(gauge_mean: float) -> float:
    """Requests the server serves at a scrape: its gauge and the scrape that reads it."""
    return float(gauge_mean) + 1.0


def served(run: Figures) -> float | None:
    """Requests the server was serving at once over the measured window, or None."""
    gauge = (run.get("server") or {}).get("requests_in_progress")
    return None if gauge is None else served_from_gauge(gauge)


def memory_per_request(run: Figures) -> float | None:
    """Bytes of the whole service's memory per request it was serving, or None."""
    memory = (run.get("server") or {}).get("memory_bytes")
    held = served(run)
    if not memory or held is None:
        return None
    return float(memory) / held
