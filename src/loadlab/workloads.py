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
    # The loop works on copies of the constants made by the calling thread. On the
    # free-threaded build (3.13t) an object shared between threads has its reference count
    # changed atomically, and two threads reading one shared int millions of times a second
    # serialise on it: measured, 2 threads took 2.2-3.7x one thread's time with the module's
    # ints (or, depending on how the code was loaded, with literals), 1.0-1.1x with copies.
    # With the GIL the copies cost nothing measurable.
    multiplier, increment, mask = _own(_MULTIPLIER), _own(_INCREMENT), _own(_MASK)
    state = units
    for _ in range(units * UNIT_ITERATIONS):
        state = (state * multiplier + increment) & mask
    return state


def _own(value: int) -> int:
    """A new int equal to ``value``, owned by the calling thread (``int(value)`` would return
    the shared object itself)."""
    return int(str(value))


def io_wait_sync(ms: int) -> None:
    time.sleep(ms / 1000)


async def io_wait_async(ms: int) -> None:
    await asyncio.sleep(ms / 1000)
