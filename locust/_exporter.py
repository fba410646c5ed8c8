"""Prometheus exposition of the swarm, served by Locust's own web app at ``/metrics``.

Every process records its requests into an HDR histogram per name/method/target as they complete
(microseconds, three significant digits: _latency.py). Workers ship the histograms gathered
since their last report inside Locust's own worker report (the same message that carries
Locust's statistics), and the master adds them up, so the master's ``/metrics`` covers the
whole swarm and its totals equal Locust's statistics. The Prometheus buckets are read from
the histogram at scrape time, down to 100 µs.

Port 5557 has no authentication, so what a report may add is bounded: reports count only
from workers the master lists, each row must look like one the lab's own workers send
(a known target, a short name and method, a histogram of bounded size), and the table
holds at most ``MAX_SERIES`` series. Workers the master no longer lists leave the exporter
once they stayed away longer than a stop's rejoin takes (see ``SwarmState.prune``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
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

from loadlab.buckets import LATENCY_BUCKETS_S

log = logging.getLogger("loadlab")

# The services' ladder (100 µs to 30 s), so both sides of a request read alike.
BUCKETS_S = LATENCY_BUCKETS_S
Key = tuple[str, str, str]  # (name, method, target)
# `target` values: the service a request went to, or "host" for the form's Host field.
TARGET_LABELS = frozenset({"host", "fastapi", "flask", "fastapi-gunicorn", "flask-gevent",
                           "fastapi-granian", "flask-granian"})
# What one worker report may add (the lab's own workers stay far below these).
MAX_SERIES = 1000
# How long a worker the master stopped listing keeps its counts, beyond the stop's own wait.
REJOIN_GRACE_S = 30.0
MAX_NAME = 200
MAX_METHOD = 16
MAX_HDR_CHARS = 1 << 20  # an encoded histogram of every bucket is a few kB


@dataclass
class Series:
    """One name/method: its latency histogram, which counts its failures too."""

    latency: Latency = field(default_factory=Latency)
    # The buckets of the last scrape and the count they were read at: walking a histogram
    # that holds every microsecond value of a long run costs seconds in pure Python, and a
    # series that has not changed since (every one, once a swarm stops) need not be read
    # again at the next scrape.
    _buckets: tuple[int, list[tuple[str, int]]] | None = field(default=None, repr=False)

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
        if self._buckets is not None and self._buckets[0] == self.count:
            return self._buckets[1]
        counts = self.latency.count_at_or_below(BUCKETS_S)
        buckets = [*zip(map(str, BUCKETS_S), counts, strict=True), ("+Inf", self.count)]
        self._buckets = (self.count, buckets)
        return buckets


def _row_key(row: Any) -> tuple[Key, dict[str, object]] | None:
    """A worker's row as (key, histogram data), or None when it is not one the lab sends."""
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        return None
    name, method, target, data = row
    if not (isinstance(name, str) and isinstance(method, str) and isinstance(data, dict)):
        return None
    if len(name) > MAX_NAME or len(method) > MAX_METHOD or target not in TARGET_LABELS:
        return None
    hdr = data.get("hdr", "")
    if not isinstance(hdr, str) or len(hdr) > MAX_HDR_CHARS:
        return None
    return (name, method, target), data


class Table:
    """Series per name/method/target; ``dump_and_clear`` hands over what was gathered."""

    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}
        self.refused = 0  # worker rows left out (malformed, or beyond MAX_SERIES)

    def add(self, name: str, method: str, target: str, seconds: float, failed: bool) -> None:
        key = (name, method, target)
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = Series()
        entry.add(seconds, failed)

    def merge(self, rows: Any) -> tuple[int, int]:
        """Add a worker's rows; return the requests and failures they carried."""
        requests = failures = 0
        if not isinstance(rows, list):
            rows = []
            self.refused += 1
        for row in rows:
            checked = _row_key(row)
            entry = None if checked is None else self.series.get(checked[0])
            if checked is not None and entry is None and len(self.series) < MAX_SERIES:
                entry = Series()
            if checked is None or entry is None:
                self._refuse(row)
                continue
            key, data = checked
            before_n, before_f = entry.count, entry.failures
            try:
                entry.merge(data)
            except Exception:  # a histogram that does not decode: the row is refused
                self._refuse(row)
                continue
            self.series.setdefault(key, entry)
            requests += entry.count - before_n
            failures += entry.failures - before_f
        return requests, failures

    def _refuse(self, row: Any) -> None:
        if not self.refused:
            log.warning("loadlab: a worker report carried a row the exporter does not take "
                        "(malformed, or more than %d series); leaving such rows out", MAX_SERIES)
        self.refused += 1

    def dump_and_clear(self) -> list:
        rows = [[*key, s.dump()] for key, s in self.series.items()]
        self.series = {}
        return rows


RUNNING = ("spawning", "running")


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
    # Each worker's CPU peak, kept after it leaves (the run's report names every worker).
    peaks: dict[str, float] = field(default_factory=dict)
    late_sends: int = 0
    runner: Any = None
    unlisted_since: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def listed(self) -> set[str] | None:
        """The workers the master lists now (None: not a master)."""
        clients = getattr(self.runner, "clients", None)
        return None if clients is None else {str(c) for c in clients}

    def worker(self, client_id: str) -> WorkerCounts | None:
        """A listed worker's counts (None for a client the master does not list)."""
        listed = self.listed()
        if listed is not None and client_id not in listed:
            return None
        self.prune(listed)
        return self.workers.setdefault(client_id, WorkerCounts())

    def rejoin_grace_s(self) -> float:
        """How long a stopped worker may be off the master's list and come back.

        After every stop Locust delists each worker between its "client_stopped" and its
        "client_ready", which it sends ``stop_timeout`` seconds later (plus the worker's
        LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP); it comes back under the
        same id, and a scrape in between must not reset its counts to nothing."""
        stop_timeout = getattr(getattr(self.runner, "environment", None), "stop_timeout", 0)
        try:
            extra = float(os.environ.get("LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP",
                                         0))
        except ValueError:
            extra = 0.0
        return float(stop_timeout or 0) + max(extra, 0.0) + REJOIN_GRACE_S

    def prune(self, listed: Iterable[str] | None) -> None:
        """Forget workers the master has not listed for longer than a rejoin takes (quit,
        or missing long enough that Locust dropped them)."""
        if listed is None:
            return
        keep, now = set(listed), self.clock()
        for back in [w for w in self.unlisted_since if w in keep]:
            del self.unlisted_since[back]
        for away in [w for w in self.workers if w not in keep]:
            since = self.unlisted_since.setdefault(away, now)
            if now - since > self.rejoin_grace_s():
                del self.workers[away], self.unlisted_since[away]

    def note_peak(self, client_id: str, peak: float) -> None:
        if client_id in self.peaks or len(self.peaks) < MAX_SERIES:
            self.peaks[client_id] = max(self.peaks.get(client_id, 0.0), peak)


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

        yield from self._run_info(runner)

        labels = ["name", "method", "target"]
        requests = CounterMetricFamily("locust_requests", "Requests completed (incl. failed)",
                                       labels=labels)
        failures = CounterMetricFamily("locust_failures", "Requests that failed",
                                       labels=labels)
        latency = HistogramMetricFamily("locust_response_time_seconds",
                                        "Response time seen by the users (from actual send)",
                                        labels=labels)
        for key, s in sorted(state.table.series.items()):
            requests.add_metric(list(key), s.count)
            failures.add_metric(list(key), s.failures)
            latency.add_metric(list(key), s.cumulative(), s.sum_s)
        yield requests
        yield failures
        yield latency

        late = CounterMetricFamily("locust_late_sends",
                                   "Open model: sends that left later than intended")
        late.add_metric([], state.late_sends)
        yield late
        yield from self._workers(runner)

    def _run_info(self, runner: Any) -> Iterator[Metric]:
        info = GaugeMetricFamily("locust_run_info", "Users running in the swarm, by the "
                                 "target chosen and the scenario (absent when none runs)",
                                 labels=["target", "scenario"])
        options = getattr(getattr(runner, "environment", None), "parsed_options", None)
        users = int(getattr(runner, "user_count", 0) or 0)
        if options is not None and users > 0 and getattr(runner, "state", "") in RUNNING:
            info.add_metric([str(getattr(options, "target", "host")),
                             str(getattr(options, "scenario", ""))], users)
        yield info

    def _workers(self, runner: Any) -> Iterator[Metric]:
        clients = getattr(runner, "clients", None)
        if clients is None:  # a local (single-process) runner has no workers
            return
        self.state.prune(self.state.listed())
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
