"""Recorded runs with known answers for the claims' judges: every claim holds on
``good_runs()``; the tests change one figure to move one verdict."""

from __future__ import annotations

from typing import Any

from loadlab.claims import judge


def record(users: int = 4, rps: float = 100.0, mean: float = 40.0, p50: float = 40.0,
           **extra: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "status": "ok", "users": users, "rps": rps, "requests": int(rps * 10), "failures": 0,
        "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "mean": mean},
        "workers": 1, "threads": 1, "worker_class": "sync", "cpus": 0.0, "io_ms": 100,
        "cpu_work": 100, "server": {"memory_bytes": 60e6, "cpu_seconds": 1.0,
                                    "cpu_cores_used": 0.9, "cpu_limit": 0.0,
                                    "throttled_share": 0.0},
        "machine": {"other_cores": 0.0}, "probe_ms": {"p50": 2.0}, "load": {},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(run.get(key), dict):
            run[key] = {**run[key], **value}
        else:
            run[key] = value
    return run


def cell(*rounds: dict[str, Any]) -> dict[str, Any]:
    """A run with its rounds, as the runner records it (medians on top)."""
    return {**rounds[0], "rounds": list(rounds)}


def twice(a: dict[str, Any], **second: Any) -> dict[str, Any]:
    """Two rounds: ``a`` and a copy with ``second`` changed (a little noise)."""
    b = {k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()}
    for key, value in second.items():
        b[key] = {**b[key], **value} if isinstance(value, dict) else value
    return cell(a, b)


def good_runs() -> dict[str, dict[str, Any]]:
    return {
        "async-io": twice(record(users=200, rps=1900, mean=104, p50=102,
                                 server={"requests_in_progress": 196.0}), rps=1880),
        "loop-blocking": twice(record(probe_ms={"p50": 30.0}), probe_ms={"p50": 31.0}),
        "loop-threadpool": twice(record(probe_ms={"p50": 3.0}), probe_ms={"p50": 3.02}),
        "sync-2": twice(record(users=20, rps=19.5, workers=2), rps=19.6),
        "gthread-1x8": twice(record(users=20, rps=78, workers=1, threads=8,
                                    worker_class="gthread"), rps=77),
        "sync-memory": twice(record(users=12, rps=115, mean=104, workers=12,
                                    server={"memory_bytes": 400e6,
                                            "requests_in_progress": 11.0}), rps=114),
        # One worker's CPU per request (9.5 s for 950 requests) also sets the limit's ceiling.
        "procs-1": twice(record(rps=95, server={"cpu_seconds": 9.5}), rps=96, requests=960),
        "procs-n": twice(record(rps=180, workers=2), rps=182),
        "threads-1": twice(record(rps=95), rps=96),
        "threads-2": twice(record(rps=97, threads=2, worker_class="gthread"), rps=96),
        "limit-2": twice(record(rps=98, cpus=1.0, workers=2,
                                server={"cpu_limit": 1.0, "throttled_share": 0.4}), rps=97),
        **db_runs(),
        **new_runs(),
    }


def new_runs() -> dict[str, dict[str, Any]]:
    """The free-threaded and Granian cells: ~2x from a second thread free-threaded, ~1x
    with the GIL, one free-threaded thread 1.36x slower; Granian within 10% of the others."""
    return {
        "ft-threads-1": twice(record(rps=70, python="ft"), rps=70.5),
        "ft-threads-2": twice(record(rps=135, threads=2, python="ft"), rps=136),
        "json-fastapi-uvicorn": twice(record(users=8, rps=1500, cpus=1.0), rps=1490),
        "json-fastapi-granian": twice(record(users=8, rps=1600, cpus=1.0,
                                             worker_class="granian"), rps=1610),
        "json-flask-gunicorn": twice(record(users=8, rps=1200, cpus=1.0), rps=1190),
        "json-flask-granian": twice(record(users=8, rps=1250, cpus=1.0,
                                           worker_class="granian"), rps=1240),
        "io-fastapi-uvicorn": twice(record(users=200, rps=1800, cpus=1.0), rps=1810),
        "io-fastapi-granian": twice(record(users=200, rps=1850, cpus=1.0,
                                           worker_class="granian"), rps=1840),
    }


def db_runs() -> dict[str, dict[str, Any]]:
    db = {"connections_peak": 5, "cpu_cores_used": 0.5}
    busy_db = {"connections_peak": 20, "cpu_cores_used": 0.8}  # 47% of service + database
    return {
        "db-pool": twice(record(users=50, rps=48, db_pool_size=5, database=db), rps=49),
        "db-blocking": twice(record(io_ms=20, rps=45, probe_ms={"p50": 25.0}),
                             probe_ms={"p50": 26.0}),
        "db-async": twice(record(io_ms=20, rps=190, probe_ms={"p50": 2.0}),
                          probe_ms={"p50": 2.02}),
        "db-fastapi": twice(record(users=50, rps=1000, cpus=1.0, workers=2, db_pool_size=10,
                                   worker_class="uvicorn", database=busy_db), rps=990),
        "db-flask": twice(record(users=50, rps=950, cpus=1.0, workers=2, db_pool_size=10,
                                 worker_class="gevent", database=busy_db), rps=960),
    }


def verdicts(runs: dict[str, dict[str, Any]], cores: int = 2) -> dict[str, str]:
    return {v.id: v.verdict for v in judge(runs, cores)}
