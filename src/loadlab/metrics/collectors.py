"""Figures of the whole service, computed at scrape time (never per request).

Rendered once per scrape by whichever worker answers, so nothing is counted once per
worker. CPU and throttling come from the service's cgroup (``cgroup.service_cgroup``:
the one ``loadlab serve --cpus`` made, or the container's); without one, from the
process tree rooted at ``LOADLAB_ROOT_PID`` (the ``loadlab serve`` process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from loadlab import cgroup
from loadlab.metrics.definitions import THREADPOOL_BUSY, THREADPOOL_SIZE
from loadlab.proctree import process_tree, pss_bytes, tree_cpu_seconds

MEMORY_HELP = (
    "Memory of the whole service (all workers): the cgroup's working set (usage minus "
    "inactive file cache) when the service has its own cgroup, else the sum of PSS "
    "(proportional set size, /proc/PID/smaps_rollup) over its process tree."
)


@dataclass(frozen=True)
class ServerLabels:
    framework: str
    server: str
    worker_class: str
    workers: int
    threads: int


def root_pid() -> int:
    """The root of the service's process tree (``loadlab serve`` sets it)."""
    configured = os.environ.get("LOADLAB_ROOT_PID", "")
    if configured.isdigit() and psutil.pid_exists(int(configured)):
        return int(configured)
    # Started by hand: a multi-process server's master is the parent, else this process.
    return os.getppid() if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else os.getpid()


class _Monotonic:
    """A process-tree total can dip while a worker exits and is not yet reaped."""

    def __init__(self) -> None:
        self.high = 0.0

    def __call__(self, value: float) -> float:
        self.high = max(self.high, value)
        return self.high


_tree_cpu = _Monotonic()


def cpu_stats() -> cgroup.CpuStats:
    stats = cgroup.service_cpu_stats()
    if stats is not None:
        return stats
    usage = _tree_cpu(tree_cpu_seconds(process_tree(root_pid())))
    return cgroup.CpuStats(usage, 0.0, 0, 0, 0.0)


def memory_bytes() -> int:
    from_cgroup = cgroup.service_memory_bytes()
    if from_cgroup is not None:
        return from_cgroup
    return sum(pss_bytes(proc.pid) for proc in process_tree(root_pid()))


def format_cores(cores: float) -> str:
    return f"{cores:g}"


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def sample_sum(families: Iterable[Metric], name: str) -> float:
    return sum(s.value for f in families if f.name == name for s in f.samples
               if s.name == name)


def service_families(labels: ServerLabels | None, http: list[Metric]) -> Iterator[Metric]:
    """The scrape-time families; ``http`` are the request metrics already collected."""
    cpu = cpu_stats()
    if labels is not None:
        info = GaugeMetricFamily(
            "loadlab_server_info",
            "The variant this service runs: framework, server, worker class, workers, "
            "threads and the CPU limit in cores (0: none); always 1.",
            labels=("framework", "server", "worker_class", "workers", "threads", "cpus"),
        )
        info.add_metric((labels.framework, labels.server, labels.worker_class,
                         str(labels.workers), str(labels.threads),
                         format_cores(cpu.limit_cores)), 1.0)
        yield info
    yield _counter("loadlab_cpu_usage_seconds", "CPU time used by the whole service "
                   "(its cgroup, else its process tree incl. exited children).",
                   cpu.usage_seconds)
    yield _gauge("loadlab_cpu_limit_cores", "CPU quota of the service in cores, as seen "
                 "from inside (0 when unlimited).", cpu.limit_cores)
    yield _counter("loadlab_cpu_periods", "CFS enforcement periods elapsed (cgroup cpu.stat "
                   "nr_periods; 0 without a cgroup quota).", cpu.periods)
    yield _counter("loadlab_cpu_throttled_periods", "CFS periods in which the service was "
                   "throttled (cgroup cpu.stat nr_throttled).", cpu.throttled_periods)
    yield _counter("loadlab_cpu_throttled_seconds", "Time the service was throttled by its "
                   "CFS quota (cgroup v2 throttled_usec, v1 throttled_time).",
                   cpu.throttled_seconds)
    yield _gauge("loadlab_memory_bytes", MEMORY_HELP, memory_bytes())
    if labels is not None and labels.worker_class == "gthread":
        # Each request in flight holds one gthread thread: the pool's use is the in-flight sum.
        workers = sample_sum(http, "loadlab_workers")
        yield _gauge(THREADPOOL_BUSY, "Threads of the request thread pool in use now, "
                     "summed over the live workers.", sample_sum(http, "http_requests_in_progress"))
        yield _gauge(THREADPOOL_SIZE, "Threads the request thread pool may use, summed over "
                     "the live workers.", labels.threads * workers)


class ServiceCollector(Collector):
    """The scrape-time families as a collector for the per-scrape registry."""

    def __init__(self, labels: ServerLabels | None, http: list[Metric]) -> None:
        self._labels = labels
        self._http = http

    def collect(self) -> Iterator[Metric]:
        return service_families(self._labels, self._http)
