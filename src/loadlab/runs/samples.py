"""The server's samples as scraped (``raw/RUN.samples.json`` holds them per second, in the
shape of ``SamplesFile``): the quantile of a latency histogram between two scrapes, which
the runner's live line and the report's timeline both compute."""

from __future__ import annotations

import math
from typing import TypedDict


class SampleRow(TypedDict, total=False):
    """One scrape as ``runner/sampler.py`` writes it: cumulative counters, only the figures
    the scrape had (an absent one was not read); ``t`` in s from the first scrape."""

    t: float
    requests: float
    buckets: dict[str, float]  # le (s) -> cumulative count
    cpu_seconds: float
    throttled_seconds: float
    periods: float
    throttled_periods: float
    memory_bytes: float
    cpu_limit: float
    tree_cpu_seconds: float
    tree_pss_bytes: float
    ok: bool  # False: the service did not answer the scrape
    in_progress: float
    loop_lag_buckets: dict[str, float]
    threadpool_busy: float
    threadpool_size: float
    db_pool_in_use: float
    db_pool_size: float
    db_pool_waiting: float
    accept_queue: float


class SamplesFile(TypedDict, total=False):
    """``raw/RUN.samples.json`` (``format``: ``loadlab-samples/N``)."""

    format: str
    interval_s: float
    scrape: str  # "side-port" or "service-port"
    t0_unix: float  # the first scrape's wall-clock time (Locust counts per such second)
    load_began_s: float | None
    measured_from_s: float | None
    scrapes: list[SampleRow]


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus-style quantile of the requests observed between two scrapes (seconds)."""
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in zip(les, counts, strict=True):
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le
