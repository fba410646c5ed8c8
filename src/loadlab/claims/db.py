"""Claims on the database: an async process is as concurrent as its pool, a sync driver in
``async def`` stalls the loop, pools are per process, and at saturation the database, not
the framework, sets the rate."""

from __future__ import annotations

from typing import Any

from loadlab.claims.claim import Cell, Claim, Reading
from loadlab.claims.verdicts import (
    FAILS,
    HOLDS,
    UNSURE,
    Decision,
    Verdict,
    all_of,
    busy_machine,
    decide,
    mean_effect,
    median,
    other_work,
    ratio_effect,
    rps_of,
    rps_ratio,
    series_of,
    stall_decision,
)
from loadlab.runner.options import RunSpec

# Database waits through a pool of db_pool connections, users well above the pool.
DB_POOL = Cell("db-pool", lambda s, cores: RunSpec(
    target="fastapi", scenario="db-sleep", io_ms=s.io_ms, db_pool_size=s.db_pool,
    users=s.db_users, **s.timing()))


def _db_pool_caps(seen: Reading) -> Verdict:
    rounds = seen.rounds(DB_POOL)
    first = rounds[0]
    pool, users, wait_ms = first["db_pool_size"], first["users"], first["io_ms"] or 100
    # Little's law on the database side: connections busy = throughput x the hold time.
    effect = mean_effect("database waits / pool",
                         [float(r["rps"]) * wait_ms / 1000.0 / pool for r in rounds],
                         series=series_of(rounds, scale=wait_ms / 1000.0 / pool))
    peak = max(int((r.get("database") or {}).get("connections_peak") or 0) for r in rounds)
    evidence = (f"1 Uvicorn process, pool {pool}, {users} users each holding a connection "
                f"{wait_ms} ms: {median(rps_of(rounds)):,.1f} req/s (median), database "
                f"connections at most {peak} ({seen.bands()})")
    if users < 4 * pool:
        return seen.verdict(Decision(UNSURE, "too few users to show the cap"), evidence, effect)
    # Above 1.0 is the window's edges (requests begun before it): hence 1.2, not 1.0.
    d = all_of(decide(effect, 1.2, 1.5, higher=False), decide(effect, 0.7, 0.0))
    return seen.verdict(d, evidence, effect)


ASYNC_DB_POOL_CAPS_CONCURRENCY = Claim(
    id="async-db-pool-caps-concurrency",
    text=("an async process is only as concurrent as its database pool: P connections hold "
          "about P database waits, however many users wait"),
    cells=(DB_POOL,),
    judge=_db_pool_caps,
    holds="waits 70-120% of the pool with users >= 4x the pool",
    fails="waits > 1.5x the pool",
)


# The same wait with the sync driver inside async def, against the async driver.
DB_BLOCKING = Cell("db-blocking", lambda s, cores: RunSpec(
    target="fastapi", scenario="db-blocking", io_ms=20, users=4, **s.timing()))
DB_ASYNC = Cell("db-async", lambda s, cores: RunSpec(
    target="fastapi", scenario="db-sleep", io_ms=20, users=4, **s.timing()))


def _sync_driver_blocks(seen: Reading) -> Verdict:
    blocking, good = seen.rounds(DB_BLOCKING), seen.rounds(DB_ASYNC)
    probes = [[(r.get("probe_ms") or {}).get("p50") for r in side] for side in (blocking, good)]
    if any(p is None for side in probes for p in side):
        return seen.unsure("no /healthz probe answered during the runs", "no probe answered")
    pb, pa = ([float(p) for p in side if p is not None] for side in probes)
    wait_ms = blocking[0]["io_ms"] or 20
    effect = ratio_effect("/healthz p50, sync driver / async driver",
                          [max(p, 0.01) for p in pa], pb)
    evidence = (f"/healthz probe p50 while {blocking[0]['users']} users held the database "
                f"{wait_ms} ms each: {median(pb):g} ms with the sync driver in async def vs "
                f"{median(pa):g} ms with the async driver (medians); "
                f"{median(rps_of(blocking)):,.1f} against {median(rps_of(good)):,.1f} req/s "
                f"({seen.bands()})")
    d = stall_decision(effect, median(pb), wait_ms,
                       f"the stall {median(pb):g} ms is under half a wait")
    return seen.verdict(d, evidence, effect)


SYNC_DRIVER_BLOCKS_LOOP = Claim(
    id="sync-driver-blocks-loop",
    text="a sync database driver inside async def stalls the event loop, as CPU work does",
    cells=(DB_BLOCKING, DB_ASYNC),
    judge=_sync_driver_blocks,
    holds=">= 2x and >= half a wait",
    fails="< 1.2x",
)


# /db at saturation, 2 workers under one CPU each side (the database shares the service's
# cores); the same runs count the connections: workers x pool.
DB_FASTAPI = Cell("db-fastapi", lambda s, cores: RunSpec(
    target="fastapi", scenario="db", workers=2, cpus=1.0, users=s.db_users, **s.timing()))
DB_FLASK = Cell("db-flask", lambda s, cores: RunSpec(
    target="flask", scenario="db", worker_class="gevent", workers=2, cpus=1.0,
    users=s.db_users, **s.timing()))


def _connections_multiply(seen: Reading) -> Verdict:
    parts, per_cell = [], []
    for cell in (DB_FASTAPI, DB_FLASK):
        rounds = seen.rounds(cell)
        first = rounds[0]
        expected = first["workers"] * first["db_pool_size"]
        counted = [(r.get("database") or {}).get("connections_peak") for r in rounds]
        if None in counted:
            return seen.unsure("the database's connections were not counted",
                               "connections not counted")
        peaks = [int(p) for p in counted if p is not None]
        per_cell.append([p / expected for p in peaks])
        parts.append(f"{first['worker_class']} x{first['workers']}, pool "
                     f"{first['db_pool_size']} per process: {'/'.join(map(str, peaks))} "
                     f"connections (expected {expected})")
    # Per round, the cell farthest from workers x pool speaks for both.
    shares = [max(col, key=lambda v: abs(v - 1.0)) for col in zip(*per_cell, strict=False)]
    effect = mean_effect("connections / (workers x pool)", shares)
    evidence = "; ".join(parts) + f" ({seen.bands()})"
    if any(abs(v - 1.0) > 0.1 for col in per_cell for v in col):
        d = Decision(FAILS, "a round was off by more than 10%")
    elif len(shares) < 2:
        d = Decision(UNSURE, "one round, no interval to judge", 1)
    elif all(v == 1.0 for col in per_cell for v in col):
        d = Decision(HOLDS, "every round counted exactly workers x pool")
    else:
        d = Decision(UNSURE, "within 10% but not exact")
    return seen.verdict(d, evidence, effect)


CONNECTIONS_MULTIPLY_WITH_WORKERS = Claim(
    id="connections-multiply-with-workers",
    text="the database sees workers x pool size connections: pools are per process",
    cells=(DB_FASTAPI, DB_FLASK),
    judge=_connections_multiply,
    holds="exactly workers x pool in every round",
    fails="off by more than 10%",
)


def _database_share(run: dict[str, Any]) -> float | None:
    """The database's part of the CPU the service and the database used together."""
    db_cores = (run.get("database") or {}).get("cpu_cores_used")
    svc = (run.get("server") or {}).get("cpu_cores_used")
    if db_cores is None or not svc:
        return None
    return float(db_cores) / (float(db_cores) + float(svc))


# A run's recorded bottleneck (runs/bottleneck.py) on the service's side of the connection.
SERVICE_LIMITS = frozenset({"cpu_quota", "worker_slots", "event_loop", "thread_pool"})


def _service_limited(runs: list[dict[str, Any]]) -> bool:
    return bool(runs) and all((r.get("bottleneck") or {}).get("resource") in SERVICE_LIMITS
                              for r in runs)


def _db_bound(seen: Reading) -> Verdict:
    fa, fl = seen.rounds(DB_FASTAPI), seen.rounds(DB_FLASK)
    shares = [_database_share(r) for r in fa + fl]
    if None in shares:
        return seen.unsure("the database's CPU was not measured", "database CPU not measured")
    db_share = median([s for s in shares if s is not None])
    effect = rps_ratio("FastAPI / Flask gevent on /db", fl, fa)
    busy = other_work(fa, fl)
    evidence = (f"/db with {fa[0]['users']} users, each service on a {fa[0]['cpus']:g}-CPU "
                f"limit beside the database: FastAPI {median(rps_of(fa)):,.0f} req/s, Flask "
                f"gevent {median(rps_of(fl)):,.0f} req/s (medians); the database took "
                f"{db_share:.0%} of the CPU the service and it used ({seen.bands()})")
    d = all_of(decide(effect, 0.8, 0.67), decide(effect, 1.25, 1.5, higher=False))
    if d.verdict == HOLDS and db_share < 0.4:
        d = Decision(UNSURE, f"the database took only {db_share:.0%} of the CPU")
    elif d.verdict != FAILS and db_share < 0.4 and _service_limited(fa + fl):
        # The claim names its mechanism: the database is the limit. Every round limited on
        # the service's side, the database with little of the CPU, says it was not, however
        # close the two rates came.
        limits = sorted({r["bottleneck"]["resource"] for r in fa + fl})
        d = Decision(FAILS, f"every run was limited by the service ({', '.join(limits)}), "
                     f"not the database ({db_share:.0%} of the CPU)")
    if why := busy_machine(d, busy, "cores"):
        return seen.verdict(d, evidence, effect, UNSURE, why)
    return seen.verdict(d, evidence, effect)


DB_BOUND_THROUGHPUT = Claim(
    id="db-bound-throughput",
    text=("at saturation on /db the database, not the framework, is the limit: both stacks "
          "serve about the same rate"),
    cells=(DB_FASTAPI, DB_FLASK),
    judge=_db_bound,
    holds="the ratio within 0.8-1.25x and the database >= 40% of the CPU",
    fails=("outside 0.67-1.5x, or every run limited by the service (its CPU quota, worker "
           "slots, event loop or thread pool) with the database under 40% of the CPU: the "
           "framework decides"),
)


CLAIMS = (ASYNC_DB_POOL_CAPS_CONCURRENCY, SYNC_DRIVER_BLOCKS_LOOP,
          CONNECTIONS_MULTIPLY_WITH_WORKERS, DB_BOUND_THROUGHPUT)
