"""The bare database apps the lab services' ``/db`` and ``/db/sleep`` are compared with.

The same driver, pool and SQL as the lab (psycopg 3: an ``AsyncConnectionPool`` opened
in FastAPI's lifespan, a ``ConnectionPool`` per Gunicorn worker opened by Flask's app
factory; min = max = ``LOADLAB_DB_POOL_SIZE`` connections, autocommit), and nothing else:
no metrics, no middleware, no parameter models, no error mapping. The SQL comes from
``loadlab.service_db`` so that the two sides cannot drift apart.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loadlab.scenarios import WORLD_ROWS
from loadlab.service_db import SELECT_WORLD, SLEEP


def _pool_options() -> dict[str, Any]:
    size = int(os.environ["LOADLAB_DB_POOL_SIZE"])
    return dict(conninfo=os.environ["DATABASE_URL"], min_size=size, max_size=size, open=False,
                kwargs={"autocommit": True})


def create_fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(**_pool_options())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)  # after the fork, in the serving process
        try:
            yield
        finally:
            await pool.close(timeout=1.0)

    app = FastAPI(lifespan=lifespan)

    @app.get("/db")
    async def db_() -> JSONResponse:
        async with pool.connection() as conn:
            cursor = await conn.execute(SELECT_WORLD, (random.randint(1, WORLD_ROWS),))
            row = await cursor.fetchone()
        assert row is not None
        return JSONResponse({"id": row[0], "randomNumber": row[1]})

    @app.get("/db/sleep")
    async def db_sleep(ms: int) -> JSONResponse:
        async with pool.connection() as conn:
            await conn.execute(SLEEP, (ms / 1000,))
        return JSONResponse({"slept_ms": ms})

    @app.get("/healthz")  # last: /db and /db/sleep match before it
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def create_flask_app() -> Any:
    from flask import Flask, request
    from psycopg_pool import ConnectionPool

    # Gunicorn calls the factory in each worker (no preload): one pool per process.
    pool: ConnectionPool[Any] = ConnectionPool(**_pool_options())
    pool.open(wait=False)
    app = Flask(__name__)

    @app.get("/db")
    def db_() -> dict[str, int]:
        with pool.connection() as conn:
            row = conn.execute(SELECT_WORLD, (random.randint(1, WORLD_ROWS),)).fetchone()
        assert row is not None
        return {"id": row[0], "randomNumber": row[1]}

    @app.get("/db/sleep")
    def db_sleep() -> dict[str, int]:
        ms = int(request.args["ms"])
        with pool.connection() as conn:
            conn.execute(SLEEP, (ms / 1000,))
        return {"slept_ms": ms}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
