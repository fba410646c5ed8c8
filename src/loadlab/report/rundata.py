"""What a run left in ``raw/`` besides its summary: the server's samples, Locust's buckets.

Every reader returns None when its file is absent or unreadable (older results, a run that
failed early, a plain locustfile): the report then leaves that figure out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from loadlab.jsontypes import JsonObject
from loadlab.report.concurrency import served_from_gauge
from loadlab.runs.record import Run
from loadlab.runs.samples import SampleRow, SamplesFile, histogram_quantile


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def locust_entries(directory: Path, run: Run) -> list[JsonObject] | None:
    rel = run.get("locust_json")
    data = _json(directory / rel) if rel else None
    return data if isinstance(data, list) else None


def lab_report(directory: Path, run: Run) -> JsonObject | None:
    rel = run.get("locust_json")
    if not rel:
        return None
    path = directory / rel
    data = _json(path.with_name(path.name.removesuffix(".json") + ".loadlab.json"))
    return data if isinstance(data, dict) else None


def response_times(entries: list[JsonObject]) -> dict[float, int]:
    """Locust's response-time buckets (ms, rounded as Locust rounds), merged over endpoints."""
    merged: dict[float, int] = {}
    for entry in entries:
        for key, count in (entry.get("response_times") or {}).items():
            merged[float(key)] = merged.get(float(key), 0) + int(count)
    return merged


def cdf(buckets: dict[float, int]) -> tuple[list[float], list[float]]:
    """(ms, share of requests at or below) at every bucket."""
    total = sum(buckets.values())
    xs: list[float] = []
    ys: list[float] = []
    seen = 0
    for key in sorted(buckets):
        seen += buckets[key]
        xs.append(key)
        ys.append(seen / total if total else 0.0)
    return xs, ys


@dataclass
class Timeline:
    """A run over time; x is seconds since the load started."""

    t: list[float]  # the end of each interval between two scrapes
    measured_from: float
    end: float
    server_rps: list[float | None]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    served: list[float | None]
    cpu_cores: list[float | None]
    memory_mb: list[float | None]
    cpu_limit: float | None
    client_t: list[float] = field(default_factory=list)
    client_rps: list[float] = field(default_factory=list)
    users_t: list[float] = field(default_factory=list)
    users: list[float] = field(default_factory=list)
    loop_lag_ms: list[float | None] | None = None
    threadpool_busy: list[float | None] | None = None
    threadpool_size: float | None = None
    db_pool_in_use: list[float | None] | None = None
    db_pool_size: float | None = None


def _buckets(raw: dict[str, float] | None) -> dict[float, float]:
    return {float(k): float(v) for k, v in (raw or {}).items()}


def _quantile_ms(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    if not after:
        return None
    value = histogram_quantile(q, before, after)
    return None if math.isnan(value) else value * 1000


def _gauge(rows: list[SampleRow], key: Literal["threadpool_busy", "db_pool_in_use"]
           ) -> list[float | None] | None:
    values: list[float | None] = [r.get(key) for r in rows]
    return values if any(v is not None for v in values) else None


def timeline(directory: Path, run: Run) -> Timeline | None:
    rel = run.get("samples")
    found = _json(directory / rel) if rel else None
    if not isinstance(found, dict):
        return None
    data = cast(SamplesFile, found)  # the lab's own file (runner/sampler.py writes it)
    scrapes = [s for s in data.get("scrapes") or [] if s.get("ok", True) and "t" in s]
    if len(scrapes) < 3:
        return None
    zero = float(data.get("load_began_s") or 0.0)
    rows = scrapes[1:]
    t: list[float] = []
    rps: list[float | None] = []
    p50: list[float | None] = []
    p95: list[float | None] = []
    cores: list[float | None] = []
    for before, after in zip(scrapes, rows, strict=False):
        dt = float(after["t"]) - float(before["t"])
        t.append(float(after["t"]) - zero)
        rps.append((after.get("requests", 0.0) - before.get("requests", 0.0)) / dt
                   if dt > 0 else None)
        b0, b1 = _buckets(before.get("buckets")), _buckets(after.get("buckets"))
        p50.append(_quantile_ms(0.5, b0, b1))
        p95.append(_quantile_ms(0.95, b0, b1))
        cpu_key: Literal["cpu_seconds", "tree_cpu_seconds"] = (
            "cpu_seconds" if after.get("cpu_seconds") else "tree_cpu_seconds")
        c0, c1 = before.get(cpu_key), after.get(cpu_key)
        cores.append(max(0.0, (c1 - c0) / dt) if c0 is not None and c1 is not None and dt > 0
                     else None)
    memory = [(r.get("tree_pss_bytes") or r.get("memory_bytes") or 0) / 1e6 or None
              for r in rows]
    limits = [r.get("cpu_limit") for r in rows if r.get("cpu_limit")]
    line = Timeline(
        t=t, measured_from=float(data.get("measured_from_s") or zero) - zero,
        end=t[-1], server_rps=rps, p50_ms=p50, p95_ms=p95,
        served=[None if r.get("in_progress") is None
                else served_from_gauge(r["in_progress"], data.get("scrape")) for r in rows],
        cpu_cores=cores, memory_mb=memory, cpu_limit=limits[-1] if limits else None,
    )
    lags = [_quantile_ms(0.95, _buckets(a.get("loop_lag_buckets")),
                         _buckets(b.get("loop_lag_buckets")))
            for a, b in zip(scrapes, rows, strict=False)]
    line.loop_lag_ms = lags if any(v is not None for v in lags) else None
    line.threadpool_busy = _gauge(rows, "threadpool_busy")
    sizes = [r["threadpool_size"] for r in rows if r.get("threadpool_size")]
    line.threadpool_size = max(sizes) if sizes else None
    line.db_pool_in_use = _gauge(rows, "db_pool_in_use")
    pools = [r["db_pool_size"] for r in rows if r.get("db_pool_size")]
    line.db_pool_size = max(pools) if pools else None
    _client_side(line, directory, run, data, zero)
    return line


def _client_side(line: Timeline, directory: Path, run: Run, data: SamplesFile,
                 zero: float) -> None:
    """Locust's answers per second and the users it ran, on the same clock."""
    start = data.get("t0_unix")
    entries = locust_entries(directory, run)
    if start is not None and entries:
        per_sec: dict[int, int] = {}
        for entry in entries:
            for sec, count in (entry.get("num_reqs_per_sec") or {}).items():
                per_sec[int(sec)] = per_sec.get(int(sec), 0) + int(count)
        seconds = sorted(per_sec)[:-1]  # Locust's last second is partial
        line.client_t = [s + 1.0 - float(start) - zero for s in seconds]
        line.client_rps = [float(per_sec[s]) for s in seconds]
    users = float(run.get("users") or 0)
    rate = float(run.get("spawn_rate") or users or 1.0)
    ramp = users / rate if rate > 0 else 0.0
    line.users_t = [0.0, ramp, line.end]
    line.users = [min(users, rate * 0.0), users, users]
