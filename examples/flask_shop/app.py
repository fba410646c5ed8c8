"""A small shop API in Flask, as a team might write it: products from PostgreSQL through
a pool, a shipping quote from an upstream carrier service, recommendations computed in
Python.

Nothing here knows about the lab: ``loadlab serve --app app:app --app-dir
examples/flask_shop`` serves it as it is, ``gunicorn app:app`` too.

Environment:
  DATABASE_URL   PostgreSQL with the ``world`` table (``loadlab db seed``); unset: 503s.
  DB_POOL_SIZE   connections per process (default 4).
  SHIPPING_URL   the carrier's rate endpoint; unset: this app's own /carrier/rates on
                 loopback at the port the request came in on (a stand-in answering in ~20 ms).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import requests
from flask import Flask, abort, jsonify, request
from psycopg_pool import ConnectionPool

CARRIER_DELAY_S = 0.02
CATALOGUE = 10_000

app = Flask(__name__)
_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()
_http = requests.Session()


def pool() -> ConnectionPool:
    """Opened at first use in each worker process (never in a parent that forks)."""
    global _pool
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        abort(503, "no database configured: set DATABASE_URL")
    with _pool_lock:
        if _pool is None:
            _pool = ConnectionPool(url, min_size=1,
                                   max_size=int(os.environ.get("DB_POOL_SIZE", "4")))
        return _pool


def price(product_id: int) -> int:
    with pool().connection() as conn:
        row = conn.execute("SELECT randomnumber FROM world WHERE id = %s",
                           (product_id,)).fetchone()
    if row is None:
        abort(404, f"no product {product_id}")
    return int(row[0])


@app.get("/health")
def health() -> Any:
    return jsonify(status="ok")


@app.get("/products/<int:product_id>")
def product(product_id: int) -> Any:
    return jsonify(id=product_id, price_cents=price(product_id))


@app.get("/users/<int:user_id>/cart")
def cart(user_id: int) -> Any:
    items = [{"product_id": (user_id * 7919 + i * 104729) % CATALOGUE + 1, "quantity": 1 + i % 3}
             for i in range(user_id % 5)]
    return jsonify(user_id=user_id, items=items)


@app.post("/orders")
def order() -> Any:
    body = request.get_json(silent=True) or {}
    product_id, quantity = body.get("product_id"), body.get("quantity")
    if not isinstance(product_id, int) or not 1 <= product_id <= CATALOGUE or \
            not isinstance(quantity, int) or not 1 <= quantity <= 100:
        abort(422, "product_id 1-10000 and quantity 1-100 are required")
    return jsonify(product_id=product_id, quantity=quantity,
                   total_cents=price(product_id) * quantity)


def _own_carrier() -> str:
    sock = request.environ.get("gunicorn.socket")
    try:
        port = sock.getsockname()[1] if sock is not None else int(request.environ["SERVER_PORT"])
    except (OSError, KeyError, ValueError):
        abort(503, "no carrier: set SHIPPING_URL")
    return f"http://127.0.0.1:{port}/carrier/rates"


@app.get("/shipping/<zip_code>/quote")
def shipping(zip_code: str) -> Any:
    url = os.environ.get("SHIPPING_URL", "") or _own_carrier()
    try:
        reply = _http.get(url, params={"zip": zip_code}, timeout=5.0)
        reply.raise_for_status()
    except requests.RequestException as exc:
        abort(502, f"carrier failed: {type(exc).__name__}")
    return jsonify(zip=zip_code, carrier=reply.json())


@app.get("/carrier/rates")
def carrier_rates() -> Any:
    """The stand-in carrier: an I/O wait, as a remote service's answer would be."""
    zip_code = request.args.get("zip", "")
    time.sleep(CARRIER_DELAY_S)
    cents = 499 + int(hashlib.sha1(zip_code.encode()).hexdigest()[:2], 16)
    return jsonify(zip=zip_code, cents=cents)


@app.get("/users/<int:user_id>/recommendations")
def recommendations(user_id: int) -> Any:
    """CPU-bound scoring in pure Python (holds the GIL ~10 ms)."""
    count = request.args.get("count", 5, type=int)
    scores = []
    for product_id in range(1, 20_001):
        score = (product_id * 2654435761 ^ user_id * 40503) % 1_000_003
        scores.append((score, product_id))
    scores.sort(reverse=True)
    return jsonify(user_id=user_id, products=[p for _, p in scores[:max(1, min(count, 50))]])
