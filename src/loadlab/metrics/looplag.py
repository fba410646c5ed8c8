"""Event-loop lag: how late the loop wakes a task that asked to sleep.

A task sleeps ``interval`` seconds again and again; the overshoot is the time the loop
spent running something else (CPU work on the loop, e.g. ``/cpu/blocking``). A stalled
loop shows in the histogram as one long observation once it turns again; while it is
still stalled, ``loadlab_event_loop_blocked_seconds`` says for how long: the metrics
flusher thread (``tally.py``), which runs while the loop does not, sets it each second.
"""

from __future__ import annotations

import asyncio
import time

from loadlab.metrics import tally
from loadlab.metrics.definitions import loop_blocked, loop_lag

INTERVAL_S = 0.5
_due = [0.0]  # time.monotonic() by which the probe should have woken


def _publish_blocked(interval_s: float) -> None:
    late = time.monotonic() - _due[0]
    loop_blocked().set(late if late > interval_s else 0.0)


async def measure_loop_lag(interval_s: float = INTERVAL_S) -> None:
    histogram = loop_lag()
    loop = asyncio.get_running_loop()
    _due[0] = time.monotonic() + interval_s
    tally.add_flush_hook(lambda: _publish_blocked(interval_s))
    while True:
        asked = loop.time()
        _due[0] = time.monotonic() + interval_s
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, loop.time() - asked - interval_s))
