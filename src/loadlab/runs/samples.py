"""The server's samples as scraped (``raw/RUN.samples.json`` holds them per second): the
quantile of a latency histogram between two scrapes, which the runner's live line and the
report's timeline both compute."""

from __future__ import annotations

import math


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
