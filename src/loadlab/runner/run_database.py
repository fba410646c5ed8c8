"""The database of a run's database scenarios: started natively when none is given, and
watched while the services load it.

``RunDatabase`` is one per ``run``/``matrix``/``claims`` invocation: ``DATABASE_URL`` when
set (an existing server: nothing is started or stopped), else a throwaway cluster
(``loadlab.pgcluster.PostgresCluster``) pinned to the service's cores, seeded, and removed
at the end (it also dies with the runner: see the cluster's docs). Per run, a
``DatabaseWatch`` counts the database's connections twice a second and reads its
process tree's CPU over the measured window, for the run record's ``database`` field.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadlab.proctree import tree_figures
from loadlab.runner.native import pin_tree
from loadlab.runner.options import OptionError, RunSpec
from loadlab.runs.record import Database
from loadlab.scenarios import DB_SCENARIOS

WATCH_INTERVAL_S = 0.5
CONNECTIONS_SQL = ("SELECT count(*) FROM pg_stat_activity "
                   "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")


def needs_database(specs: Sequence[RunSpec]) -> bool:
    return any(spec.scenario in DB_SCENARIOS for spec in specs)


@dataclass
class RunDatabase:
    """The database the services of one invocation use."""

    url: str = ""
    pid: int | None = None  # the postmaster, when the database is local and ours
    info: Database = field(default_factory=Database)
    _cluster: Any = None

    def start(self, server_cores: Sequence[int] = ()) -> RunDatabase:
        from loadlab.pgcluster import (
            ClusterError,
            PostgresCluster,
            PostgresUnavailable,
            describe_server,
        )

        given = os.environ.get("DATABASE_URL", "")
        try:
            if given:
                self.url = given
                self.info = {**describe_server(given), "source": "DATABASE_URL"}
                return self
            self._cluster = PostgresCluster().start()
        except (PostgresUnavailable, ClusterError) as exc:
            raise OptionError(f"the database scenarios need PostgreSQL: {exc}") from None
        except Exception as exc:  # psycopg's errors: the given server cannot be reached
            from loadlab.service_db import redact  # libpq may quote the URL, password and all

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OptionError(f"DATABASE_URL cannot be used: {redact(first, given)}") from None
        self.url, self.pid = self._cluster.url, self._cluster.pid
        described = self._cluster.describe()
        self.info = {"version": described["version"],
                     "max_connections": described["max_connections"],
                     "shared_buffers": described["shared_buffers"],
                     "source": described["source"], "binaries": described["binaries"]}
        if server_cores:
            # With the service, not with Locust: the database is part of what is measured.
            pin_tree(self._cluster.pid, tuple(server_cores))
            self.info["cores"] = list(server_cores)
        return self

    def stop(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.stop()

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url}

    def watch(self) -> DatabaseWatch:
        return DatabaseWatch(self.url, self.pid).start()


@dataclass
class DatabaseWatch:
    """Connections and CPU of the database during one run."""

    url: str
    pid: int | None
    peak: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    _cpu_at_mark: float | None = None
    _marked_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> DatabaseWatch:
        self._thread = threading.Thread(target=self._loop, name="loadlab-db-watch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        import psycopg

        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                row = conn.execute(CONNECTIONS_SQL).fetchone()
            except psycopg.Error:
                conn = None  # a restarting database: try again on the next beat
                continue
            count = int(row[0]) if row else 0
            self.samples.append((time.monotonic(), count))
            self.peak = max(self.peak, count)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _cpu(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return tree_figures(self.pid)[0]
        except Exception:  # the cluster went away
            return None

    def mark(self) -> None:
        """The measured window begins."""
        self._cpu_at_mark = self._cpu()
        self._marked_at = time.monotonic()

    def finish(self, window_s: float) -> Database:
        """The run record's ``database`` figures; stops the watch."""
        cpu_end = self._cpu()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        cpu = (cpu_end - self._cpu_at_mark
               if cpu_end is not None and self._cpu_at_mark is not None else None)
        measured = [n for t, n in self.samples
                    if self._marked_at is not None and t >= self._marked_at]
        return {
            "cpu_seconds": round(cpu, 3) if cpu is not None else None,
            "cpu_cores_used": round(cpu / window_s, 3) if cpu is not None and window_s else None,
            "connections_peak": self.peak,
            "connections_mean": round(sum(measured) / len(measured), 2) if measured else None,
        }
