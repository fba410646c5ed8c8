"""Claim verdicts recomputed from recorded runs: each threshold decides, either way."""

from __future__ import annotations

from typing import Any

import pytest

from loadlab.runner.claims import (
    CLAIM_IDS,
    FAILS,
    HOLDS,
    QUICK,
    UNSURE,
    judge,
    plan,
    runs_by_name,
)


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


def good_runs() -> dict[str, dict[str, Any]]:
    runs = {
        "async-io": record(users=200, rps=1900, mean=104, p50=102,
                           server={"requests_in_progress": 196.0}),
        "loop-blocking": record(probe_ms={"p50": 30.0}),
        "loop-threadpool": record(probe_ms={"p50": 3.0}),
        "sync-2": record(users=20, rps=19.5, workers=2),
        "gthread-2x4": record(users=20, rps=78, workers=2, threads=4, worker_class="gthread"),
        "sync-memory": record(users=12, rps=115, mean=104, workers=12,
                              server={"memory_bytes": 400e6, "requests_in_progress": 11.0}),
    }
    db = {"connections_peak": 20, "cpu_cores_used": 0.5}
    busy_db = {"connections_peak": 10, "cpu_cores_used": 0.8}  # 47% of service + database
    runs.update({
        "db-pool": record(users=50, rps=48, db_pool_size=5, database=db),
        "db-blocking": record(io_ms=20, rps=45, probe_ms={"p50": 25.0}),
        "db-async": record(io_ms=20, rps=190, probe_ms={"p50": 2.0}),
        "db-conn-uvicorn": record(users=50, workers=2, db_pool_size=10, worker_class="uvicorn",
                                  database=db),
        "db-conn-gthread": record(users=50, workers=3, threads=4, db_pool_size=4,
                                  worker_class="gthread",
                                  database={"connections_peak": 12, "cpu_cores_used": 0.5}),
        "db-fastapi": record(users=50, rps=1000, cpus=1.0, database=busy_db),
        "db-flask": record(users=50, rps=950, cpus=1.0, worker_class="gevent", database=busy_db),
    })
    for rep in range(2):
        runs[f"procs-1#{rep}"] = record(rps=95)
        runs[f"procs-n#{rep}"] = record(rps=180, workers=2)
        runs[f"threads-1#{rep}"] = record(rps=95)
        runs[f"threads-4#{rep}"] = record(rps=97, threads=4, worker_class="gthread")
        runs[f"limit-1#{rep}"] = record(rps=95, cpus=1.0, requests=950,
                                        server={"cpu_seconds": 9.5, "cpu_limit": 1.0})
        runs[f"limit-2#{rep}"] = record(rps=98, cpus=1.0, workers=2,
                                        server={"cpu_limit": 1.0, "throttled_share": 0.4})
    return runs


def verdicts(runs: dict[str, dict[str, Any]], cores: int = 2) -> dict[str, str]:
    return {v.id: v.verdict for v in judge(runs, cores)}


def test_ids_are_the_ones_the_issue_names() -> None:
    assert [v.id for v in judge({}, 2)] == list(CLAIM_IDS)
    assert CLAIM_IDS == (
        "async-io-concurrency", "event-loop-blocking", "sync-worker-per-request",
        "sync-memory-per-concurrency", "cpu-scales-with-processes",
        "threads-not-parallel-cpu", "cpu-limit-caps-scaling", "async-db-pool-caps-concurrency",
        "sync-driver-blocks-loop", "connections-multiply-with-workers", "db-bound-throughput",
    )


def test_good_evidence_makes_every_claim_hold() -> None:
    assert set(verdicts(good_runs()).values()) == {HOLDS}


def test_nothing_measured_is_inconclusive_with_the_reason() -> None:
    for v in judge({}, 2):
        assert v.verdict == UNSURE and "not measured" in v.evidence


@pytest.mark.parametrize(("claim", "change", "expected"), [
    ("async-io-concurrency", {"async-io": dict(rps=300, mean=104)}, FAILS),
    ("async-io-concurrency", {"async-io": dict(rps=1300, mean=104)}, UNSURE),
    ("event-loop-blocking", {"loop-blocking": dict(probe_ms={"p50": 3.1})}, FAILS),
    ("event-loop-blocking", {"loop-blocking": dict(probe_ms={"p50": 4.5})}, UNSURE),
    ("sync-worker-per-request", {"sync-2": dict(rps=60)}, FAILS),
    ("sync-memory-per-concurrency",
     {"sync-memory": dict(server={"memory_bytes": 4e6, "requests_in_progress": 11.0})}, FAILS),
    ("sync-memory-per-concurrency",
     {"sync-memory": dict(server={"memory_bytes": 400e6, "requests_in_progress": None})},
     UNSURE),
    ("cpu-scales-with-processes", {"procs-n#0": dict(rps=96), "procs-n#1": dict(rps=97)},
     FAILS),
    ("cpu-scales-with-processes",
     {"procs-n#0": dict(rps=96, machine={"other_cores": 1.2}), "procs-n#1": dict(rps=97)},
     UNSURE),
    ("threads-not-parallel-cpu", {"threads-4#0": dict(rps=180), "threads-4#1": dict(rps=170)},
     FAILS),
    ("threads-not-parallel-cpu",
     {"threads-4#0": dict(server={"cpu_cores_used": 1.8})}, FAILS),
    ("threads-not-parallel-cpu", {"threads-1#1": dict(machine={"other_cores": 1.0})}, UNSURE),
    ("cpu-limit-caps-scaling", {"limit-2#0": dict(rps=190), "limit-2#1": dict(rps=185)},
     FAILS),
    ("cpu-limit-caps-scaling",
     {"limit-2#0": dict(server={"cpu_limit": 0.0}),
      "limit-2#1": dict(server={"cpu_limit": 0.0})}, UNSURE),
    ("async-db-pool-caps-concurrency", {"db-pool": dict(rps=400)}, FAILS),
    ("async-db-pool-caps-concurrency", {"db-pool": dict(rps=30)}, UNSURE),
    ("async-db-pool-caps-concurrency", {"db-pool": dict(users=10)}, UNSURE),
    ("sync-driver-blocks-loop", {"db-blocking": dict(probe_ms={"p50": 2.1})}, FAILS),
    ("sync-driver-blocks-loop", {"db-blocking": dict(probe_ms={"p50": 3.0})}, UNSURE),
    ("connections-multiply-with-workers",
     {"db-conn-gthread": dict(database={"connections_peak": 4})}, FAILS),
    ("connections-multiply-with-workers",
     {"db-conn-gthread": dict(database={"connections_peak": 11})}, UNSURE),
    ("db-bound-throughput", {"db-flask": dict(rps=300)}, FAILS),
    ("db-bound-throughput", {"db-flask": dict(rps=300, machine={"other_cores": 1.0})}, UNSURE),
    ("db-bound-throughput", {"db-flask": dict(database={"cpu_cores_used": None})}, UNSURE),
    ("cpu-limit-caps-scaling", {"limit-2#0": dict(status="failed", error="service died"),
                                "limit-2#1": dict(status="failed", error="service died")},
     UNSURE),
])
def test_thresholds_decide(claim: str, change: dict[str, dict[str, Any]],
                           expected: str) -> None:
    runs = good_runs()
    for name, fields in change.items():
        for key, value in fields.items():
            if isinstance(value, dict):
                runs[name][key] = {**runs[name][key], **value}
            else:
                runs[name][key] = value
    found = verdicts(runs)
    assert found[claim] == expected
    others = {k: v for k, v in found.items() if k != claim}
    assert set(others.values()) <= {HOLDS}


def test_one_core_cannot_show_cpu_scaling() -> None:
    found = verdicts(good_runs(), cores=1)
    assert found["cpu-scales-with-processes"] == UNSURE
    assert found["threads-not-parallel-cpu"] == UNSURE


def test_plan_runs_cpu_pairs_alternated_and_maps_back() -> None:
    cells = plan(QUICK, cores=2)
    names = list(cells)
    i = names.index("procs-1#0")
    assert names[i:i + 4] == ["procs-1#0", "procs-n#0", "procs-1#1", "procs-n#1"]
    assert len({c.key for c in cells.values()}) == len(cells)
    recorded = [{"key": spec.key, "name": name} for name, spec in cells.items()]
    assert {n: r["name"] for n, r in runs_by_name(cells, recorded).items()} == {
        n: n for n in cells}
