"""FastAPI's thread pool: AnyIO's default limiter (40 tokens) runs every ``def`` endpoint.

Each worker samples its limiter from the event loop (the limiter belongs to the loop and
cannot be read from the thread that renders /metrics) and writes the figures to its
``livesum`` gauges. Gunicorn's gthread pool needs no probe: see ``collectors.py``.
"""

from __future__ import annotations

import asyncio

from loadlab.metrics.definitions import threadpool_gauges

INTERVAL_S = 1.0


async def sample_threadpool(interval_s: float = INTERVAL_S) -> None:
    from anyio import to_thread  # FastAPI's dependency; the Flask image has no AnyIO

    busy, size = threadpool_gauges()
    limiter = to_thread.current_default_thread_limiter()
    while True:
        busy.set(limiter.borrowed_tokens)
        size.set(limiter.total_tokens)
        await asyncio.sleep(interval_s)
