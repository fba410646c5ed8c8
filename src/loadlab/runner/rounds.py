"""Rounds of one cell folded into one run: medians on top, each round kept, 95% intervals.

Each round is a full run on a freshly started server (execute.py). The run's figures are
the medians over its rounds that ran well; ``rounds`` keeps every round's figures and
``ci`` the intervals of the headline figures (loadlab.stats: seeded percentile bootstrap
of the median; ``ci_level`` is the coverage the number of rounds allows).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, cast

from loadlab import stats
from loadlab.runs.record import IDENTITY, Run, get, run_rounds

# IDENTITY, get and run_rounds read any run, so they live with the record; here too for
# the claims, which fold rounds with them.
__all__ = ["HEADLINE", "IDENTITY", "MAIN", "ROUND_FIELDS", "combine", "get", "half_width_pct",
           "precise_enough", "run_rounds", "values"]

# Dotted paths of the headline figures that get an interval.
HEADLINE = {
    "rps": "rps",
    "p50": "latency_ms.p50",
    "p95": "latency_ms.p95",
    "p99": "latency_ms.p99",
    "cpu_per_request_ms": "server.cpu_per_request_ms",
}
MAIN = "rps"  # what --until-ci judges
# Per-round figures kept under ``rounds`` (the rest of a round's record is the same cell).
ROUND_FIELDS = ("run_id", "status", "error", "started_at", "requests", "failures",
                "error_rate", "rps", "latency_ms", "intended_latency_ms", "server", "machine",
                "probe_ms", "load", "measured_s", "locust_json", "database", "series",
                "bottleneck")


def values(rounds: Sequence[Mapping[str, Any]], path: str) -> list[float]:
    """The figure at ``path`` in each round that ran well (rounds without it left out)."""
    out: list[float] = []
    for r in rounds:
        if r.get("status") != "ok":
            continue
        v = get(r, path)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append(float(v))
    return out


def _median_tree(items: list[Any]) -> Any:
    """Medians of numbers, recursively through dicts; other values from the last item."""
    numbers = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and len(numbers) == len([v for v in items if v is not None]):
        med = statistics.median(numbers)
        if all(isinstance(v, int) for v in numbers):
            return round(med) if med != int(med) else int(med)
        return round(float(med), 4)
    dicts = [v for v in items if isinstance(v, dict)]
    if dicts and len(dicts) == len([v for v in items if v is not None]):
        keys = list(dict.fromkeys(k for d in dicts for k in d))
        return {k: _median_tree([d.get(k) for d in dicts]) for k in keys}
    present = [v for v in items if v is not None]
    return present[-1] if present else None


def combine(records: list[Run], until_ci: float | None = None) -> Run:
    """One run from its rounds (in the order they ran)."""
    if len(records) == 1 and until_ci is None:
        return records[0]
    good = [r for r in records if r.get("status") == "ok"]
    base: dict[str, Any] = dict(good[-1] if good else records[-1])
    if good:
        for key in set().union(*(r.keys() for r in good)) - IDENTITY - {"rounds", "ci"}:
            base[key] = _median_tree([r.get(key) for r in good])
        base["status"] = "ok"
        base.pop("error", None)
    base["rounds"] = [{k: r.get(k) for k in ROUND_FIELDS if k in r} for r in records]
    base["rounds_ok"] = len(good)
    base["ci"] = {name: stats.median_ci(values(records, path))
                  for name, path in HEADLINE.items()}
    base["ci"] = {k: (None if v is None else [round(v[0], 4), round(v[1], 4)])
                  for k, v in base["ci"].items()}
    base["ci_level"] = round(stats.level(len(good)), 4)
    base["ci_method"] = "percentile bootstrap of the median over rounds (seeded, 10,000)"
    half = stats.relative_half_width(values(records, HEADLINE[MAIN]))
    base["precision"] = {
        "figure": MAIN,
        "half_width_pct": None if half is None else round(100 * half, 2),
        "target_pct": until_ci,
    }
    return cast(Run, base)


def precise_enough(run: Run, until_ci: float, min_rounds: int) -> bool:
    """Whether the main figure's interval is within ±until_ci % (after min_rounds)."""
    if int(run.get("rounds_ok") or 0) < min_rounds:
        return False
    half = half_width_pct(run)
    return half is not None and half <= until_ci


def half_width_pct(run: Run) -> float | None:
    """The main figure's interval half-width in % of its median (None: one round)."""
    precision = run.get("precision")
    return None if precision is None else precision.get("half_width_pct")
