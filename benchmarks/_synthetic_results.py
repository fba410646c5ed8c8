"""A results directory shaped like the runner's, without running anything.

summary.json plus, per run, ``raw/ID.samples.json`` (the scrapes as the sampler writes
them: cumulative counters, the in-progress gauge that leaves the scrape out) and
``raw/ID.json`` (Locust's report: response-time buckets, answers per second). Used by the
report's tests and by bench_report.py.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
T0_UNIX = 1_800_000_000.0


def _cumulative(latency_s: float, n: float) -> dict[str, float]:
    out = {str(le): (n if le >= latency_s else 0.0) for le in BUCKETS}
    out["inf"] = n
    return out


def run_files(directory: Path, run_id: str, *, rps: float, latency_ms: float,
              in_progress: float, memory_mb: float, cores: float, seconds: int = 20,
              warmup: int = 5, loop: bool = False) -> tuple[str, str]:
    """Write one run's samples and Locust report; returns their paths relative to the dir."""
    raw = directory / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = random.Random(run_id)
    scrapes: list[dict[str, Any]] = [{"t": 0.0, "requests": 0.0, "ok": True}]
    served = cpu = 0.0
    lag = 0.0
    for i in range(1, seconds + warmup + 2):
        served += rps * rng.uniform(0.9, 1.1)
        cpu += cores
        lag += 2
        row: dict[str, Any] = {
            "t": float(i), "requests": served, "buckets": _cumulative(latency_ms / 2000, served),
            "cpu_seconds": cpu, "memory_bytes": memory_mb * 1e6, "cpu_limit": 0.0,
            "tree_pss_bytes": memory_mb * 1e6, "ok": True,
            "in_progress": in_progress if i > 1 else 0.0,
        }
        if loop:
            row["loop_lag_buckets"] = {"0.0005": lag * 0.9, "0.001": lag, "inf": lag}
            row.update(threadpool_busy=0.0, threadpool_size=40.0)
        scrapes.append(row)
    samples = {"format": "loadlab-samples/1", "interval_s": 1.0, "t0_unix": T0_UNIX,
               "load_began_s": 0.5, "measured_from_s": 0.5 + warmup, "scrapes": scrapes}
    (raw / f"{run_id}.samples.json").write_text(json.dumps(samples))
    times: dict[str, int] = {}
    total = int(rps * seconds)
    for _ in range(min(total, 4000)):
        ms = latency_ms * math.exp(rng.gauss(0, 0.15))
        key = str(round(ms) if ms < 100 else int(round(ms, -1)) if ms < 1000 else
                  int(round(ms, -2)))
        times[key] = times.get(key, 0) + max(total // 4000, 1)
    per_sec = {str(int(T0_UNIX) + warmup + s): int(rps) for s in range(seconds + 1)}
    locust = [{"name": "/io", "method": "GET", "num_requests": total, "num_failures": 0,
               "response_times": times, "num_reqs_per_sec": per_sec,
               "start_time": T0_UNIX + warmup, "last_request_timestamp": T0_UNIX + warmup
               + seconds, "max_response_time": latency_ms * 2,
               "total_response_time": latency_ms * total}]
    (raw / f"{run_id}.json").write_text(json.dumps(locust))
    return f"raw/{run_id}.samples.json", f"raw/{run_id}.json"


def record(run_id: str, target: str, *, users: int, rps: float, latency_ms: float,
           in_progress: float, memory_mb: float, workers: int = 1, scenario: str = "io",
           cpus: float = 0.0, arrival_rate: float | None = None) -> dict[str, Any]:
    klass = "uvicorn" if target == "fastapi" else "sync"
    return {
        "run_id": run_id, "key": run_id, "status": "ok", "target": target,
        "framework": target, "scenario": scenario, "cpus": cpus, "workers": workers,
        "worker_class": klass, "threads": 1, "users": users, "spawn_rate": users,
        "arrival_rate": arrival_rate, "io_ms": 50, "cpu_work": None, "duration_s": 20.0,
        "warmup_s": 5.0, "started_at": "2026-12-01T10:00:00+00:00",
        "requests": int(rps * 20), "failures": 0, "error_rate": 0.0, "rps": rps,
        "latency_ms": {"p50": latency_ms, "p95": latency_ms * 1.3, "p99": latency_ms * 1.8,
                       "max": latency_ms * 2, "mean": latency_ms * 1.05},
        "model": "open" if arrival_rate else "closed",
        "server": {"name": "uvicorn" if target == "fastapi" else "gunicorn",
                   "cpu_seconds": 5.0, "cpu_cores_used": 0.3, "cpu_limit": cpus,
                   "throttled_seconds": 0.0, "throttled_share": None,
                   "memory_bytes": int(memory_mb * 1e6), "requests_in_progress": in_progress,
                   "in_progress_samples": 20},
    }


def write(directory: Path, n: int) -> dict[str, Any]:
    """n runs: FastAPI and Flask alternating, users and workers varying."""
    runs = []
    for i in range(n):
        target = "fastapi" if i % 2 == 0 else "flask"
        users = (10, 50, 200)[(i // 2) % 3]
        workers = 1 + (i // 6) % 4
        if target == "fastapi":
            rps, lat, held, mem = users / 0.052 * 0.95, 52.0, users - 0.5, 80.0 * workers
        else:
            rps, lat, held, mem = 19.0 * workers, 1000 * users / (19.0 * workers), 0.0, 90.0
        run_id = f"{i:03d}-{target}-io"
        rec = record(run_id, target, users=users, rps=rps, latency_ms=lat, in_progress=held,
                     memory_mb=mem, workers=workers)
        rec["samples"], rec["locust_json"] = run_files(
            directory, run_id, rps=rps, latency_ms=lat, in_progress=held, memory_mb=mem,
            cores=0.3, loop=target == "fastapi")
        runs.append(rec)
    summary = {"format": "loadlab-results/1", "loadlab_version": "0.1.0", "runs": runs,
               "manifest": {"git_commit": "abc", "cores": 2, "command_lines": ["synthetic"]}}
    (directory / "summary.json").write_text(json.dumps(summary))
    return summary
