"""The database I/O behind ``/db``, ``/queries``, ``/db/sleep`` and ``/db/blocking``,
written once for both services: psycopg 3 pools, the SQL, and what a failure answers.

FastAPI uses ``AsyncDatabase`` (an ``AsyncConnectionPool`` opened in the lifespan, so
after the fork); Flask uses ``SyncDatabase`` (a ``ConnectionPool`` opened by the app
factory, which Gunicorn calls in each worker). One driver on both stacks, so only the
concurrency model differs. psycopg picks its wait function when it is imported, so it
must be imported after gevent's monkey-patching: nothing a Gunicorn master loads imports
it (this module imports the driver inside its functions).

A pool never makes a request hang: waiting past ``LOADLAB_DB_POOL_TIMEOUT_S`` answers 503
``database pool exhausted``; while the last connection attempt failed the wait is cut
to ``DOWN_WAIT_S`` and answers 503 ``database unavailable``; a connection that breaks in
a query (the server restarted) answers 503 and is replaced by the pool, so the service
serves again by itself once the database is back.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from loadlab import contract
from loadlab.metrics import tally
from loadlab.metrics.definitions import DB_BUCKETS, db_errors, db_histograms, db_pool_gauges
from loadlab.scenarios import WORLD_ROWS

# Pool defaults per worker class live in the server registry.
from loadlab.servers import CONCURRENT_POOL_SIZE as CONCURRENT_POOL_SIZE
from loadlab.servers import default_pool_size as default_pool_size
from loadlab.settings import ServiceSettings

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")
AnyPool = Any  # psycopg_pool.ConnectionPool | AsyncConnectionPool: both have get_stats()

SELECT_WORLD = "SELECT id, randomnumber FROM world WHERE id = %s"
SLEEP = "SELECT pg_sleep(%s)"
# While the database refuses connections, requests give up after this long (not the
# whole pool timeout), and the pool retries for this long before it drops an attempt:
# a request that finds the pool short then asks for a fresh connection at once.
DOWN_WAIT_S = 0.5
RECONNECT_S = 5.0
CONNECT_TIMEOUT_S = 5

def pool_size(settings: ServiceSettings) -> int:
    return settings.db_pool_size or default_pool_size(settings.worker_class, settings.threads)


_USERINFO = re.compile(r"(://[^:/@\s\"']*):[^@\s\"']*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _passwords(url: str) -> list[str]:
    """Every form of the password ``url`` may carry, as libpq may quote it back."""
    found = []
    userinfo = re.match(r"\s*[a-z]+://([^/?#]*)@", url, re.IGNORECASE)
    if userinfo and ":" in userinfo.group(1):
        found.append(userinfo.group(1).split(":", 1)[1])
    found += [m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(url)]
    found += [m.split("=", 1)[1] for m in re.findall(r"[?&]password=[^&#]*", url)]
    forms = {form for secret in found for form in (secret, unquote(secret)) if form}
    forms |= {part for form in list(forms) for part in form.split() if len(part) >= 3}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` (a driver's message about ``url``) without the password ``url`` carries."""
    for secret in _passwords(url):
        text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1:***@", text)
    return _KEYWORD_PASSWORD.sub(r"\1***", text)


def check_url(url: str) -> None:
    """Raise ValueError with one line when ``DATABASE_URL`` cannot be parsed; the line
    never carries the password (libpq quotes the URL, or the part it choked on)."""
    if not url:
        return
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"DATABASE_URL is malformed: {redact(reason, url)}") from None
    # libpq reads the port only when it connects: a word there would fail every request.
    ports = str(params.get("port") or "").split(",")
    if any(port and not port.isdigit() for port in ports):
        raise ValueError(f"DATABASE_URL is malformed: port {params['port']!r} is not a number")


def random_id() -> int:
    return random.randint(1, WORLD_ROWS)


def world(row: tuple[Any, ...] | None) -> dict[str, int]:
    """A row as ``contract.World`` shapes it. Built by hand: the columns are integers by
    the table's definition, and validating each row through the model costs on the hot
    path (tests/test_db.py holds the answers against the OpenAPI document)."""
    if row is None:  # the table is seeded with every id: a missing row is a broken seed
        raise contract.ContractError(503, "database not seeded")
    return {"id": row[0], "randomNumber": row[1]}


class Reachability:
    """Whether the last connection attempt of this process succeeded."""

    def __init__(self) -> None:
        self.down = False

    def wait_s(self, timeout_s: float) -> float:
        return min(timeout_s, DOWN_WAIT_S) if self.down else timeout_s


_reachability = Reachability()


class Instruments:
    """This process's pools and the tallies their requests write (see metrics/tally.py)."""

    def __init__(self) -> None:
        self.pools: list[AnyPool] = []
        self._lock = threading.Lock()
        self._ready = False

    def attach(self, pool: Any) -> None:
        with self._lock:
            if not self._ready:
                wait, query = db_histograms()
                self.pool_wait = tally.HistogramTally(wait, DB_BUCKETS)
                self.queries = {name: tally.HistogramTally(query.labels(name), DB_BUCKETS)
                                for name in ("world", "sleep")}
                tally.add_flush_hook(self.sample_pools)
                self._ready = True
            self.pools.append(pool)

    def detach(self, pool: Any) -> None:
        with self._lock:
            if pool in self.pools:
                self.pools.remove(pool)

    def sample_pools(self) -> None:
        """The pools' own figures (``get_stats``), summed over this process's pools."""
        size = in_use = waiting = 0
        for pool in list(self.pools):
            stats = pool.get_stats()
            size += stats.get("pool_max", 0)
            in_use += stats.get("pool_size", 0) - stats.get("pool_available", 0)
            waiting += stats.get("requests_waiting", 0)
        gauges = db_pool_gauges()
        for gauge, value in zip(gauges, (size, in_use, waiting), strict=True):
            gauge.set(value)


_instruments = Instruments()


def _pool_timeout() -> contract.ContractError:
    if _reachability.down:
        db_errors().labels("unavailable").inc()
        return contract.unavailable("database unavailable")
    db_errors().labels("pool_timeout").inc()
    return contract.unavailable("database pool exhausted")


def _query_failed(exc: Exception) -> contract.ContractError:
    import psycopg

    if isinstance(exc, psycopg.OperationalError):  # connection lost, server restarting
        _reachability.down = True
        db_errors().labels("unavailable").inc()
        return contract.unavailable("database unavailable")
    db_errors().labels("query").inc()
    return contract.unavailable("database error")


def _as_contract_error(exc: Exception) -> Exception:
    """A database failure as its 503; anything else (a ContractError, a bug) as it is."""
    import psycopg

    return _query_failed(exc) if isinstance(exc, psycopg.Error) else exc


def _not_configured() -> contract.ContractError:
    db_errors().labels("unavailable").inc()
    return contract.unavailable("database not configured: set DATABASE_URL")


def _pool_options(settings: ServiceSettings, size: int, name: str) -> dict[str, Any]:
    return dict(
        conninfo=settings.database_url, min_size=size, max_size=size, name=name,
        timeout=settings.db_pool_timeout_s, reconnect_timeout=RECONNECT_S, open=False,
        # Autocommit: a read is one round trip, with no BEGIN/COMMIT around it.
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
    )


def with_password_file(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The password in ``LOADLAB_DB_PASSWORD_FILE`` over the URL's, read at each connect.

    In compose the database generates its password when none is configured and keeps it
    in a file the services mount (postgres/entrypoint.sh): it can appear or change after
    the service started, so it is read when a connection is made, not once.
    """
    path = os.environ.get("LOADLAB_DB_PASSWORD_FILE")
    if not path:
        return kwargs
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.read().rstrip("\n")
    except OSError:
        return kwargs
    return {**kwargs, "password": secret} if secret else kwargs


def _tracked_sync_class() -> type[psycopg.Connection[Any]]:
    import psycopg

    class TrackedConnection(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = super().connect(*args, **with_password_file(kwargs))
            except psycopg.OperationalError:
                _reachability.down = True
                raise
            _reachability.down = False
            return conn

    return TrackedConnection


def _tracked_async_class() -> type[psycopg.AsyncConnection[Any]]:
    import psycopg

    class TrackedAsyncConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = await super().connect(*args, **with_password_file(kwargs))
            except psycopg.OperationalError:
                _reachability.down = True
                raise
            _reachability.down = False
            return conn

    return TrackedAsyncConnection


class SyncDatabase:
    """A ``ConnectionPool`` for this worker process: Flask, and FastAPI's /db/blocking."""

    def __init__(self, settings: ServiceSettings, size: int | None = None,
                 name: str = "loadlab") -> None:
        self.settings = settings
        self.size = size or pool_size(settings)
        self.name = name
        self.pool: psycopg_pool.ConnectionPool[Any] | None = None

    def open(self) -> SyncDatabase:
        """Start connecting in the background; a database that is down is no start-up error."""
        if not self.settings.database_url or self.pool is not None:
            return self
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(
            connection_class=_tracked_sync_class(),
            **_pool_options(self.settings, self.size, self.name))
        self.pool.open(wait=False)
        _instruments.attach(self.pool)
        atexit.register(self.close)
        return self

    def close(self) -> None:
        if self.pool is not None:
            _instruments.detach(self.pool)
            self.pool.close(timeout=1.0)
            self.pool = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        from psycopg_pool import PoolTimeout

        if self.pool is None:
            raise _not_configured()
        started = time.perf_counter()
        try:
            conn = self.pool.getconn(timeout=_reachability.wait_s(self.settings.db_pool_timeout_s))
        except PoolTimeout:
            raise _pool_timeout() from None
        _instruments.pool_wait.observe(time.perf_counter() - started)
        try:
            yield conn
        except Exception as exc:
            raise _as_contract_error(exc) from None
        finally:
            self.pool.putconn(conn)  # a broken connection is discarded and replaced

    def _fetch_world(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        started = time.perf_counter()
        row = conn.execute(SELECT_WORLD, (random_id(),)).fetchone()
        _instruments.queries["world"].observe(time.perf_counter() - started)
        return world(row)

    def world(self) -> dict[str, int]:
        with self.connection() as conn:
            return self._fetch_world(conn)

    def worlds(self, n: int) -> list[dict[str, int]]:
        with self.connection() as conn:
            return [self._fetch_world(conn) for _ in range(n)]

    def sleep(self, ms: int) -> None:
        with self.connection() as conn:
            started = time.perf_counter()
            conn.execute(SLEEP, (ms / 1000,))
            _instruments.queries["sleep"].observe(time.perf_counter() - started)


class AsyncDatabase:
    """An ``AsyncConnectionPool`` for this worker's event loop: FastAPI."""

    def __init__(self, settings: ServiceSettings, size: int | None = None,
                 name: str = "loadlab") -> None:
        self.settings = settings
        self.size = size or pool_size(settings)
        self.name = name
        self.pool: psycopg_pool.AsyncConnectionPool[Any] | None = None

    async def open(self) -> AsyncDatabase:
        if not self.settings.database_url or self.pool is not None:
            return self
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            connection_class=_tracked_async_class(),
            **_pool_options(self.settings, self.size, self.name))
        await self.pool.open(wait=False)
        _instruments.attach(self.pool)
        return self

    async def close(self) -> None:
        if self.pool is not None:
            _instruments.detach(self.pool)
            await self.pool.close(timeout=1.0)
            self.pool = None

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        from psycopg_pool import PoolTimeout

        if self.pool is None:
            raise _not_configured()
        started = time.perf_counter()
        try:
            conn = await self.pool.getconn(
                timeout=_reachability.wait_s(self.settings.db_pool_timeout_s))
        except PoolTimeout:
            raise _pool_timeout() from None
        _instruments.pool_wait.observe(time.perf_counter() - started)
        return conn

    async def _using(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``work`` on a pooled connection; its failures as 503s. A plain coroutine, not an
        async context manager: this runs on every database request of the event loop."""
        conn = await self._acquire()
        try:
            return await work(conn)
        except Exception as exc:
            raise _as_contract_error(exc) from None
        finally:
            await self.pool.putconn(conn)  # type: ignore[union-attr]

    async def _fetch_world(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
        started = time.perf_counter()
        cursor = await conn.execute(SELECT_WORLD, (random_id(),))
        row = await cursor.fetchone()
        _instruments.queries["world"].observe(time.perf_counter() - started)
        return world(row)

    async def world(self) -> dict[str, int]:
        return await self._using(self._fetch_world)

    async def worlds(self, n: int) -> list[dict[str, int]]:
        async def rows(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, int]]:
            return [await self._fetch_world(conn) for _ in range(n)]

        return await self._using(rows)

    async def sleep(self, ms: int) -> None:
        async def hold(conn: psycopg.AsyncConnection[Any]) -> None:
            started = time.perf_counter()
            await conn.execute(SLEEP, (ms / 1000,))
            _instruments.queries["sleep"].observe(time.perf_counter() - started)

        await self._using(hold)
