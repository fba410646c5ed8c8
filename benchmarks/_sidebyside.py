"""Two servers measured at the same time: whatever else the machine does in those seconds
hits both alike, so their ratio is usable on a busy machine where a rate alone is not
(``bench_metrics_overhead.py --side-by-side``, ``bench_app_overhead.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

S = TypeVar("S")


def at_once(measure: Callable[[S], float], first: S, second: S) -> float:
    """``measure(second) / measure(first)``, the two measured in two threads at once."""
    figures = [0.0, 0.0]

    def run(i: int, server: S) -> None:
        figures[i] = measure(server)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return figures[1] / figures[0]
