"""Prometheus exposition of the swarm, served by Locust's own web app at ``/metrics``.

Every process records its requests into an HDR histogram per name/method as they complete
(microseconds, three significant digits: _latency.py). Workers ship the histograms gathered
since their last report inside Locust's own worker report (the same message that carries
Locust's statistics), and the master adds them up, so the master's ``/metrics`` covers the
whole swarm and its totals equal Locust's statistics. The Prometheus buckets are read from
the histogram at scrape time, down to 100 µs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from _latency import Latency
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from loadlab.names import LATENCY_BUCKETS_S

# The services' ladder (100 µs to 30 s), so both sides of a request read alike.
BUCKETS_S = LATENCY_BUCKETS_S
Key = tuple[str, str]  # (name, method)


@dataclass
class Series:
    """One name/method: its latency histogram, which counts its failures too."""

    latency: Latency = field(default_factory=Latency)

    @property
    def count(self) -> int:
        return self.latency.total

    @property
    def failures(self) -> int:
        return self.latency.failures

    @property
    def sum_s(self) -> float:
        return self.latency.sum_ms / 1000.0

    def add(self, seconds: float, failed: bool) -> None:
        self.latency.add(seconds * 1000.0, failed)

    def merge(self, data: dict[str, object]) -> None:
        self.latency.merge(data)

    def dump(self) -> dict[str, object]:
        return self.latency.dump()

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets (cumulative, +Inf last) read from the histogram."""
        counts = self.latency.count_at_or_below(BUCKETS_S)
        return [*zip(map(str, BUCKETS_S), counts, strict=True), ("+Inf", self.count)]


class Table:
    """Series per name/method; ``dump_and_clear`` hands over what was gathered (workers)."""

    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}

    def add(self, name: str, method: str, seconds: float, failed: bool) -> None:
        key = (name, method)
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = Series()
        entry.add(seconds, failed)

    def merge(self, rows: list) -> tuple[int, int]:
        """Add a worker's rows; return the requests and failures they carried."""
        requests = failures = 0
        for name, method, data in rows:
            entry = self.series.setdefault((name, method), Series())
            before_n, before_f = entry.count, entry.failures
            entry.merge(data)
            requests += entry.count - before_n
            failures += entry.failures - before_f
        return requests, failures

    def dump_and_clear(self) -> list:
        rows = [[name, method, s.dump()] for (name, method), s in self.series.items()]
        self.series = {}
        return rows


@dataclass
class WorkerCounts:
    requests: int = 0
    failures: int = 0
    cpu_percent: float = 0.0
    cpu_peak: float = 0.0


@dataclass
class SwarmState:
    """What ``/metrics`` shows; the master's view in distributed mode."""

    table: Table = field(default_factory=Table)
    workers: dict[str, WorkerCounts] = field(default_factory=dict)
    late_sends: int = 0
    runner: Any = None

    def worker(self, client_id: str) -> WorkerCounts:
        return self.workers.setdefault(client_id, WorkerCounts())


class SwarmCollector:
    """A prometheus_client collector that reads the swarm state at scrape time."""

    def __init__(self, state: SwarmState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        runner = state.runner
        users = GaugeMetricFamily("locust_users", "Users currently running (whole swarm)")
        users.add_metric([], float(getattr(runner, "user_count", 0) or 0))
        yield users

        requests = CounterMetricFamily("locust_requests", "Requests completed (incl. failed)",
                                       labels=["name", "method"])
        failures = CounterMetricFamily("locust_failures", "Requests that failed",
                                       labels=["name", "method"])
        latency = HistogramMetricFamily("locust_response_time_seconds",
                                        "Response time seen by the users (from actual send)",
                                        labels=["name", "method"])
        for (name, method), s in sorted(state.table.series.items()):
            requests.add_metric([name, method], s.count)
            failures.add_metric([name, method], s.failures)
            latency.add_metric([name, method], s.cumulative(), s.sum_s)
        yield requests
        yield failures
        yield latency

        late = CounterMetricFamily("locust_late_sends",
                                   "Open model: sends that left later than intended")
        late.add_metric([], state.late_sends)
        yield late
        yield from self._workers(runner)

    def _workers(self, runner: Any) -> Iterator[Metric]:
        clients = getattr(runner, "clients", None)
        if clients is None:  # a local (single-process) runner has no workers
            return
        by_state = GaugeMetricFamily("locust_workers", "Workers known to the master, by state",
                                     labels=["state"])
        counts: dict[str, int] = {}
        worker_users = GaugeMetricFamily("locust_worker_users", "Users running on each worker",
                                         labels=["worker"])
        for node in clients.values():
            counts[node.state] = counts.get(node.state, 0) + 1
            worker_users.add_metric([node.id], node.user_count)
        for name, n in sorted(counts.items()):
            by_state.add_metric([name], n)
        yield by_state
        yield worker_users
        w_requests = CounterMetricFamily("locust_worker_requests",
                                         "Requests reported by each worker", labels=["worker"])
        w_failures = CounterMetricFamily("locust_worker_failures",
                                         "Failures reported by each worker", labels=["worker"])
        w_cpu = GaugeMetricFamily("locust_worker_cpu_percent",
                                  "Each worker's CPU use at its last report", labels=["worker"])
        for worker_id, c in sorted(self.state.workers.items()):
            w_requests.add_metric([worker_id], c.requests)
            w_failures.add_metric([worker_id], c.failures)
            w_cpu.add_metric([worker_id], c.cpu_percent)
        yield w_requests
        yield w_failures
        yield w_cpu


def registry_for(state: SwarmState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(state))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
