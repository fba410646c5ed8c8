"""The two workloads, written once and used by both services.

``cpu_work(n)`` is pure Python that holds the GIL for its whole duration: ``n`` units of
``UNIT_ITERATIONS`` steps of a 64-bit linear congruential generator. The result depends
only on ``n`` (deterministic), and the cost is linear in ``n``. One unit costs about
0.1 ms on the 2-core development machines (CPython 3.11), so ``work=100`` is ~10 ms.

``io_wait`` is the wait: ``asyncio.sleep`` in async code, ``time.sleep`` in sync code
(which gevent's monkey-patching turns cooperative).
"""

from __future__ import annotations

import asyncio
import time

UNIT_ITERATIONS = 1_000
_MULTIPLIER = 6364136223846793005
_INCREMENT = 1442695040888963407
_MASK = (1 << 64) - 1


def cpu_work(units: int) -> int:
    """Spin ``units`` × UNIT_ITERATIONS LCG steps; return the final state (deterministic)."""
    state = units
    for _ in range(units * UNIT_ITERATIONS):
        state = (state * _MULTIPLIER + _INCREMENT) & _MASK
    return state


def io_wait_sync(ms: int) -> None:
    time.sleep(ms / 1000)


async def io_wait_async(ms: int) -> None:
    await asyncio.sleep(ms / 1000)
