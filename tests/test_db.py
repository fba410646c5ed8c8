"""The database endpoints on every variant, against a real PostgreSQL behind real pools.

The contract over /db, /queries, /db/sleep and /db/blocking (each answer held against the
OpenAPI document), the pool's figures exact under concurrent load, a pool exhausted past
its timeout answered 503 while the requests holding it are still running, and gevent's
workers waiting on the database together (psycopg cooperating with the patched loop).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from support.contract_check import check
from support.metrics_scrape import fetch, scrape, wait_for
from support.services import VARIANTS, db_service

from loadlab import contract, service_db
from loadlab.launch import ServiceProcess, free_port
from loadlab.scenarios import WORLD_ROWS
from loadlab.serve import ServerConfig

pytestmark = pytest.mark.slow  # services behind a real PostgreSQL


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def service(request: pytest.FixtureRequest, database_url: str) -> Iterator[ServiceProcess]:
    proc = db_service(database_url, **VARIANTS[request.param]).start()
    try:
        yield proc
    finally:
        proc.stop()


def get(client: httpx.Client, url: str) -> httpx.Response:
    return check(client.get(url))


def _is_world(row: object) -> bool:
    return (isinstance(row, dict) and sorted(row) == ["id", "randomNumber"]
            and 1 <= row["id"] <= WORLD_ROWS and 1 <= row["randomNumber"] <= WORLD_ROWS)


def test_db_answers_a_seeded_row(client: httpx.Client, database_url: str) -> None:
    rows = [get(client, "/db").json() for _ in range(5)]
    assert all(_is_world(row) for row in rows)
    with psycopg.connect(database_url) as conn:  # the row is the database's, not made up
        for row in rows:
            stored = conn.execute("SELECT randomnumber FROM world WHERE id = %s",
                                  (row["id"],)).fetchone()
            assert stored == (row["randomNumber"],)


@pytest.mark.parametrize("n", [1, 7, contract.MAX_QUERIES])
def test_queries_answers_n_rows(client: httpx.Client, n: int) -> None:
    rows = get(client, f"/queries?n={n}").json()
    assert len(rows) == n and all(_is_world(row) for row in rows)


@pytest.mark.parametrize("query", ["n=0", f"n={contract.MAX_QUERIES + 1}", "n=abc", "",
                                   "n=1&n=2"])
def test_queries_out_of_range_is_422(client: httpx.Client, query: str) -> None:
    reply = get(client, f"/queries?{query}")
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["query", "n"]


@pytest.mark.parametrize("path", ["/db/sleep", "/db/blocking"])
def test_db_sleep_holds_a_connection(client: httpx.Client, path: str) -> None:
    assert get(client, f"{path}?ms=20").json() == {"slept_ms": 20}
    assert get(client, f"{path}?ms=-1").status_code == 422
    assert get(client, f"{path}?ms={contract.MAX_IO_MS + 1}").status_code == 422


def test_info_shows_the_pool_size(client: httpx.Client, service: ServiceProcess) -> None:
    info = get(client, "/info").json()
    assert info["db_pool_size"] == service_db.default_pool_size(service.cfg.worker_class,
                                                        service.cfg.threads)


# --- pools under load -------------------------------------------------------------------

def _active_sleeps(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'").fetchone()
    return int(row[0]) if row else 0


def _hold(url: str, path: str, count: int) -> tuple[list[threading.Thread], list[int]]:
    statuses: list[int] = []

    def one() -> None:
        statuses.append(fetch(url, path)[0])

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


@pytest.mark.parametrize("variant", ["fastapi-uvicorn", "flask-gthread"])
def test_pool_metrics_are_exact_under_concurrent_load(database_url: str, variant: str) -> None:
    with db_service(database_url, **VARIANTS[variant]) as service:
        workers = service.cfg.workers
        size = service_db.default_pool_size(service.cfg.worker_class, service.cfg.threads)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: fetch(service.url, "/queries?n=3")[0],
                                     range(200)))
        assert statuses == [200] * 200
        name = "loadlab_db_query_duration_seconds_count"
        wait_for(lambda: scrape(service.url).value(name, query="world") == 600, 15,
                 "600 world queries counted over the workers")
        after = scrape(service.url)
        assert after.value("loadlab_db_pool_wait_seconds_count") == 200
        assert after.value("loadlab_db_pool_size") == workers * size
        # Held connections show as in use, in the pools and in the database alike.
        held = size  # at most one pool's worth, so that none has to wait
        threads, holding = _hold(service.url, "/db/sleep?ms=6000", held)
        try:
            wait_for(lambda: _active_sleeps(database_url) == held, 10, "sleeps in the database")
            # Read on the supervisor's side port: a gthread worker whose threads all hold a
            # sleep answers its own /metrics only once one of them is done.
            side = service.metrics_url.removesuffix("/metrics")
            wait_for(lambda: scrape(side).value("loadlab_db_pool_in_use") == held, 10,
                     f"{held} connections in use")
        finally:
            for thread in threads:
                thread.join()
        assert holding == [200] * held
        assert scrape(service.url).value("loadlab_db_errors_total") == 0


@pytest.mark.parametrize("variant", ["fastapi-uvicorn", "flask-gevent"])
def test_exhausted_pool_answers_503_while_the_holders_still_run(
    database_url: str, variant: str
) -> None:
    options = dict(VARIANTS[variant], workers=1)
    with db_service(database_url, pool_size=2, timeout_s=0.5, **options) as service:
        threads, holding = _hold(service.url, "/db/sleep?ms=4000", 2)
        try:
            wait_for(lambda: _active_sleeps(database_url) == 2, 10, "two held connections")
            with httpx.Client(base_url=service.url, timeout=20) as client:
                reply = check(client.get("/db"))
            still_running = sum(thread.is_alive() for thread in threads)
        finally:
            for thread in threads:
                thread.join()
        assert reply.status_code == 503
        assert reply.json() == {"detail": "database pool exhausted"}
        assert reply.headers["retry-after"] == str(contract.RETRY_AFTER_S)
        assert still_running == 2, "the 503 came only after the holders let go"
        assert holding == [200, 200]
        errors = scrape(service.url)
        assert errors.value("loadlab_db_errors_total", kind="pool_timeout") == 1


def test_gevent_workers_wait_on_the_database_together(database_url: str) -> None:
    """One gevent worker with a 10-connection pool holds many database waits at once: the
    driver yields to the hub. Were it blocking, the database would see one at a time."""
    with db_service(database_url, framework="flask", worker_class="gevent", workers=1) as svc:
        threads, statuses = _hold(svc.url, "/db/sleep?ms=2500", 8)
        try:
            wait_for(lambda: _active_sleeps(database_url) == 8, 10, "8 sleeps at once")
        finally:
            for thread in threads:
                thread.join()
        assert statuses == [200] * 8


def test_malformed_database_url_refuses_to_start() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://host:notaport/x"}
    result = subprocess.run(
        [sys.executable, "-m", "loadlab", "serve", "flask", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL is malformed" in lines[0], result.stderr


@pytest.mark.parametrize("url", [
    "postgresql://loadlab:S3cretPW@[::1:5432/loadlab",
    "postgresql://loadlab:my S3cretPW@127.0.0.1/loadlab",
    "postgresql://loadlab:S3cretPW%zz@127.0.0.1/loadlab",
    "postgresql://loadlab@127.0.0.1/loadlab?password=S3cretPW%zz",
    "host=127.0.0.1 password='my S3cretPW' bogus=1",
    "postgresql://loadlab:S3cretPW@127.0.0.1/loadlab?bogus=1",
])
def test_a_malformed_database_url_never_prints_its_password(url: str) -> None:
    from loadlab.service_db import check_url

    with pytest.raises(ValueError, match="DATABASE_URL is malformed") as refused:
        check_url(url)
    assert "S3cretPW" not in str(refused.value) and "\n" not in str(refused.value)


def test_serve_with_a_malformed_database_url_hides_the_password() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://loadlab:S3cretPW@[::1:5432/loadlab"}
    result = subprocess.run(
        [sys.executable, "-m", "loadlab", "serve", "fastapi", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "DATABASE_URL is malformed" in line and "loadlab:***@" in line
    assert "S3cretPW" not in result.stderr


@pytest.mark.parametrize("name, value, reason", [
    ("LOADLAB_DB_POOL_SIZE", "abc", "valid integer"),
    ("LOADLAB_DB_POOL_SIZE", "0", "greater than or equal to 1"),
    ("LOADLAB_DB_POOL_TIMEOUT_S", "-1", "greater than 0"),
])
def test_bad_pool_setting_refuses_to_start_in_one_line(name: str, value: str, reason: str
                                                       ) -> None:
    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "loadlab", "serve", "flask", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{name}={value!r}" in lines[0] and reason in lines[0], lines


def test_empty_pool_settings_mean_the_defaults() -> None:
    """What compose passes when the knobs are not set: the worker class's pool size."""
    env = {**os.environ, "LOADLAB_DB_POOL_SIZE": "", "LOADLAB_DB_POOL_TIMEOUT_S": ""}
    cfg = ServerConfig(framework="flask", worker_class="gthread", threads=3, port=free_port())
    with ServiceProcess(cfg, env=env) as svc, httpx.Client(base_url=svc.url) as client:
        info = check(client.get("/info")).json()
    assert info["db_pool_size"] == 3


def test_without_a_database_the_endpoints_answer_503(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    cfg = ServerConfig(framework="fastapi", port=free_port())
    with ServiceProcess(cfg, env=env) as svc, httpx.Client(base_url=svc.url) as client:
        reply = check(client.get("/db"))
        assert reply.status_code == 503
        assert reply.json() == {"detail": "database not configured: set DATABASE_URL"}
        assert check(client.get("/healthz")).status_code == 200  # liveness, not readiness
