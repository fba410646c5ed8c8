"""Server figures during a run: scrapes the service's metrics once a second (natively at
``loadlab serve``'s side port, outside the worker pool; else the service's /metrics).

The service's own metrics (names fixed in docs/design.md) give CPU used, throttling and memory
as the service's cgroup sees them. For a local service the process tree is read too
(CPU times and PSS through psutil), so figures exist even where a metric is missing.
Live throughput and p95 for the progress display come from the request counter and
histogram deltas.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import psutil
from prometheus_client.parser import text_string_to_metric_families

from loadlab.fileio import atomic_write
from loadlab.proctree import tree_figures
from loadlab.runs.record import Series
from loadlab.runs.samples import SampleRow, histogram_quantile

IGNORED_HANDLERS = {"/metrics", "/healthz"}
SAMPLES_FORMAT = "loadlab-samples/1"
# A native service is scraped at its supervisor's side port (loadlab serve), which answers
# at once however saturated the workers are. A compose or swarm service is scraped at its
# published service port, where a sync worker answers only after the requests queued
# ahead of it (50 users at 50 ms each: 2.5 s): a shorter timeout would lose every sample
# of exactly that case.
SCRAPE_TIMEOUT_S = 10.0
EDGE_GAP = 0.2  # of the interval: a scrape this close to the window's edge is left out


@dataclass
class Scrape:
    t: float
    requests: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    cpu_seconds: float | None = None
    throttled_seconds: float | None = None
    periods: float | None = None
    throttled_periods: float | None = None
    memory_bytes: float | None = None
    cpu_limit: float | None = None
    tree_cpu_seconds: float | None = None
    tree_pss_bytes: float | None = None
    machine_busy_seconds: float = 0.0  # all cores, everyone's work but this runner's
    ok: bool = True  # the service answered the scrape
    in_progress: float | None = None  # http_requests_in_progress, the scrape left out
    loop_lag_buckets: dict[float, float] = field(default_factory=dict)
    threadpool_busy: float | None = None
    threadpool_size: float | None = None
    db_pool_in_use: float | None = None
    db_pool_size: float | None = None
    db_pool_waiting: float | None = None
    accept_queue: float | None = None  # connections completed, not yet accepted


def parse_metrics(text: str, t: float) -> Scrape:
    scrape = Scrape(t=t)
    singles = {
        "loadlab_cpu_usage_seconds": "cpu_seconds",
        "loadlab_cpu_throttled_seconds": "throttled_seconds",
        "loadlab_cpu_periods": "periods",
        "loadlab_cpu_throttled_periods": "throttled_periods",
        "loadlab_memory_bytes": "memory_bytes",
        "loadlab_cpu_limit_cores": "cpu_limit",
        "http_requests_in_progress": "in_progress",
        "loadlab_threadpool_busy": "threadpool_busy",
        "loadlab_threadpool_size": "threadpool_size",
        "loadlab_db_pool_in_use": "db_pool_in_use",
        "loadlab_db_pool_size": "db_pool_size",
        "loadlab_db_pool_waiting": "db_pool_waiting",
        "loadlab_accept_queue_connections": "accept_queue",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("handler") in IGNORED_HANDLERS:
                continue
            if sample.name == "http_requests_total":
                scrape.requests += sample.value
            elif sample.name == "http_request_duration_seconds_bucket":
                le = float(sample.labels["le"])
                scrape.buckets[le] = scrape.buckets.get(le, 0.0) + sample.value
            elif sample.name == "loadlab_event_loop_lag_seconds_bucket":
                le = float(sample.labels["le"])
                scrape.loop_lag_buckets[le] = scrape.loop_lag_buckets.get(le, 0.0) + sample.value
            else:
                base = sample.name.removesuffix("_total")
                if base in singles:
                    attr = singles[base]
                    current = getattr(scrape, attr)
                    setattr(scrape, attr, sample.value + (current or 0.0))
    return scrape


@dataclass
class Window:
    """Server figures between two moments of a run."""

    cpu_seconds: float | None
    throttled_seconds: float | None
    throttled_share: float | None
    memory_bytes: float | None
    cpu_limit: float | None
    source: str
    seconds: float
    machine_busy_cores: float
    in_progress_mean: float | None  # the server's gauge averaged over the window's scrapes
    in_progress_samples: int


class ServerSampler:
    """Background scraper; call ``mark()`` at the end of warm-up and ``window()`` after."""

    def __init__(self, metrics_url: str, pid: int | None, base_url: str,
                 interval_s: float = 1.0, probe_interval_s: float = 0.2) -> None:
        self.metrics_url = metrics_url
        self.base_url = base_url
        self.pid = pid
        self.interval_s = interval_s
        self.probe_interval_s = probe_interval_s
        self.scrapes: list[Scrape] = []
        self.probes: list[tuple[float, float]] = []  # (t, seconds) of /healthz answers
        self.scrape_errors = 0
        # "side-port": loadlab serve's supervisor answers, outside the worker pool, so the
        # in-flight gauge is the requests alone; "service-port": a worker answers, holding
        # the scrape as one request (loadlab.report.concurrency counts it).
        self.scrape_kind = ("service-port" if metrics_url.startswith(base_url.rstrip("/") + "/")
                            else "side-port")
        self._mark: int = 0
        self._mark_probe: int = 0
        self._mark_t: float | None = None
        self._cut_t: float | None = None  # the measured window's end (``cut``)
        self._due = 0.0  # the background loop's next scrape (re-aligned at the mark)
        self._lock = threading.Lock()
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True),
            threading.Thread(target=self._probe_loop, daemon=True),
        ]

    def start(self) -> ServerSampler:
        self.scrapes.append(self.scrape())
        self._due = self.scrapes[0].t + self.interval_s
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def scrape(self) -> Scrape:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=SCRAPE_TIMEOUT_S) as reply:
                text = reply.read().decode("utf-8", "replace")
            # Stamped when the answer came: a queued scrape reads the server as it is then.
            scrape = parse_metrics(text, time.monotonic())
        except Exception:  # a service under load or gone: count it, keep sampling
            self.scrape_errors += 1
            scrape = Scrape(t=time.monotonic(), ok=False)
        if self.pid is not None:
            with contextlib.suppress(psutil.Error):
                scrape.tree_cpu_seconds, scrape.tree_pss_bytes = tree_figures(self.pid)
        times = psutil.cpu_times()
        own = self._me.cpu_times()  # the runner's own sampling is not "other work"
        scrape.machine_busy_seconds = times.user + times.system + getattr(times, "nice", 0.0) + (
            getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
            + getattr(times, "steal", 0.0)) - own.user - own.system
        return scrape

    def _loop(self) -> None:
        while True:
            with self._lock:
                due = self._due
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                if self._due != due:  # re-aligned at the mark meanwhile
                    continue
                self._due = max(due + self.interval_s, time.monotonic())
            self.scrapes.append(self.scrape())

    def _probe_loop(self) -> None:
        url = f"{self.base_url}/healthz"
        while not self._stop.wait(self.probe_interval_s):
            began = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    reply.read()
            except Exception:
                continue
            self.probes.append((began, time.monotonic() - began))

    def mark(self) -> None:
        """The end of warm-up: figures are taken from here on, and the background scrapes
        are re-aligned to whole intervals after it (a window of whole seconds is whole
        samples, none of them a short first one)."""
        scrape = self.scrape()
        with self._lock:
            self.scrapes.append(scrape)
            self._mark = len(self.scrapes) - 1
            self._mark_t = scrape.t
            self._due = scrape.t + self.interval_s
        self._mark_probe = len(self.probes)

    def cut(self) -> float:
        """The end of the measured window (the mark + the run's duration): a scrape taken
        now, where ``series`` ends; the load may go on (Locust's stop comes after)."""
        scrape = self.scrape()
        with self._lock:
            self.scrapes.append(scrape)
            self._cut_t = scrape.t
            self._due = scrape.t + self.interval_s
        return scrape.t

    @property
    def marked_at(self) -> float | None:
        """When the mark's scrape answered (monotonic), None before ``mark``."""
        return self._mark_t

    def live(self) -> tuple[float | None, float | None]:
        """(requests per second, p95 ms) over the last few seconds, from the server."""
        if len(self.scrapes) < 2:
            return None, None
        last = self.scrapes[-1]
        first = self.scrapes[max(0, len(self.scrapes) - 4)]
        dt = last.t - first.t
        if dt <= 0 or not last.buckets:
            return None, None
        rps = (last.requests - first.requests) / dt
        p95 = histogram_quantile(0.95, first.buckets, last.buckets) * 1000
        return rps, (None if math.isnan(p95) else p95)

    def probe_ms(self) -> list[float]:
        return [s * 1000 for _, s in self.probes[self._mark_probe:]]

    def measured(self) -> list[Scrape]:
        """The scrapes of the measured window, after ``window()`` (its last scrape, taken
        once Locust has gone, left out)."""
        return list(self.scrapes[self._mark:-1])

    def window(self) -> Window:
        self.scrapes.append(self.scrape())
        first, last = self.scrapes[self._mark], self.scrapes[-1]
        window = self.scrapes[self._mark:]

        def delta(attr: str) -> float | None:
            a, b = getattr(first, attr), getattr(last, attr)
            return None if a is None or b is None else max(0.0, b - a)

        cpu = delta("cpu_seconds")
        source = "metrics"
        if cpu is None or cpu == 0.0:
            tree = delta("tree_cpu_seconds")
            if tree is not None:
                cpu, source = tree, "process tree"
        throttled = delta("throttled_seconds")
        periods, thr_periods = delta("periods"), delta("throttled_periods")
        share = thr_periods / periods if periods and thr_periods is not None else None
        memories = [s.tree_pss_bytes for s in window if s.tree_pss_bytes]
        memory_source = "pss"
        if not memories:
            memories = [s.memory_bytes for s in window if s.memory_bytes]
            memory_source = "metrics"
        limits = [s.cpu_limit for s in window if s.cpu_limit is not None]
        # The last scrape comes after Locust has gone and reads an idle server: left out.
        gauge = [s.in_progress for s in window[:-1] if s.ok and s.in_progress is not None]
        return Window(
            cpu_seconds=cpu, throttled_seconds=throttled, throttled_share=share,
            memory_bytes=max(memories) if memories else None,
            cpu_limit=limits[-1] if limits else None,
            source=f"cpu: {source}; memory: {memory_source}",
            seconds=max(last.t - first.t, 1e-6),
            machine_busy_cores=(last.machine_busy_seconds - first.machine_busy_seconds)
            / max(last.t - first.t, 1e-6),
            in_progress_mean=sum(gauge) / len(gauge) if gauge else None,
            in_progress_samples=len(gauge),
        )

    def series(self, until: float | None = None) -> Series:
        """The window second by second: each interval between two answered scrapes from the
        mark up to ``until`` (monotonic; None: the ``cut`` if one was taken, else all but
        the scrape taken after the load), with the server's completed requests per second
        and the cores it used. The claims read these as many samples of one run
        (loadlab.stats.series_estimate)."""
        start = self._mark_t if self._mark_t is not None else -math.inf
        # In time order: a background scrape under way at the mark may be appended after it.
        taken = sorted((s for s in self.scrapes[self._mark:] if s.ok and s.t >= start),
                       key=lambda s: s.t)
        until = self._cut_t if until is None else until
        taken = taken[:-1] if until is None else [s for s in taken if s.t <= until]
        # A background scrape that answered next to the mark's or the cut's (it was under
        # way when they were taken) would make an interval of a few ms: left out, the
        # window's edges kept.
        gap = EDGE_GAP * self.interval_s
        if len(taken) > 2:
            inner = [s for s in taken[1:-1]
                     if s.t - taken[0].t >= gap and taken[-1].t - s.t >= gap]
            taken = [taken[0], *inner, taken[-1]]
        seconds: list[float | None] = []
        rps: list[float | None] = []
        cores: list[float | None] = []
        for a, b in itertools.pairwise(taken):
            dt = b.t - a.t
            if dt <= 0:
                continue
            cpu_a, cpu_b = ((a.cpu_seconds, b.cpu_seconds) if a.cpu_seconds and b.cpu_seconds
                            else (a.tree_cpu_seconds, b.tree_cpu_seconds))
            seconds.append(round(dt, 3))
            rps.append(round(max(b.requests - a.requests, 0.0) / dt, 3))
            cores.append(None if cpu_a is None or cpu_b is None
                         else round(max(cpu_b - cpu_a, 0.0) / dt, 4))
        return {"seconds": seconds, "rps": rps, "cpu_cores": cores}

    def dump(self, path: Path, load_began: float | None) -> None:
        """The scrapes as taken (cumulative counters), for the report's figures over time."""
        scrapes = list(self.scrapes)  # a late scrape may still be appending
        t0 = scrapes[0].t if scrapes else 0.0

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - t0, 3)

        def row(s: Scrape) -> SampleRow:
            data = asdict(s)
            data.pop("machine_busy_seconds")
            data["t"] = rel(s.t)
            for key in ("buckets", "loop_lag_buckets"):
                data[key] = {str(le): n for le, n in sorted(s.__dict__[key].items())}
            # The scrape's fields under their names (SampleRow's), the unread ones left out.
            return cast(SampleRow, {k: v for k, v in data.items() if v is not None and v != {}})

        mark = scrapes[self._mark].t if len(scrapes) > self._mark else None
        payload = {
            "format": SAMPLES_FORMAT, "interval_s": self.interval_s,
            "scrape": self.scrape_kind,
            # Locust counts per wall-clock second; this lines its counts up with the scrapes.
            "t0_unix": round(time.time() - (time.monotonic() - t0), 3),
            "load_began_s": rel(load_began), "measured_from_s": rel(mark),
            "scrapes": [row(s) for s in scrapes],
        }
        atomic_write(path, json.dumps(payload, separators=(",", ":")) + "\n")
