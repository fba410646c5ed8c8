"""A throwaway PostgreSQL cluster: initdb in a temporary directory, the postmaster as a child.

Nothing outlives its owner. The postmaster is started directly (not daemonized by
``pg_ctl``) in its own session, with ``PR_SET_PDEATHSIG`` set to SIGINT (PostgreSQL's fast
shutdown), so that it stops when the process that started it ends, even by SIGKILL;
``stop()`` shuts it down fast and removes the directory, and the next start sweeps
directories whose owner died. As root, initdb and the postmaster run as the ``postgres``
user (``nobody`` where there is none): initdb refuses root. The switch happens in the
forked child itself, so the postmaster's parent is the owner, with no ``runuser`` between.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from loadlab.database.binaries import Binaries, PostgresUnavailable, find_binaries
from loadlab.database.seed import seed
from loadlab.errors import UserError
from loadlab.procs import free_port, is_alive, tie_to_parent

DIR_PREFIX = "loadlab-pg-"
# A lab database is thrown away: durability buys nothing and costs fsyncs on a shared disk.
LAB_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ClusterError(UserError, RuntimeError):
    """The cluster did not initialise or start; the message carries its log's last lines."""


def run_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and neither a postgres nor a nobody user exists")


def _credentials(account: pwd.struct_passwd | None) -> dict[str, Any]:
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _environment(account: pwd.struct_passwd | None) -> dict[str, str]:
    """Ours without PG* variables (PGDATA, PGHOST... would redirect the tools)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if account is not None:
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    return env


def _log_tail(path: Path, lines: int = 6) -> str:
    try:
        with path.open(errors="replace") as fh:
            tail = deque((line.rstrip() for line in fh if line.strip()), maxlen=lines)
    except OSError:
        return "(no log)"
    return " | ".join(tail) or "(empty log)"


def _owner_pid(path: Path) -> int | None:
    owner = path.name[len(DIR_PREFIX):].split("-", 1)[0]
    return int(owner) if owner.isdigit() else None


def _postmaster_of(data: Path) -> psutil.Process | None:
    """The live postmaster of ``data`` (its pid file, checked against its working directory)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        return proc if Path(proc.cwd()).resolve() == data.resolve() else None
    except (OSError, ValueError, psutil.Error):
        return None


def _end(proc: psutil.Process | subprocess.Popen[bytes], timeout_s: float) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 10.0),
                        (signal.SIGKILL, 10.0)):
        try:
            proc.send_signal(sig)
            proc.wait(timeout=wait_s)
            return
        except (ProcessLookupError, psutil.NoSuchProcess):
            return
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            continue


def sweep_stale_clusters(root: Path | None = None) -> list[Path]:
    """Stop and remove clusters whose owner died (its pid is in the directory's name)."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = _owner_pid(path)
        if owner is None or is_alive(owner):
            continue
        postmaster = _postmaster_of(path / "data")
        if postmaster is not None:
            _end(postmaster, timeout_s=30.0)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def describe_server(url: str) -> dict[str, Any]:
    """What the server at ``url`` says about itself (works for any server, not only ours)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}".encode()).fetchone()
            return str(row[0]) if row else ""

        return {
            "version": show("server_version"),
            "version_num": int(show("server_version_num")),
            "max_connections": int(show("max_connections")),
            "shared_buffers": show("shared_buffers"),
        }


@dataclass
class PostgresCluster:
    """A throwaway cluster on 127.0.0.1 (and a Unix socket), trust auth; a context manager.

    ``url`` is ``postgresql://loadlab@127.0.0.1:PORT/loadlab``; ``pid`` is the postmaster,
    the root of the database's process tree (its CPU is the database's CPU).
    """

    binaries: Binaries | None = None
    max_connections: int = 100
    settings: dict[str, str] = field(default_factory=dict)  # extra ``-c`` settings
    user: str = "loadlab"
    database: str = "loadlab"
    seed_data: bool = True
    die_with_owner: bool = True
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 30.0
    directory: Path | None = field(default=None, init=False)
    port: int = field(default=0, init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    # -- what callers read ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ClusterError("the cluster is not running")
        return self.proc.pid

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None
        return self.directory / "sock"

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "postgres.log"

    def log_tail(self, lines: int = 6) -> str:
        return _log_tail(self.log_path, lines) if self.directory else "(no log)"

    def server_settings(self) -> dict[str, str]:
        return {**LAB_SETTINGS, "max_connections": str(self.max_connections), **self.settings}

    def describe(self) -> dict[str, Any]:
        """Version, settings (read back with SHOW), where the binaries came from, the port."""
        assert self.binaries is not None
        return {
            **describe_server(self.url),
            "source": self.binaries.source,
            "binaries": str(self.binaries.bindir),
            "port": self.port,
            "pid": self.pid,
            "settings": self.server_settings(),
        }

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> PostgresCluster:
        try:
            import psycopg  # noqa: F401  (fail before initdb, with the install hint)
        except ImportError:
            raise PostgresUnavailable("psycopg is not installed: pip install 'loadlab[db]'") \
                from None
        if self.binaries is None:
            self.binaries = find_binaries()
        sweep_stale_clusters()
        account = run_user()
        self.directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        atexit.register(self.stop)
        try:
            if account is not None:
                os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.socket_dir.mkdir()
            if account is not None:
                os.chown(self.socket_dir, account.pw_uid, account.pw_gid)
            self._initdb(account)
            self._start_postmaster(account)
            self._create_database()
            if self.seed_data:
                seed(self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        assert self.binaries is not None and self.directory is not None
        argv = [self.binaries.exe("initdb"), "-D", str(self.directory / "data"),
                "-A", "trust", "-U", self.user, "-E", "UTF8", "--locale=C", "--no-sync"]
        with self.log_path.open("ab") as log:
            if account is not None:
                os.fchown(log.fileno(), account.pw_uid, account.pw_gid)
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False,
                                  cwd=self.directory, env=_environment(account),
                                  timeout=self.ready_timeout_s, **_credentials(account))
        if done.returncode != 0:
            raise ClusterError(f"initdb exited with {done.returncode}: {_log_tail(self.log_path)}")

    def _start_postmaster(self, account: pwd.struct_passwd | None) -> None:
        """Start on a free port; try another when the port was taken in between."""
        assert self.binaries is not None and self.directory is not None
        for _attempt in range(3):
            self.port = free_port("127.0.0.1")
            if self._spawn(account):
                return
            if "already in use" not in _log_tail(self.log_path, 20):
                break
        raise ClusterError(f"postgres exited with {self.proc and self.proc.returncode}: "
                           f"{_log_tail(self.log_path)}")

    def restart(self) -> None:
        """Stop the postmaster (fast shutdown) if it runs, and start it again on the same
        port with the same data: a database restart as the services see it."""
        if self.proc is None or self.directory is None:
            raise ClusterError("the cluster was never started, or was removed")
        if self.proc.poll() is None:
            _end(self.proc, self.stop_timeout_s)
        if not self._spawn(run_user()):
            raise ClusterError(f"postgres did not restart: {_log_tail(self.log_path)}")

    def _spawn(self, account: pwd.struct_passwd | None) -> bool:
        """Start the postmaster on ``self.port``; True once it accepts connections."""
        assert self.binaries is not None and self.directory is not None
        argv = [self.binaries.exe("postgres"), "-D", str(self.directory / "data"),
                "-k", str(self.socket_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1"]
        for name, value in self.server_settings().items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT (fast shutdown) when the owner ends. A preexec_fn runs after Popen's
        # setgid/setuid, which would clear the death signal if it came first.
        preexec = tie_to_parent(signal.SIGINT) if self.die_with_owner else None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory, env=_environment(account), start_new_session=True,
                preexec_fn=preexec, **_credentials(account),
            )
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        """Poll a connection until it is accepted; False when the postmaster exited."""
        import psycopg

        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        delay = 0.02
        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with psycopg.connect(admin, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                pass
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        raise ClusterError(f"postgres not ready after {self.ready_timeout_s:.0f}s: "
                           f"{_log_tail(self.log_path)}")

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def stop(self) -> None:
        """Fast shutdown, then remove the directory; safe to call twice."""
        atexit.unregister(self.stop)
        if self.proc is not None:
            if self.proc.poll() is None:
                _end(self.proc, self.stop_timeout_s)
            self.proc = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
