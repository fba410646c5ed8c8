"""The users' think time, as their classes declare it (``wait_time``), for the run record.

A closed model's users can ask for at most users / (think time + response time): 50 users
thinking 50 ms each ask for at most 1,000 req/s however fast the server is. Locust does
not report the waits, so the declared ``wait_time`` is read: sampled where it is a plain
function of nothing (``constant``, ``between``, ``poisson``, a user's own), read from
its closure for ``constant_pacing``/``constant_throughput`` (a cycle of fixed length,
not a wait after the answer). A class that leaves ``wait_time`` alone thinks 0 ms.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

SAMPLES = 2000


def _pacing_s(func: Any) -> float | None:
    """The cycle of a ``constant_pacing`` wait (``constant_throughput`` is one too)."""
    if "constant_pacing" not in getattr(func, "__qualname__", ""):
        return None
    names = getattr(getattr(func, "__code__", None), "co_freevars", ())
    cells = getattr(func, "__closure__", None) or ()
    for name, cell in zip(names, cells, strict=False):
        if name == "wait_time":
            try:
                return float(cell.cell_contents)
            except (TypeError, ValueError):
                return None
    return None


def _mean_wait_s(func: Any) -> float | None:
    """The mean of a wait function that reads nothing of its user (None: it does)."""
    state = random.getstate()
    try:
        values = [float(func(None)) for _ in range(SAMPLES)]
    except Exception:  # a user's own function that reads its user
        return None
    finally:
        random.setstate(state)  # sampling must not change the run's own random stream
    return sum(values) / len(values)


def declared(user_classes: Iterable[Any]) -> dict[str, float | None]:
    """``think_time_ms``: the mean wait after each task, weighted over the classes by
    their ``weight``; ``pacing_ms``: the cycle where every class paces instead. None:
    not known (a wait that reads its user's state, or classes that mix the two)."""
    thinks: list[tuple[float, float]] = []
    pacings: list[tuple[float, float]] = []
    unknown = False
    for cls in user_classes:
        weight = float(getattr(cls, "weight", 1) or 1)
        func = getattr(cls, "wait_time", None)
        if func is None:
            thinks.append((weight, 0.0))
            continue
        pacing = _pacing_s(func)
        if pacing is not None:
            pacings.append((weight, pacing))
            continue
        mean = _mean_wait_s(func)
        if mean is None:
            unknown = True
        else:
            thinks.append((weight, mean))

    def weighted(items: list[tuple[float, float]]) -> float:
        total = sum(w for w, _ in items)
        return round(1000.0 * sum(w * v for w, v in items) / total, 3)

    if unknown or (thinks and pacings) or not (thinks or pacings):
        return {"think_time_ms": None, "pacing_ms": None}
    if pacings:
        return {"think_time_ms": None, "pacing_ms": weighted(pacings)}
    return {"think_time_ms": weighted(thinks), "pacing_ms": None}
