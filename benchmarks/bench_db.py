"""The database endpoints measured: the lab's cost over a bare app, the database's CPU per
request, and the connection pool as the limit of ``/db/sleep``.

Against a throwaway PostgreSQL (``PostgresCluster``), two parts:

* ``pair``: ``/db`` and ``/db/sleep`` of each lab service against a bare app of the same
  stack with the same driver, pool and SQL (``bare_db_apps.py``), both served at once on the
  server core, each under its own wrk on the load core, as ``bench_metrics_overhead.py
  --side-by-side`` does; several short rounds, a fresh pair each round, medians of the
  per-round ratios lab/bare of requests/s and of requests per CPU-second of the server's
  process tree. Beside them: the CPU per request of each service, of the database's whole
  process tree (the postmaster and its children; over both apps' requests), and of each
  app's own backends (the pool's connections, told apart by ``application_name``).
* ``curve``: ``/db/sleep?ms=M`` from many clients against the pool size of one Uvicorn
  process, and against the number of Gunicorn sync workers with one connection each:
  throughput should be pool / M ms, and the database should see workers x pool
  connections (``pg_stat_activity``, sampled through each point).

The servers run on core 0 and wrk on core 1; the database on core 0 with the servers
(``--db-cores server``, the default: with 2 cores it cannot have one of its own and should
not take the load generator's) or on both (``shared``).

    .venv/bin/python benchmarks/bench_db.py [--parts pair curve] [--rounds 3] [--duration 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _reliability import (
    LOAD_CPU,
    SERVER_CPU,
    can_pin,
    load_average,
    pinned_service,
    process_group,
    wait_idle,
)

from loadlab.launch import free_port
from loadlab.pgcluster import PostgresCluster
from loadlab.servers import native_name
from loadlab.service_db import default_pool_size

HERE = Path(__file__).resolve().parent
PLACEMENTS = {"server": {SERVER_CPU}, "shared": {SERVER_CPU, LOAD_CPU}}
APPS = ("lab", "bare")
MONITOR = "loadlab-bench-monitor"
READY_S = 30.0


@dataclass(frozen=True)
class Variant:
    framework: str
    worker_class: str
    workers: int = 1
    threads: int = 1

    @property
    def name(self) -> str:
        threads = f"x{self.threads}t" if self.threads > 1 else ""
        return f"{self.framework}-{self.worker_class}-{self.workers}w{threads}"

    @property
    def server(self) -> str:
        return "uvicorn" if self.worker_class == "uvicorn" else "gunicorn"

    def options(self) -> dict[str, Any]:
        return {"framework": self.framework, "worker_class": self.worker_class,
                "workers": self.workers, "threads": self.threads}

    def connections(self) -> int:
        """wrk connections for the pair: a sync worker serves one at a time, a deep queue
        only adds noise (as in bench_metrics_overhead)."""
        return 2 * self.workers if self.worker_class == "sync" else 64


VARIANTS = {v.name: v for v in (Variant("fastapi", "uvicorn"), Variant("flask", "sync"),
                                Variant("flask", "gthread", threads=8))}


# -- CPU -------------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """CPU of one process, all its threads, in nanoseconds from ``schedstat`` (clock
    ticks, 10 ms, are too coarse for a few hundred requests); else from psutil."""
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"{task.path}/schedstat") as fh:
                total += int(fh.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            return float(t.user + t.system)
        return 0.0


def tree_pids(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    return sum(process_cpu_seconds(p) for p in tree_pids(pid))


def place_database(cluster: PostgresCluster, cores: set[int]) -> None:
    """Pin the postmaster's tree; backends forked later inherit the postmaster's cores."""
    for pid in tree_pids(cluster.pid):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).cpu_affinity(sorted(cores))


# -- the database's view ---------------------------------------------------------------------
def app_url(cluster: PostgresCluster, app: str) -> str:
    return f"{cluster.url}?application_name={app}"


def monitor(cluster: PostgresCluster) -> Any:
    import psycopg

    return psycopg.connect(app_url(cluster, MONITOR), autocommit=True, connect_timeout=10)


def backend_pids(conn: Any, app: str) -> list[int]:
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                        (app,)).fetchall()
    return [int(r[0]) for r in rows]


def wait_connections(conn: Any, app: str, expected: int, alive: Callable[[], bool]) -> None:
    """Until the app's pools hold all their connections (they connect in the background)."""
    deadline = time.monotonic() + READY_S
    while len(backend_pids(conn, app)) < expected:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{app}: {len(backend_pids(conn, app))} of {expected} "
                               "database connections")
        time.sleep(0.1)


@dataclass
class ConnectionSampler:
    """Samples ``pg_stat_activity`` on its own connection every ``interval_s``: the app's
    connections, how many run a query, and all client connections but this one."""

    cluster: PostgresCluster
    app: str
    interval_s: float = 0.1
    samples: list[tuple[int, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        with monitor(self.cluster) as conn:
            while not self._stop.wait(self.interval_s):
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE application_name = %s),"
                    " count(*) FILTER (WHERE application_name = %s AND state = 'active'),"
                    " count(*) FILTER (WHERE backend_type = 'client backend'"
                    "                    AND application_name <> %s)"
                    " FROM pg_stat_activity", (self.app, self.app, MONITOR)).fetchone()
                self.samples.append((int(row[0]), int(row[1]), int(row[2])))

    def __enter__(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"app": 0, "active_peak": 0, "active_mean": 0.0, "clients": 0}
        return {"app": max(s[0] for s in self.samples),
                "active_peak": max(s[1] for s in self.samples),
                "active_mean": statistics.fmean(s[1] for s in self.samples),
                "clients": max(s[2] for s in self.samples)}


# -- the servers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Served:
    app: str
    url: str
    pid: int


def _env(cluster: PostgresCluster, app: str, pool: int) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=app_url(cluster, app), LOADLAB_DB_POOL_SIZE=str(pool))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextlib.contextmanager
def lab_service(cluster: PostgresCluster, variant: Variant, app: str, pool: int,
                conn: Any) -> Iterator[Served]:
    """The lab service, as ``loadlab serve`` runs it, on the server core."""
    with pinned_service(variant.options(), _env(cluster, app, pool)) as service:
        alive = lambda: service.proc is not None and service.proc.poll() is None  # noqa: E731
        wait_connections(conn, app, pool * variant.workers, alive)
        yield Served(app, service.url, service.pid)


def bare_argv(variant: Variant, port: int) -> list[str]:
    """The bare app under the same server settings as ``loadlab serve`` gives the lab."""
    if variant.server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "bare_db_apps:create_fastapi_app", "--factory",
                "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(variant.workers), "--no-access-log", "--log-level", "warning"]
    return [sys.executable, "-m", "gunicorn", "bare_db_apps:create_flask_app()",
            "--chdir", str(HERE), "--config", "python:loadlab.gunicorn_conf"]


@contextlib.contextmanager
def bare_service(cluster: PostgresCluster, variant: Variant, app: str, pool: int,
                 conn: Any) -> Iterator[Served]:
    """The bare app on the server core, in a process group of its own, ended by it."""
    port = free_port()
    env = _env(cluster, app, pool)
    env.update(LOADLAB_BIND=f"127.0.0.1:{port}", LOADLAB_WORKERS=str(variant.workers),
               LOADLAB_THREADS=str(variant.threads),
               LOADLAB_GUNICORN_WORKER_CLASS=native_name(variant.worker_class))
    url = f"http://127.0.0.1:{port}"
    argv = ["taskset", "-c", str(SERVER_CPU), *bare_argv(variant, port)]
    with process_group(argv, env, f"{url}/db", f"bare {variant.name}", READY_S) as proc:
        wait_connections(conn, app, pool * variant.workers, lambda: proc.poll() is None)
        yield Served(app, url, proc.pid)


# -- the load --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wrk:
    rps: float
    requests: int
    bad: int  # non-2xx answers and socket errors
    p50_ms: float
    p99_ms: float


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _latency_ms(out: str, pct: str) -> float:
    found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def wrk(url: str, seconds: float, connections: int) -> Wrk:
    """One wrk run on the load core; every run ends by itself after ``seconds``."""
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
         "--timeout", "10s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"no throughput in wrk's output: {out!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    bad = (int(non_2xx.group(1)) if non_2xx else 0) + \
        (sum(int(g) for g in sockets.groups()) if sockets else 0)
    return Wrk(float(rate.group(1)), int(count.group(1)), bad,
               _latency_ms(out, "50"), _latency_ms(out, "99"))


def wrk_together(urls: list[str], seconds: float, connections: int) -> list[Wrk]:
    """One wrk per URL, all at once."""
    results: list[Wrk | BaseException | None] = [None] * len(urls)

    def one(i: int, url: str) -> None:
        try:
            results[i] = wrk(url, seconds, connections)
        except BaseException as exc:  # re-raised below, on the main thread
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [r for r in results if isinstance(r, Wrk)]


# -- part 1 and 2: lab against bare, and the database's CPU per request ----------------------
def measure_pair(cluster: PostgresCluster, variant: Variant, paths: list[str], rounds: int,
                 seconds: float) -> dict[str, Any]:
    """Per path: the rounds, and the medians of their ratios and CPU figures."""
    pool = default_pool_size(variant.worker_class, variant.threads)
    connections = variant.connections()
    by_path: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    with monitor(cluster) as conn:
        for r in range(rounds):
            order = APPS if r % 2 == 0 else APPS[::-1]  # who starts first alternates
            with contextlib.ExitStack() as stack:
                served: dict[str, Served] = {}
                for app in order:
                    start = lab_service if app == "lab" else bare_service
                    served[app] = stack.enter_context(start(cluster, variant, f"bench-{app}",
                                                            pool, conn))
                backends = {app: backend_pids(conn, f"bench-{app}") for app in APPS}
                for path in paths:
                    urls = [served[app].url + path for app in APPS]
                    wrk_together(urls, 1, connections)  # warm-up
                    before = _cpu_now(cluster, served, backends)
                    began = time.monotonic()
                    results = dict(zip(APPS, wrk_together(urls, seconds, connections),
                                       strict=True))
                    wall = time.monotonic() - began
                    after = _cpu_now(cluster, served, backends)
                    cpu = {k: after[k] - before[k] for k in after}
                    by_path[path].append(_pair_round(results, cpu, wall))
    return {"variant": variant.name, "pool_size": pool, "connections": connections,
            "paths": {p: {"rounds": rs, **_pair_medians(rs)} for p, rs in by_path.items()}}


def _cpu_now(cluster: PostgresCluster, served: dict[str, Served],
             backends: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far: the database's tree, each app's tree and each app's backends."""
    cpu = {"db": tree_cpu_seconds(cluster.pid)}
    for app in APPS:
        cpu[app] = tree_cpu_seconds(served[app].pid)
        cpu[f"db:{app}"] = sum(process_cpu_seconds(p) for p in backends[app])
    return cpu


def _pair_round(results: dict[str, Wrk], cpu: dict[str, float], wall: float) -> dict[str, Any]:
    total = sum(w.requests for w in results.values())
    record: dict[str, Any] = {"wall_s": wall, "db_cores": cpu["db"] / wall,
                              "db_ms_per_request": 1000 * cpu["db"] / max(total, 1)}
    for app, w in results.items():
        record[app] = {"rps": w.rps, "requests": w.requests, "bad": w.bad,
                       "p50_ms": w.p50_ms, "cores": cpu[app] / wall,
                       "ms_per_request": 1000 * cpu[app] / max(w.requests, 1),
                       "db_backend_ms_per_request": 1000 * cpu[f"db:{app}"] / max(w.requests, 1)}
    record["rps_ratio"] = results["lab"].rps / max(results["bare"].rps, 1e-9)
    record["cpu_ratio"] = record["bare"]["ms_per_request"] / max(record["lab"]["ms_per_request"],
                                                                 1e-9)
    return record


def _pair_medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str, app: str | None = None) -> float:
        return statistics.median(float(r[app][key] if app else r[key]) for r in rounds)

    out: dict[str, Any] = {k: med(k) for k in ("rps_ratio", "cpu_ratio", "db_cores",
                                                "db_ms_per_request")}
    for app in APPS:
        out[app] = {k: med(k, app)
                    for k in ("rps", "cores", "ms_per_request", "db_backend_ms_per_request")}
        out[app]["bad"] = sum(r[app]["bad"] for r in rounds)
    return out


# -- part 3: the pool as the limit -----------------------------------------------------------
def measure_point(cluster: PostgresCluster, variant: Variant, pool: int, clients: int,
                  ms: int, seconds: float, kind: str = "lab") -> dict[str, Any]:
    """``/db/sleep?ms=M`` from ``clients`` wrk connections against one configuration of
    the lab service (``kind="lab"``) or of the bare app."""
    app = "bench-curve"
    start = lab_service if kind == "lab" else bare_service
    with monitor(cluster) as conn, start(cluster, variant, app, pool, conn) as served:
        url = f"{served.url}/db/sleep?ms={ms}"
        wrk(url, 1, clients)  # warm-up
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        wait_idle(host, int(port))  # a sync worker drains the warm-up's queued connections
        with ConnectionSampler(cluster, app) as sampler:
            before = tree_cpu_seconds(served.pid), tree_cpu_seconds(cluster.pid)
            result = wrk(url, seconds, clients)
            after = tree_cpu_seconds(served.pid), tree_cpu_seconds(cluster.pid)
    connections = pool * variant.workers
    ceiling = min(connections, clients) * 1000 / ms
    return {"variant": variant.name, "app": kind, "workers": variant.workers, "pool_size": pool,
            "clients": clients, "ms": ms, "rps": result.rps, "bad": result.bad,
            "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "ceiling_rps": ceiling,
            "of_ceiling": result.rps / ceiling, "busy": result.rps * ms / 1000,
            "service_cores": (after[0] - before[0]) / seconds,
            "db_cores": (after[1] - before[1]) / seconds,
            "db_connections": sampler.summary()}


def curve_points(pools: list[int], sync_workers: list[int]) -> list[tuple[Variant, int]]:
    return [*((Variant("fastapi", "uvicorn"), p) for p in pools),
            *((Variant("flask", "sync", workers=w), 1) for w in sync_workers)]


# -- the command -----------------------------------------------------------------------------
def print_pair(result: dict[str, Any]) -> None:
    for path, m in result["paths"].items():
        lab, bare = m["lab"], m["bare"]
        print(f"{result['variant']:<26}{path:<18}{lab['rps']:>8.0f}{bare['rps']:>8.0f}"
              f"{m['rps_ratio']:>8.3f}{m['cpu_ratio']:>8.3f}"
              f"{lab['ms_per_request']:>8.3f}{bare['ms_per_request']:>8.3f}"
              f"{m['db_ms_per_request']:>8.3f}{lab['db_backend_ms_per_request']:>8.3f}"
              f"{bare['db_backend_ms_per_request']:>8.3f}"
              f"{lab['cores']:>7.2f}{bare['cores']:>7.2f}{m['db_cores']:>7.2f}"
              f"{lab['bad'] + bare['bad']:>5}", flush=True)


def print_point(p: dict[str, Any]) -> None:
    c = p["db_connections"]
    print(f"{p['variant']:<26}{p['pool_size']:>5}{p['rps']:>8.0f}{p['ceiling_rps']:>8.0f}"
          f"{p['of_ceiling']:>7.2f}{p['busy']:>6.1f}{p['p50_ms']:>8.1f}{c['app']:>6}"
          f"{c['active_peak']:>7}{c['active_mean']:>7.1f}{p['service_cores']:>6.2f}"
          f"{p['db_cores']:>6.2f}{p['bad']:>5}", flush=True)


def run(cluster: PostgresCluster, args: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for, printed as it goes; the figures as one record."""
    record: dict[str, Any] = {"pair": [], "curve": []}
    if "pair" in args.parts:
        paths = ["/db", f"/db/sleep?ms={args.pair_sleep_ms}"]
        print(f"{'variant':<26}{'path':<18}{'lab/s':>8}{'bare/s':>8}{'rps l/b':>8}"
              f"{'cpu l/b':>8}{'lab ms':>8}{'bare ms':>8}{'db ms':>8}{'db:lab':>8}{'db:bare':>8}"
              f"{'lab c':>7}{'bare c':>7}{'db c':>7}{'bad':>5}")
        for name in args.variants:
            result = measure_pair(cluster, VARIANTS[name], paths, args.rounds, args.duration)
            print_pair(result)
            record["pair"].append(result)
    if "curve" in args.parts:
        print(f"\n{args.curve_app}: /db/sleep?ms={args.sleep_ms}, {args.clients} clients, "
              f"{args.duration:g} s a point")
        print(f"{'variant':<26}{'pool':>5}{'rps':>8}{'ceil':>8}{'of c':>7}{'busy':>6}"
              f"{'p50 ms':>8}{'conns':>6}{'active':>7}{'mean':>7}{'svc c':>6}{'db c':>6}"
              f"{'bad':>5}")
        for variant, pool in curve_points(args.pools, args.sync_workers):
            point = measure_point(cluster, variant, pool, args.clients, args.sleep_ms,
                                  args.duration, args.curve_app)
            print_point(point)
            record["curve"].append(point)
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("pair", "curve"), default=["pair", "curve"])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
                        help="stacks of the pair part")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--pair-sleep-ms", type=int, default=20, help="ms of /db/sleep (pair)")
    parser.add_argument("--sleep-ms", type=int, default=20, help="ms of /db/sleep (curve)")
    parser.add_argument("--clients", type=int, default=50, help="wrk connections (curve)")
    parser.add_argument("--pools", nargs="+", type=int, default=[1, 2, 5, 10, 20],
                        help="pool sizes of one Uvicorn process (curve)")
    parser.add_argument("--sync-workers", nargs="+", type=int, default=[1, 2, 4, 8],
                        help="Gunicorn sync worker counts, pool 1 each (curve)")
    parser.add_argument("--curve-app", choices=APPS, default="lab",
                        help="the curve of the lab service (default) or of the bare app")
    parser.add_argument("--db-cores", choices=sorted(PLACEMENTS), default="server",
                        help="the database on the servers' core (default) or on both")
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    problems = [
        "--rounds must be 1-50" if not 1 <= args.rounds <= 50 else "",
        "--duration must be 1-60 s" if not 1 <= args.duration <= 60 else "",
        "--pair-sleep-ms and --sleep-ms must be 1-1000"
        if not (1 <= args.pair_sleep_ms <= 1000 and 1 <= args.sleep_ms <= 1000) else "",
        "--clients must be 1-1000" if not 1 <= args.clients <= 1000 else "",
        "--pools must be 1-200" if not all(1 <= p <= 200 for p in args.pools) else "",
        "--sync-workers must be 1-32" if not all(1 <= w <= 32 for w in args.sync_workers) else "",
    ]
    if any(problems):
        parser.exit(2, f"bench_db: {next(p for p in problems if p)}\n")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not can_pin() or shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench_db: needs cores 0 and 1, wrk and taskset", file=sys.stderr)
        return 2
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = load_average()
    print(f"load average at start: {load_start}", flush=True)
    with PostgresCluster(max_connections=args.max_connections) as cluster:
        place_database(cluster, PLACEMENTS[args.db_cores])
        described = cluster.describe()
        print(f"PostgreSQL {described['version']} ({described['source']}), "
              f"database on cores {sorted(PLACEMENTS[args.db_cores])}, servers on "
              f"{SERVER_CPU}, wrk on {LOAD_CPU}", flush=True)
        record = run(cluster, args)
    load_end = load_average()
    print(f"load average at end: {load_end}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(
            {"started": started, "command": sys.argv, "load_average": [load_start, load_end],
             "db_cores": args.db_cores, "database": described, **record},
            indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # servers and the cluster are stopped by their context managers
        sys.exit(130)
