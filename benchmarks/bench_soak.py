"""Soak: each stack at about 80% of its measured capacity for a bounded time, sampled.

For each stack (by default FastAPI on Gunicorn's uvicorn-worker, 2 workers, and Flask on
Gunicorn gthread 2x4; every stack recycles its workers through LOADLAB_MAX_REQUESTS)
this script

1. starts the service pinned to core 0 (Locust and this process run on core 1);
2. measures capacity: Locust, closed model, many users, on the ``mixed`` scenario
   (``/mixed?ms=IO_MS&work=CPU_WORK``), requests/s after a warm-up;
3. on a fresh server (gthread: each worker capped at ``--connections-per-worker`` times
   its fair share of the pool), runs Locust's open model at ``--load-fraction`` of that
   for ``--minutes``, with a user pool sized by Little's law from the capacity run's p99
   latency, and samples every ``--sample-s``: PSS of the service's process tree (smaps),
   the number of files in its PROMETHEUS_MULTIPROC_DIR, ``loadlab_workers`` and
   ``http_requests_total`` by status from ``/metrics``, the connections each worker
   holds, and Locust's requests and failures (its web API);
4. judges: memory growth (mean PSS of the last window against the first window after the
   warm-up) under 10%, no 5xx, the multiprocess directory bounded, no failed requests,
   and the pool sent at least 95% of the target rate (else the soak ran below its load).

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--out /tmp/loadlab-soak/soak.json]

Every child runs in its own process group with a deadline and is killed by group at the
end. Exit 0 when every verdict passes, 1 otherwise, 2 on bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import psutil
from _reliability import LOAD_CPU, can_pin, pinned_service, write_json_atomic
from prometheus_client.parser import text_string_to_metric_families

from loadlab.launch import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "locust" / "locustfile.py"
LOCUST = str(Path(sys.executable).with_name("locust"))
MAX_MEMORY_GROWTH = 0.10
MIN_SENT_RATIO = 0.95  # the soak is at its target only if the pool sent this much of it
# The open model's user pool, by Little's law: users in flight = rate x latency. The
# latency is the capacity run's p99 (at saturation: usually above what 80% of it sees),
# at least POOL_MIN_LATENCY_S, times POOL_HEADROOM, plus POOL_FLOOR; at most --max-users.
POOL_MIN_LATENCY_S = 0.25
POOL_HEADROOM = 2.0
POOL_FLOOR = 50

STACKS: dict[str, dict[str, Any]] = {
    "fastapi": {"framework": "fastapi", "worker_class": "uvicorn", "workers": 2},
    # FastAPI recycled by Gunicorn's arbiter: Uvicorn's own supervisor does not keep up
    # (docs/soak.md), so this is the FastAPI stack the soak runs by default.
    "fastapi-gunicorn": {"framework": "fastapi", "worker_class": "uvicorn-worker",
                         "workers": 2},
    "flask-gthread": {"framework": "flask", "worker_class": "gthread", "workers": 2,
                      "threads": 4},
    "flask-sync": {"framework": "flask", "worker_class": "sync", "workers": 2},
}


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"bench_soak: error: {message}\n")
    sys.exit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.error = fail  # type: ignore[method-assign]  # one line, exit 2
    p.add_argument("--minutes", type=float, default=10.0, help="soak length per stack")
    p.add_argument("--stacks", default="fastapi-gunicorn,flask-gthread",
                   help=f"comma-separated, of {', '.join(STACKS)}")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--load-fraction", type=float, default=0.8)
    p.add_argument("--capacity-s", type=float, default=20.0, help="measured capacity window")
    p.add_argument("--capacity-users", type=int, default=100)
    p.add_argument("--max-users", type=int, default=1000,
                   help="cap on the soak's open-model user pool")
    p.add_argument("--io-ms", type=int, default=20)
    p.add_argument("--cpu-work", type=int, default=5)
    p.add_argument("--max-requests", type=int, default=2000,
                   help="a worker is replaced after this many requests (0: never)")
    p.add_argument("--max-requests-jitter", type=int, default=400)
    p.add_argument("--connections-per-worker", type=float, default=1.25,
                   help="gthread: cap each worker's connections at this times its fair "
                        "share of the pool (0: Gunicorn's default, 1000)")
    p.add_argument("--out", type=Path, default=Path("/tmp/loadlab-soak/soak.json"))
    args = p.parse_args(argv)
    if not 0 < args.minutes <= 60:
        fail(f"--minutes {args.minutes}: must be in (0, 60]")
    if not 1 <= args.sample_s <= 60:
        fail(f"--sample-s {args.sample_s}: must be in [1, 60]")
    if not 0 < args.load_fraction <= 1.5:
        fail(f"--load-fraction {args.load_fraction}: must be in (0, 1.5]")
    if not 5 <= args.capacity_s <= 300 or not 1 <= args.capacity_users <= 2000:
        fail("--capacity-s must be in [5, 300] and --capacity-users in [1, 2000]")
    if not POOL_FLOOR <= args.max_users <= 5000:
        fail(f"--max-users {args.max_users}: must be in [{POOL_FLOOR}, 5000]")
    if args.connections_per_worker != 0 and not 1 <= args.connections_per_worker <= 10:
        fail(f"--connections-per-worker {args.connections_per_worker}: 0, or in [1, 10]")
    if args.max_requests < 0 or args.max_requests_jitter < 0:
        fail("--max-requests and --max-requests-jitter must be >= 0")
    args.stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = [s for s in args.stacks if s not in STACKS]
    if unknown or not args.stacks:
        fail(f"--stacks: unknown {unknown or 'empty'}; choose from {', '.join(STACKS)}")
    return args


def windows(soak_s: float) -> tuple[float, float]:
    """Warm-up and comparison window: a minute each on long runs, shrunk for short ones."""
    warmup = min(60.0, 0.15 * soak_s)
    return warmup, min(60.0, (soak_s - warmup) / 3)


@contextlib.contextmanager
def locust(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Locust on the load core, in its own process group, killed by group on the way out."""
    pin = ["taskset", "-c", str(LOAD_CPU)] if can_pin() else []
    with log.open("wb") as out:
        proc = subprocess.Popen([*pin, LOCUST, "-f", str(LOCUSTFILE), *args], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def log_tail(log: Path, lines: int = 6) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def tree(root: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(root)
        return [proc, *proc.children(recursive=True)]
    return []


def tree_memory(root: int) -> tuple[int, int]:
    """PSS and USS summed over the tree. PSS also shares out the file-backed pages (the
    venv's libraries) that other processes on the machine map, so it moves when they come
    and go; USS, the pages only this tree holds, does not."""
    pss = uss = 0
    for proc in tree(root):
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            pss, uss = pss + info.pss, uss + info.uss
    return pss, uss


def server_master(serve_pid: int) -> psutil.Process:
    children = psutil.Process(serve_pid).children()
    if len(children) != 1:
        raise RuntimeError(f"serve {serve_pid} has {len(children)} children, expected 1")
    return children[0]


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return str(reply.read().decode())


def scrape(url: str) -> dict[str, float]:
    """loadlab_workers, all requests and 5xx answers from the service's /metrics."""
    out = {"workers": 0.0, "requests": 0.0, "5xx": 0.0}
    for family in text_string_to_metric_families(get(f"{url}/metrics", timeout=10.0)):
        for s in family.samples:
            if s.name == "loadlab_workers":
                out["workers"] += s.value
            elif s.name == "http_requests_total":
                out["requests"] += s.value
                if s.labels.get("status", "").startswith("5"):
                    out["5xx"] += s.value
    return out


def locust_totals(web: str) -> dict[str, float] | None:
    """Locust's own aggregated counts (they restart from 0 at the end of the warm-up)."""
    try:
        stats = json.loads(get(f"{web}/stats/requests", timeout=3))
    except (OSError, ValueError):
        return None
    row = next((s for s in stats["stats"] if s["name"] == "Aggregated"), None)
    if row is None:
        return None
    return {"requests": row["num_requests"], "failures": row["num_failures"],
            "current_rps": round(stats.get("total_rps", 0.0), 1)}


def measure_capacity(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Closed model, many users: what the service completes per second when saturated."""
    warmup = 5.0
    run_s = warmup + args.capacity_s
    report, log = tmp / "capacity.lab.json", tmp / "capacity.log"
    users = args.capacity_users
    cmd = ["--headless", "--host", url, "--scenario", "mixed", "--io-ms", str(args.io_ms),
           "--cpu-work", str(args.cpu_work), "-u", str(users), "-r", str(users),
           "-t", f"{run_s:.0f}s", "--warmup-s", str(warmup), "--only-summary",
           "--loadlab-report", str(report)]
    with locust(cmd, log) as proc:
        try:
            proc.wait(timeout=run_s + 60)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"capacity run did not end: {log_tail(log)}") from exc
    if not report.exists():
        raise RuntimeError(f"capacity run wrote no report: {log_tail(log)}")
    lab = json.loads(report.read_text())
    return {"users": users, "duration_s": args.capacity_s, "rps": lab["rps"],
            "requests": lab["requests"], "failures": lab["failures"],
            "latency_ms": lab["latency_ms"]}


def pool_size(rate: float, capacity: dict[str, Any], cap: int) -> dict[str, Any]:
    """The soak's user pool from Little's law and the capacity run's p99 latency."""
    latency_s = max(POOL_MIN_LATENCY_S, capacity["latency_ms"]["p99"] / 1000)
    wanted = math.ceil(rate * latency_s * POOL_HEADROOM) + POOL_FLOOR
    return {"users": min(wanted, cap), "wanted": wanted, "cap": cap, "capped": wanted > cap,
            "latency_s": latency_s, "latency_from": "capacity p99",
            "headroom": POOL_HEADROOM, "floor": POOL_FLOOR}


def workers_of(master: psutil.Process) -> list[psutil.Process]:
    """The server's worker processes (Uvicorn's supervisor also runs multiprocessing's
    resource tracker)."""
    workers = []
    with contextlib.suppress(psutil.Error):
        for child in master.children():
            with contextlib.suppress(psutil.Error):  # one that just exited is skipped
                if "resource_tracker" not in " ".join(child.cmdline()):
                    workers.append(child)
    return workers


def connection_split(master: psutil.Process, port: int) -> list[int]:
    """Established client connections each worker holds, largest first. Gunicorn's gthread
    keeps a keep-alive connection with the worker that accepted it, so the split shows how
    evenly the workers share the load."""
    split = []
    for worker in workers_of(master):
        with contextlib.suppress(psutil.Error):
            split.append(sum(1 for c in worker.net_connections(kind="tcp")
                             if c.status == psutil.CONN_ESTABLISHED
                             and c.laddr and c.laddr.port == port))
    return sorted(split, reverse=True)


def sample(service: ServiceProcess, master: psutil.Process, mpdir: Path, web: str,
           t: float, attempts: int = 1) -> dict[str, Any]:
    """One sample. A scrape that times out under load is a gap in the server's figures
    (recorded, counted in the summary), not the end of the soak; the start and end samples,
    taken with no load, try again."""
    metrics: dict[str, Any] = {"workers": None, "requests": None, "5xx": None}
    error = None
    for attempt in range(attempts):
        try:
            metrics = scrape(service.url)
            error = None
            break
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
            time.sleep(2.0 * (attempt + 1))
    files = [p for p in mpdir.iterdir() if p.is_file()]
    pss, uss = tree_memory(service.pid)
    return {"t_s": round(t, 1), "loadavg_1m": round(os.getloadavg()[0], 2),
            "pss_bytes": pss, "uss_bytes": uss,
            "mp_files": len(files), "mp_archives": sum("archive" in f.name for f in files),
            "workers": metrics["workers"], "server_requests": metrics["requests"],
            "server_5xx": metrics["5xx"], "locust": locust_totals(web),
            "connections_per_worker": connection_split(master, service.cfg.port),
            "scrape_error": error}


def soak(service: ServiceProcess, master: psutil.Process, mpdir: Path, rate: float,
         pool: dict[str, Any], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    soak_s = args.minutes * 60
    warmup, _ = windows(soak_s)
    users = pool["users"]
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    report, log = tmp / "soak.lab.json", tmp / "soak.log"
    cmd = ["--autostart", "--autoquit", "3", "--web-host", "127.0.0.1", "--web-port",
           str(web_port), "--host", service.url, "--scenario", "mixed", "--io-ms",
           str(args.io_ms), "--cpu-work", str(args.cpu_work), "--arrival-rate", f"{rate:.1f}",
           "-u", str(users), "-r", str(users), "-t", f"{soak_s:.0f}s", "--warmup-s",
           str(warmup), "--loadlab-report", str(report)]
    samples: list[dict[str, Any]] = []
    worker_pids: set[int] = set()
    with locust(cmd, log) as proc:
        start = time.monotonic()
        deadline = start + soak_s + 90
        next_sample = start
        while proc.poll() is None and time.monotonic() < deadline:
            # Worker pids every second: recycled workers live a few seconds only.
            worker_pids.update(worker.pid for worker in workers_of(master))
            now = time.monotonic()
            if now >= next_sample and now - start <= soak_s:
                samples.append(sample(service, master, mpdir, web, now - start))
                next_sample += args.sample_s
            time.sleep(1.0)
        timed_out = proc.poll() is None
    end = sample(service, master, mpdir, web, time.monotonic() - start, attempts=3)
    lab = json.loads(report.read_text()) if report.exists() else None
    if lab is None:
        raise RuntimeError(f"soak run wrote no report: {log_tail(log)}")
    opened = lab["open_model"]
    return {"arrival_rate": round(rate, 1), "users": users, "pool": pool,
            "send_rate": round(opened["send_rate"], 1),
            "sent_ratio": round(opened["send_rate"] / rate, 4) if rate > 0 else 0.0,
            "dropped_sends": opened["dropped_sends"], "duration_s": soak_s,
            "warmup_s": warmup, "timed_out": timed_out, "locust_exit": proc.returncode,
            "samples": samples, "end": end, "worker_pids_seen": len(worker_pids),
            "locust_report": lab}


def judge(run: dict[str, Any], start: dict[str, Any], workers: int) -> dict[str, Any]:
    samples, soak_s = run["samples"], run["duration_s"]
    warmup, window = windows(soak_s)
    first = [s for s in samples if warmup <= s["t_s"] < warmup + window]
    last = [s for s in samples if s["t_s"] >= soak_s - window]
    if not first or not last:
        raise RuntimeError("too few samples for the memory windows (raise --minutes or "
                           "lower --sample-s)")
    pss_first = statistics.fmean(s["pss_bytes"] for s in first)
    pss_last = statistics.fmean(s["pss_bytes"] for s in last)
    growth = pss_last / pss_first - 1
    uss_growth = (statistics.fmean(s.get("uss_bytes", 0) for s in last)
                  / statistics.fmean(s.get("uss_bytes", 1) for s in first) - 1)
    end = run["end"]
    # Unknown (None) when the end or start scrape failed even unloaded: not a pass.
    five_xx = (None if end["server_5xx"] is None or start["server_5xx"] is None
               else round(end["server_5xx"] - start["server_5xx"]))
    files_first = max(s["mp_files"] for s in first)
    files_max = max(s["mp_files"] for s in samples if s["t_s"] >= warmup)
    files_last = max(s["mp_files"] for s in last)
    # A replacement can write its files before its predecessor's are merged: allow one
    # worker's share on top of the first window's largest count.
    per_worker = math.ceil(files_first / workers)
    failures = run["locust_report"]["failures"]
    return {
        "rate_held": {"target": run["arrival_rate"], "sent": run["send_rate"],
                      "ratio": run["sent_ratio"], "limit": MIN_SENT_RATIO,
                      "passed": run["sent_ratio"] >= MIN_SENT_RATIO},
        "memory": {"pss_first_window_mb": round(pss_first / 2**20, 1),
                   "pss_last_window_mb": round(pss_last / 2**20, 1),
                   "growth": round(growth, 4), "limit": MAX_MEMORY_GROWTH,
                   "passed": growth < MAX_MEMORY_GROWTH,
                   "uss_growth": round(uss_growth, 4)},
        "no_5xx": {"count": five_xx, "passed": five_xx == 0,
                   "scrapes_timed_out": sum(1 for s in samples if s["scrape_error"])},
        "mp_dir_bounded": {"first_window_max": files_first, "last_window_max": files_last,
                           "max_after_warmup": files_max, "limit": files_first + per_worker,
                           "passed": files_max <= files_first + per_worker},
        "no_failures": {"count": failures, "passed": failures == 0},
        "windows_s": {"warmup": warmup, "window": window},
    }


def connection_cap(name: str, users: int, args: argparse.Namespace) -> int | None:
    """Gunicorn gthread keeps each keep-alive connection with the worker that accepted it;
    when a worker is recycled its clients reconnect to the one still up, which then holds
    most of the pool (measured: 250 of 300) and gets most of the open model's requests.
    Capping each worker at a multiple of its fair share sends the rest to the new worker."""
    options = STACKS[name]
    if options["worker_class"] != "gthread" or args.connections_per_worker <= 0:
        return None
    return math.ceil(args.connections_per_worker * users / options["workers"])


def top_share(samples: list[dict[str, Any]]) -> dict[str, float]:
    """The busiest worker's share of the connections: mean and max over the samples."""
    shares = [s["connections_per_worker"][0] / sum(s["connections_per_worker"])
              for s in samples if sum(s.get("connections_per_worker", [])) > 0]
    if not shares:
        return {"mean": 0.0, "max": 0.0}
    return {"mean": round(statistics.fmean(shares), 3), "max": round(max(shares), 3)}


def run_stack(name: str, args: argparse.Namespace) -> dict[str, Any]:
    options = STACKS[name]
    env = dict(os.environ)
    env["LOADLAB_MAX_REQUESTS"] = str(args.max_requests)
    env["LOADLAB_MAX_REQUESTS_JITTER"] = str(args.max_requests_jitter)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp_name:
        tmp = Path(tmp_name)
        with pinned_service(options, env) as service:
            print(f"{name}: capacity run at {service.url}", flush=True)
            capacity = measure_capacity(service.url, args, tmp)
        rate = args.load_fraction * capacity["rps"]
        pool = pool_size(rate, capacity, args.max_users)
        cap = connection_cap(name, pool["users"], args)
        if cap is not None:
            env["LOADLAB_WORKER_CONNECTIONS"] = str(cap)
        print(f"{name}: capacity {capacity['rps']:.0f} req/s (p99 "
              f"{capacity['latency_ms']['p99']:.0f} ms); soak at {rate:.0f} req/s for "
              f"{args.minutes:g} min with {pool['users']} users"
              f"{' (capped)' if pool['capped'] else ''}"
              f"{f', at most {cap} connections a worker' if cap else ''}", flush=True)
        # A fresh server for the soak: a sync server keeps draining the capacity run's
        # queue for a while, and Gunicorn reads worker_connections only when it starts.
        with pinned_service(options, env) as service:
            master = server_master(service.pid)
            mpdir = Path(master.environ()["PROMETHEUS_MULTIPROC_DIR"])
            print(f"{name}: soak server at {service.url}, multiprocess dir {mpdir}",
                  flush=True)
            start = sample(service, master, mpdir, "http://127.0.0.1:1", 0.0, attempts=3)
            run = soak(service, master, mpdir, rate, pool, args, tmp)
    # Gunicorn's worker_connections binds its threaded and gevent workers only.
    uncapped = "1000" if options["worker_class"] in ("gthread", "gevent") else "unlimited"
    run["worker_connections"] = cap if cap is not None else uncapped
    run["top_worker_connection_share"] = top_share(run["samples"])
    recycles = run["worker_pids_seen"] - options["workers"]
    return {"stack": name, **options,
            "recycling": {"max_requests": args.max_requests,
                          "max_requests_jitter": args.max_requests_jitter,
                          "workers_replaced_seen": recycles},
            "capacity": capacity, "soak": run,
            "verdicts": judge(run, start, options["workers"])}


def summary_line(r: dict[str, Any]) -> str:
    v, loads = r["verdicts"], [s["loadavg_1m"] for s in r["soak"]["samples"]]
    mark = {True: "ok", False: "FAILED"}
    mp, held = v["mp_dir_bounded"], v["rate_held"]
    share = r["soak"]["top_worker_connection_share"]
    return (f"{r['stack']}: capacity {r['capacity']['rps']:.0f} req/s, soak "
            f"{r['soak']['arrival_rate']:.0f} req/s with {r['soak']['users']} users (sent "
            f"{r['soak']['send_rate']:.0f}, {held['ratio']:.1%}, "
            f"{mark[held['passed']]} at >= {held['limit']:.0%}); "
            f"PSS {v['memory']['pss_first_window_mb']}"
            f" -> {v['memory']['pss_last_window_mb']} MB ({v['memory']['growth']:+.1%}, "
            f"{mark[v['memory']['passed']]}; USS {v['memory']['uss_growth']:+.1%}); "
            f"5xx {v['no_5xx']['count']} "
            f"({v['no_5xx']['scrapes_timed_out']} of {len(r['soak']['samples'])} scrapes "
            f"timed out) "
            f"({mark[v['no_5xx']['passed']]}); mp files max {mp['max_after_warmup']} <= "
            f"{mp['limit']} ({mark[mp['passed']]}); "
            f"failures {v['no_failures']['count']} ({mark[v['no_failures']['passed']]}); "
            f"busiest worker holds {share['mean']:.0%} of the connections; "
            f"load avg {min(loads):.1f}-{max(loads):.1f}")


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every context manager above


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(), "pinned": can_pin(),
        "workload": f"/mixed?ms={args.io_ms}&work={args.cpu_work}",
        "load_fraction": args.load_fraction, "sample_s": args.sample_s, "stacks": [],
    }
    for name in args.stacks:
        result["stacks"].append(run_stack(name, args))
        result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        write_json_atomic(args.out, result)  # each stack is kept as soon as it is done
        print(summary_line(result["stacks"][-1]), flush=True)
    print(f"results: {args.out}")
    passed = all(v["passed"] for r in result["stacks"] for k, v in r["verdicts"].items()
                 if k != "windows_s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
