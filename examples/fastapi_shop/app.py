"""A small shop API, as a team might write it: products from PostgreSQL through a pool,
a shipping quote from an upstream carrier service, recommendations computed in Python.

Nothing here knows about the lab: ``loadlab serve --app app:app --app-dir
examples/fastapi_shop`` serves it as it is, ``uvicorn app:app`` too.

Environment:
  DATABASE_URL   PostgreSQL with the ``world`` table (``loadlab db seed``); unset: 503s.
  DB_POOL_SIZE   connections per process (default 10).
  SHIPPING_URL   the carrier's rate endpoint; unset: this app's own /carrier/rates on the
                 address the request came in on (a stand-in carrier answering in ~20 ms).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException, Request
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

CARRIER_DELAY_S = 0.02
CATALOGUE = 10_000  # product ids 1..10000 (the world table's rows)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ.get("DATABASE_URL", "")
    app.state.pool = None
    if url:
        app.state.pool = AsyncConnectionPool(url, min_size=1, open=False,
                                             max_size=int(os.environ.get("DB_POOL_SIZE", "10")))
        await app.state.pool.open()
    async with httpx.AsyncClient(timeout=5.0) as client:
        app.state.http = client
        try:
            yield
        finally:
            if app.state.pool is not None:
                await app.state.pool.close()


app = FastAPI(title="shop", lifespan=lifespan)


class Order(BaseModel):
    product_id: int = Field(ge=1, le=CATALOGUE)
    quantity: int = Field(ge=1, le=100)


def _pool(request: Request) -> AsyncConnectionPool:
    pool = request.app.state.pool
    if pool is None:
        raise HTTPException(503, "no database configured: set DATABASE_URL")
    return pool


async def _price(request: Request, product_id: int) -> int:
    async with _pool(request).connection() as conn:
        cur = await conn.execute("SELECT randomnumber FROM world WHERE id = %s", (product_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no product {product_id}")
    return int(row[0])


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/products/{product_id}")
async def product(request: Request, product_id: int) -> dict[str, int]:
    return {"id": product_id, "price_cents": await _price(request, product_id)}


@app.get("/users/{user_id}/cart")
async def cart(user_id: int) -> dict[str, object]:
    items = [{"product_id": (user_id * 7919 + i * 104729) % CATALOGUE + 1, "quantity": 1 + i % 3}
             for i in range(user_id % 5)]
    return {"user_id": user_id, "items": items}


@app.post("/orders")
async def order(request: Request, body: Order) -> dict[str, int]:
    price = await _price(request, body.product_id)
    return {"product_id": body.product_id, "quantity": body.quantity,
            "total_cents": price * body.quantity}


@app.get("/shipping/{zip_code}/quote")
async def shipping(request: Request, zip_code: str) -> dict[str, object]:
    url = os.environ.get("SHIPPING_URL", "")
    if not url:
        server = request.scope.get("server")
        if not server:
            raise HTTPException(503, "no carrier: set SHIPPING_URL")
        host = "127.0.0.1" if server[0] in ("0.0.0.0", "") else server[0]
        url = f"http://{host}:{server[1]}/carrier/rates"
    try:
        reply = await request.app.state.http.get(url, params={"zip": zip_code})
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise HTTPException(502, f"carrier failed: {type(exc).__name__}") from None
    return {"zip": zip_code, "carrier": reply.json()}


@app.get("/carrier/rates")
async def carrier_rates(zip: str) -> dict[str, object]:
    """The stand-in carrier: an I/O wait, as a remote service's answer would be."""
    await asyncio.sleep(CARRIER_DELAY_S)
    return {"zip": zip, "cents": 499 + int(hashlib.sha1(zip.encode()).hexdigest()[:2], 16)}


@app.get("/users/{user_id}/recommendations")
def recommendations(user_id: int, count: int = 5) -> dict[str, object]:
    """CPU-bound scoring in pure Python (holds the GIL ~10 ms); a plain ``def`` runs in
    the thread pool, as FastAPI does for sync endpoints."""
    scores = []
    for product_id in range(1, 20_001):
        score = (product_id * 2654435761 ^ user_id * 40503) % 1_000_003
        scores.append((score, product_id))
    scores.sort(reverse=True)
    return {"user_id": user_id, "products": [p for _, p in scores[:max(1, min(count, 50))]]}
