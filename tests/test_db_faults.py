"""The database stopped and restarted under load: 503 with the body, never a hang or a
lost worker, and the services serve again by themselves once it is back."""

from __future__ import annotations

import http.client
import signal
import threading
from collections.abc import Iterator

import pytest
from support.metrics_scrape import fetch, scrape, wait_for, worker_pids
from support.services import VARIANTS, db_service

from loadlab.pgcluster import PostgresCluster, PostgresUnavailable

pytestmark = pytest.mark.slow  # a real PostgreSQL stopped and started under load

UNAVAILABLE = b'{"detail":"database unavailable"}'


@pytest.fixture(scope="module")
def cluster(database_url: str) -> Iterator[PostgresCluster]:
    """A cluster of this module's own, which it may stop and start."""
    del database_url  # skips (or fails in CI) the same way when PostgreSQL is missing
    try:
        own = PostgresCluster().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield own
    finally:
        own.stop()


class Load:
    """GET /db in a bounded loop on its own thread, recording every answer."""

    def __init__(self, url: str, limit: int = 20_000) -> None:
        self.url, self.limit = url, limit
        self.answers: list[tuple[int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.answers) < self.limit:
            try:
                self.answers.append(fetch(self.url, "/db", timeout_s=20))
            except (OSError, http.client.HTTPException) as exc:  # a hang or a reset
                self.answers.append((0, repr(exc).encode()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def count(self, status: int) -> int:
        return sum(1 for code, _ in self.answers if code == status)


@pytest.mark.parametrize("variant", ["fastapi-uvicorn", "flask-gthread", "flask-gevent"])
def test_database_restart_mid_run(cluster: PostgresCluster, variant: str) -> None:
    with db_service(cluster.url, **VARIANTS[variant]) as service:
        workers = worker_pids(service)
        with Load(service.url) as load:
            wait_for(lambda: load.count(200) >= 50, 30, "50 answered rows before the restart")
            cluster.restart()
            seen = len(load.answers)
            wait_for(lambda: load.count(200) >= 50 + 1 and
                     any(code == 200 for code, _ in load.answers[seen:][-20:]) and
                     all(code == 200 for code, _ in load.answers[-20:]), 60,
                     "20 answered rows in a row after the restart")
        statuses = {code for code, _ in load.answers}
        assert statuses <= {200, 503}, f"only rows or 503s, never a hang or reset: {statuses}"
        failed = [body for code, body in load.answers if code == 503]
        assert failed, "the restart broke pooled connections: some requests must see it"
        assert set(failed) == {UNAVAILABLE}
        assert worker_pids(service) == workers, "no worker lost"
        assert scrape(service.url).value("loadlab_db_errors_total", kind="unavailable") >= 1


def test_database_down_answers_at_once_and_recovers(cluster: PostgresCluster) -> None:
    """With the database stopped, requests answer 503 in about DOWN_WAIT_S, not the pool
    timeout; /healthz stays 200 (liveness); rows come back once it is up again."""
    with db_service(cluster.url, timeout_s=30, framework="fastapi", workers=1) as service:
        assert fetch(service.url, "/db")[0] == 200
        assert cluster.proc is not None
        cluster.proc.send_signal(signal.SIGINT)  # fast shutdown: sessions are ended
        cluster.proc.wait(timeout=30)
        try:
            answers = [fetch(service.url, "/db", timeout_s=25) for _ in range(5)]
            assert {code for code, _ in answers} == {503}
            assert {body for _, body in answers} == {UNAVAILABLE}
            assert fetch(service.url, "/healthz")[0] == 200
        finally:
            cluster.restart()  # from stopped: starts it again
        wait_for(lambda: fetch(service.url, "/db")[0] == 200, 30, "rows again")
