"""Event-loop lag: how late the loop wakes a task that asked to sleep.

A task sleeps ``interval`` seconds again and again; the overshoot is the time the loop
spent running something else (CPU work on the loop, e.g. ``/cpu/blocking``). A stalled
loop shows as one long observation once it turns again.
"""

from __future__ import annotations

import asyncio

from loadlab.metrics.definitions import loop_lag

INTERVAL_S = 0.5


async def measure_loop_lag(interval_s: float = INTERVAL_S) -> None:
    histogram = loop_lag()
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, loop.time() - asked - interval_s))
