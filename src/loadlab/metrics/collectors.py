"""Figures of the whole service, computed at scrape time (never per request).

Rendered once per scrape by whichever worker answers, so nothing is counted once per
worker. CPU and throttling come from the service's cgroup (``cgroup.service_cgroup``:
the one ``loadlab serve --cpus`` made, or the container's); without one, from the
process tree rooted at ``LOADLAB_ROOT_PID`` (the ``loadlab serve`` process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from loadlab import cgroup, servers
from loadlab.metrics.acceptqueue import AcceptQueueReader
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


def root_pid(environ: Mapping[str, str] | None = None) -> int:
    """The root of the service's process tree (``loadlab serve`` sets it)."""
    env = os.environ if environ is None else environ
    configured = env.get("LOADLAB_ROOT_PID", "")
    if configured.isdigit() and psutil.pid_exists(int(configured)):
        return int(configured)
    # Started by hand: a multi-process server's master is the parent, else this process.
    return os.getppid() if env.get("PROMETHEUS_MULTIPROC_DIR") else os.getpid()


class _Monotonic:
    """A process-tree total can dip while a worker exits and is not yet reaped."""

    def __init__(self) -> None:
        self.high = 0.0

    def __call__(self, value: float) -> float:
        self.high = max(self.high, value)
        return self.high


_tree_cpu = _Monotonic()


def cpu_stats(environ: Mapping[str, str] | None = None) -> cgroup.CpuStats:
    """``environ``: the service's environment (the supervisor reads its child's)."""
    stats = cgroup.service_cpu_stats(environ=environ)
    if stats is not None:
        return stats
    usage = _tree_cpu(tree_cpu_seconds(process_tree(root_pid(environ))))
    return cgroup.CpuStats(usage, 0.0, 0, 0, 0.0)


def memory_bytes(environ: Mapping[str, str] | None = None) -> int:
    from_cgroup = cgroup.service_memory_bytes(environ=environ)
    if from_cgroup is not None:
        return from_cgroup
    return sum(pss_bytes(proc.pid) for proc in process_tree(root_pid(environ)))


DEFAULT_BACKLOG = 2048  # Gunicorn's and Uvicorn's own default; loadlab serve passes it on
BACKLOG_ENV = "LOADLAB_LISTEN_BACKLOG"
_own_listener: list[AcceptQueueReader] = []


def own_accept_queue() -> AcceptQueueReader:
    """This worker's reader: a worker holds the listening sockets it accepts on."""
    pid = os.getpid()
    if not _own_listener or _own_listener[0].pid != pid:  # a fork since the last scrape
        raw = os.environ.get(BACKLOG_ENV, "")
        backlog = int(raw) if raw.isdigit() else DEFAULT_BACKLOG
        _own_listener[:] = [AcceptQueueReader(pid, backlog)]
    return _own_listener[0]


def format_cores(cores: float) -> str:
    return f"{cores:g}"


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def sample_sum(families: Iterable[Metric], name: str) -> float:
    return sum(s.value for f in families if f.name == name for s in f.samples
               if s.name == name)


def accept_queue_families(reader: AcceptQueueReader | None) -> Iterator[Metric]:
    queue = reader.read() if reader is not None else None
    if queue is None:
        return
    yield _gauge("loadlab_accept_queue_connections", "Connections the kernel has completed "
                 "but the server has not yet accepted, on the service's listening socket(s) "
                 "(the LISTEN socket's Recv-Q, /proc/net/tcp rx_queue).", queue.connections)
    yield _gauge("loadlab_accept_queue_limit", "The listening socket(s)' backlog: the "
                 "server's listen() backlog capped by net.core.somaxconn (Send-Q of the "
                 "LISTEN socket).", queue.limit)


def service_families(labels: ServerLabels | None, http: list[Metric],
                     accept: AcceptQueueReader | None = None,
                     environ: Mapping[str, str] | None = None) -> Iterator[Metric]:
    """The scrape-time families; ``http`` are the request metrics already collected,
    ``accept`` reads the listening sockets, ``environ`` is the service's environment."""
    cpu = cpu_stats(environ)
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
    yield _gauge("loadlab_memory_bytes", MEMORY_HELP, memory_bytes(environ))
    yield from accept_queue_families(accept)
    klass = servers.worker_class(labels.worker_class) if labels is not None else None
    if labels is not None and klass is not None and klass.thread_per_request:
        # Each request in flight holds one thread: the pool's use is the in-flight sum.
        workers = sample_sum(http, "loadlab_workers")
        yield _gauge(THREADPOOL_BUSY, "Threads of the request thread pool in use now, "
                     "summed over the live workers.", sample_sum(http, "http_requests_in_progress"))
        yield _gauge(THREADPOOL_SIZE, "Threads the request thread pool may use, summed over "
                     "the live workers.", labels.threads * workers)


class ServiceCollector(Collector):
    """The scrape-time families as a collector for the per-scrape registry."""

    def __init__(self, labels: ServerLabels | None, http: list[Metric],
                 accept: AcceptQueueReader | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._labels = labels
        self._http = http
        self._accept = accept
        self._environ = environ

    def collect(self) -> Iterator[Metric]:
        return service_families(self._labels, self._http, self._accept, self._environ)
