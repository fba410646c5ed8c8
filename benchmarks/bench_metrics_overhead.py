"""What the metrics cost: /json throughput of each lab service against a bare app.

For each variant (framework, server, workers) three apps are measured, alternated in
rounds so that the machine's drift hits them alike:

* ``bare``: the framework's hello-world app (``bare_fastapi.py``, ``bare_flask.py``);
* ``metrics``: the same app with only the lab's metrics middleware;
* ``lab``: the lab service itself, as ``loadlab serve`` runs it (metrics and the rest),
  with its side-port metrics server scraped as Prometheus would (``--scrape-interval``,
  default 5 s; the supervisor's CPU for it counts in the lab's process tree).

The server is pinned to core 0 and wrk to core 1 (``taskset``); each measurement gets a
fresh server (a sync server keeps draining the previous run's queue otherwise). Reported:
the median requests/s of each app, the median of the per-round ratios to ``bare``, and the
same ratio of requests per CPU-second of the server's process tree (what the throughput
would be with the core to itself: far steadier than requests/s on a shared machine).

    .venv/bin/python benchmarks/bench_metrics_overhead.py [--rounds 5] [--duration 5]
    .venv/bin/python benchmarks/bench_metrics_overhead.py --side-by-side [--rounds 5]

``--side-by-side`` serves ``bare`` and the compared app at the same time on the server
core, each under its own wrk on the load core, and compares requests per CPU-second of
the two: drift and other work on the machine then hit both in the same seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from _reliability import process_group
from _sidebyside import at_once

from loadlab.launch import free_port, serve_argv
from loadlab.serve import ServerConfig
from loadlab.servers import native_name
from loadlab.stats import mean_ci

HERE = Path(__file__).resolve().parent
SERVER_CORE, LOAD_CORE = "0", "1"
APPS = ("bare", "metrics", "lab")


@dataclass(frozen=True)
class Variant:
    framework: str
    worker_class: str
    workers: int

    @property
    def name(self) -> str:
        return f"{self.framework}-{self.worker_class}-{self.workers}w"

    @property
    def config(self) -> ServerConfig:
        return ServerConfig(framework=self.framework, worker_class=self.worker_class,  # type: ignore[arg-type]
                            workers=self.workers)


VARIANTS = {
    v.name: v for v in (
        Variant("fastapi", "uvicorn", 1), Variant("fastapi", "uvicorn", 2),
        Variant("fastapi", "uvicorn-worker", 1), Variant("flask", "sync", 1),
        Variant("flask", "sync", 2),
    )
}
DEFAULT = ("fastapi-uvicorn-1w", "fastapi-uvicorn-2w", "flask-sync-1w", "flask-sync-2w")


def bare_argv(variant: Variant, app: str, port: int) -> list[str]:
    module = f"bare_{variant.framework}"
    factory = "create_instrumented_app" if app == "metrics" else "create_app"
    if variant.config.server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", f"{module}:{factory}", "--factory",
                "--app-dir", str(HERE), "--port", str(port), "--workers", str(variant.workers),
                "--no-access-log", "--log-level", "warning"]
    return [sys.executable, "-m", "gunicorn", f"{module}:{factory}()", "--chdir", str(HERE),
            "--config", "python:loadlab.gunicorn_conf"]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    metrics_url: str = ""  # the lab's side port (loadlab serve), scraped during the load

    def cpu_seconds(self) -> float:
        """CPU used so far by the server's whole process tree."""
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            for proc in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system
        return total


@contextlib.contextmanager
def running(variant: Variant, app: str) -> Iterator[Server]:
    """A fresh server for ``app`` pinned to the server core."""
    port = free_port()
    env = dict(os.environ, LOADLAB_BIND=f"127.0.0.1:{port}", LOADLAB_WORKERS=str(variant.workers),
               LOADLAB_WORKER_CLASS=variant.worker_class, LOADLAB_SERVER=variant.config.server,
               LOADLAB_GUNICORN_WORKER_CLASS=native_name(variant.worker_class))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_dir = None
    metrics_url = ""
    if app == "lab":
        cfg = ServerConfig(framework=variant.framework, worker_class=variant.worker_class,  # type: ignore[arg-type]
                           workers=variant.workers, port=port, metrics_port=free_port())
        metrics_url = f"http://127.0.0.1:{cfg.metrics_port}/metrics"
        argv = serve_argv(cfg)
    else:
        argv = bare_argv(variant, app, port)
        if app == "metrics" and variant.config.multiprocess:
            metrics_dir = tempfile.mkdtemp(prefix="loadlab-bench-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    url = f"http://127.0.0.1:{port}/json"
    try:
        with process_group(["taskset", "-c", SERVER_CORE, *argv], env, url,
                           f"{variant.name} {app}") as proc:
            yield Server(url, proc.pid, metrics_url)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


SCRAPE_INTERVAL_S = [5.0]  # --scrape-interval


@contextlib.contextmanager
def scraped(server: Server) -> Iterator[None]:
    """Scrape the lab's side port every SCRAPE_INTERVAL_S while the block runs."""
    if not server.metrics_url or SCRAPE_INTERVAL_S[0] <= 0:
        yield
        return
    stop = threading.Event()

    def scrape() -> None:
        # The first scrape as the block starts, then one per interval: a window of one
        # interval's length pays for exactly one scrape, as under Prometheus.
        while True:
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
                reply.read()
            if stop.wait(SCRAPE_INTERVAL_S[0]):
                return

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def wrk(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """(requests/s, requests) of one wrk run."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"no throughput in wrk's output: {out!r}")
    return float(rate.group(1)), int(count.group(1))


def per_cpu_second(server: Server, seconds: float, connections: int) -> float:
    """Requests per CPU-second of the server's tree under one wrk run (after a warm-up),
    its side port scraped meanwhile."""
    wrk(server.url, 1, connections)  # warm-up
    cpu = server.cpu_seconds()
    with scraped(server):
        _, count = wrk(server.url, seconds, connections)
        return count / max(server.cpu_seconds() - cpu, 1e-9)


def connections_for(variant: Variant, asked: int) -> int:
    """A sync worker serves one connection at a time: a deep queue only adds noise."""
    if asked:
        return asked
    return 2 * variant.workers if variant.worker_class == "sync" else 64


def measure(variant: Variant, rounds: int, seconds: float, asked: int) -> dict[str, object]:
    connections = connections_for(variant, asked)
    rps: dict[str, list[float]] = {app: [] for app in APPS}
    # Requests per CPU-second of the server tree: what throughput would be on a core of
    # its own, much less disturbed by other work on a shared machine than requests/s.
    per_cpu: dict[str, list[float]] = {app: [] for app in APPS}
    for _ in range(rounds):
        for app in APPS:
            with running(variant, app) as server:
                wrk(server.url, 1, connections)  # warm-up
                cpu = server.cpu_seconds()
                with scraped(server):
                    rate, count = wrk(server.url, seconds, connections)
                rps[app].append(rate)
                per_cpu[app].append(count / max(server.cpu_seconds() - cpu, 1e-9))

    def ratio(series: dict[str, list[float]], app: str) -> float:
        return statistics.median(a / b for a, b in zip(series[app], series["bare"], strict=True))

    return {"variant": variant.name, "rps": {a: statistics.median(v) for a, v in rps.items()},
            "ratio": {app: ratio(rps, app) for app in APPS if app != "bare"},
            "cpu_ratio": {app: ratio(per_cpu, app) for app in APPS if app != "bare"}}


def measure_side_by_side(variant: Variant, rounds: int, seconds: float,
                         asked: int) -> dict[str, list[float]]:
    """``bare`` and each other app served at the same time, on the same core, under two wrk
    at once: whatever else the machine does hits both alike. Per-round ratios of requests
    per CPU-second."""
    connections = connections_for(variant, asked)
    ratios: dict[str, list[float]] = {app: [] for app in APPS if app != "bare"}
    for _ in range(rounds):
        for app in ratios:
            with running(variant, "bare") as bare, running(variant, app) as other:
                ratios[app].append(at_once(
                    lambda s: per_cpu_second(s, seconds, connections), bare, other))
    return ratios


def _with_interval(values: list[float]) -> str:
    """The median of the rounds and the 95% interval of their mean: a ratio read
    against a bar (0.95) is only below or above it when its interval is."""
    interval = mean_ci(values)
    spread = f" [{interval[1]:.3f}, {interval[2]:.3f}]" if interval else ""
    return f"{statistics.median(values):.3f}{spread}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=0,
                        help="wrk connections (default: 64; 2 per worker for sync workers)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT), choices=sorted(VARIANTS))
    parser.add_argument("--scrape-interval", type=float, default=5.0,
                        help="seconds between scrapes of the lab's side port (0: none)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="serve bare and the compared app at once (steadier on a busy machine)")
    args = parser.parse_args()
    SCRAPE_INTERVAL_S[0] = args.scrape_interval
    if (os.cpu_count() or 1) < 2 or shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench_metrics_overhead: needs 2 cores, wrk and taskset", file=sys.stderr)
        return 2
    if args.side_by_side:
        print(f"{'variant':<22}{'per-CPU, side by side: metrics/bare':>37}{'lab/bare':>25}")
        for name in args.variants:
            together = measure_side_by_side(VARIANTS[name], args.rounds, args.duration,
                                            args.connections)
            print(f"{name:<22}{_with_interval(together['metrics']):>37}"
                  f"{_with_interval(together['lab']):>25}", flush=True)
        return 0
    print(f"{'variant':<22}{'bare rps':>9}{'metrics':>9}{'lab':>9}{'metrics/bare':>13}"
          f"{'lab/bare':>9}{'per-CPU: metrics/bare':>23}{'lab/bare':>9}")
    for name in args.variants:
        result = measure(VARIANTS[name], args.rounds, args.duration, args.connections)
        rps, ratio, cpu = result["rps"], result["ratio"], result["cpu_ratio"]
        assert isinstance(rps, dict) and isinstance(ratio, dict) and isinstance(cpu, dict)
        print(f"{name:<22}{rps['bare']:>9.0f}{rps['metrics']:>9.0f}{rps['lab']:>9.0f}"
              f"{ratio['metrics']:>13.3f}{ratio['lab']:>9.3f}{cpu['metrics']:>23.3f}"
              f"{cpu['lab']:>9.3f}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the servers are stopped by their context managers
        sys.exit(130)
