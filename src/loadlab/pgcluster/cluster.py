"""A throwaway PostgreSQL cluster: initdb in a temporary directory, the postmaster as a child.

Nobody else gets in: every cluster has its own random password (scram-sha-256 for TCP and
the socket alike, no ``trust``), its socket sits in a 0700 directory, and the clusters live
under a per-user directory (``TMPDIR/loadlab-pg.UID``) that nobody else can write to. The
password travels only inside ``url`` (the ``DATABASE_URL`` the lab passes on).

Nothing outlives its owner. The postmaster is started directly (not daemonized by
``pg_ctl``) in its own session, with ``PR_SET_PDEATHSIG`` set to SIGINT (PostgreSQL's fast
shutdown), so that it stops when the process that started it ends, even by SIGKILL;
``stop()`` shuts it down fast and removes the directory, and the next start sweeps
directories whose owner died; it follows no link and signals only a postmaster proven to be
one of ours (the account it runs as, the start time its pid file records, its data
directory). As root, initdb and the postmaster run as the ``postgres`` user (``nobody``
where there is none): initdb refuses root. The switch happens in the forked child itself,
so the postmaster's parent is the owner, with no ``runuser`` between. When that account
cannot reach the binaries (a checkout in a 0700 directory such as /root, with the
``pgserver`` wheel inside its venv), the cluster runs a linked or copied install tree kept
in its own directory.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from loadlab.errors import UserError
from loadlab.pgcluster.binaries import Binaries, PostgresUnavailable, find_binaries
from loadlab.pgcluster.seed import seed
from loadlab.procs import free_port, is_alive, tie_to_parent
from loadlab.runs.record import Database

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


def clusters_root() -> Path:
    """``TMPDIR/loadlab-pg.UID``: ours alone (0700; as root 0710 with the group of the
    account the clusters run as, which must reach its own cluster's directory).

    A directory of that name that is a link, or not ours, is refused: someone else made it.
    """
    base = Path(tempfile.gettempdir()) / f"loadlab-pg.{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o700)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ClusterError(f"{base} cannot be used ({exc.strerror}): remove it or set TMPDIR") \
            from None
    try:
        if os.fstat(fd).st_uid != os.getuid():
            raise ClusterError(f"{base} belongs to another user: remove it or set TMPDIR")
        account = run_user()
        if account is None:
            os.fchmod(fd, 0o700)
        else:
            os.fchown(fd, -1, account.pw_gid)
            os.fchmod(fd, 0o710)
    finally:
        os.close(fd)
    return base


def _cluster_uid() -> int:
    """The account a postmaster of ours runs as."""
    account = run_user()
    return account.pw_uid if account is not None else os.getuid()


def _postmaster_of(data: Path, uid: int) -> psutil.Process | None:
    """The live postmaster of ``data``, proven ours: ``data`` is a real directory (no link),
    and the process its pid file names runs as ``uid``, started when the pid file says,
    in that directory."""
    try:
        if not stat.S_ISDIR(os.lstat(data).st_mode):
            return None
        fd = os.open(data / "postmaster.pid", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, errors="replace") as fh:
            lines = fh.read(4096).splitlines()
        pid, started = int(lines[0]), float(lines[2])
        proc = psutil.Process(pid)
        here = os.path.realpath(data)
        if (proc.uids().real != uid or abs(proc.create_time() - started) > 2.0
                or os.path.realpath(lines[1]) != here or not works_in(proc, here)):
            return None
        return proc
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def works_in(proc: psutil.Process, data: str) -> bool:
    """Whether the postmaster ``proc`` serves the data directory ``data``: its working
    directory, or, where the kernel hides that (root without CAP_SYS_PTRACE, as in a
    container, reading another account's process), the ``-D`` it was started with."""
    try:
        return os.path.realpath(proc.cwd()) == data
    except psutil.AccessDenied:
        argv = proc.cmdline()
        return any(flag == "-D" and os.path.realpath(value) == data
                   for flag, value in itertools.pairwise(argv))


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
    """Stop and remove clusters whose owner died (its pid is in the directory's name).

    Only real directories (never a link) owned by us or by the account clusters run as,
    under a root that is ours; only a postmaster proven ours is signalled.
    """
    try:
        base = root if root is not None else clusters_root()
        uid = _cluster_uid()
        base_stat = os.lstat(base)
    except (OSError, ClusterError, PostgresUnavailable):
        return []
    if not stat.S_ISDIR(base_stat.st_mode) or base_stat.st_uid != os.getuid():
        return []
    removed = []
    with os.scandir(base) as entries:
        candidates = [entry for entry in entries if entry.name.startswith(DIR_PREFIX)]
    for entry in candidates:
        path = Path(entry.path)
        owner = _owner_pid(path)
        try:
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid not in (os.getuid(), uid):
                continue
        except OSError:
            continue
        if owner is None or is_alive(owner):
            continue
        postmaster = _postmaster_of(path / "data", uid)
        if postmaster is not None:
            _end(postmaster, timeout_s=30.0)
        shutil.rmtree(path, ignore_errors=True)  # rmtree never follows a link inside
        removed.append(path)
    return removed


def _runs_as(binaries: Binaries, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` can run the binaries where they are (every directory above them
    must let it through, and their libraries too): asked of the kernel by running
    ``initdb --version`` and ``postgres --version`` as it."""
    for name in ("initdb", "postgres"):
        try:
            done = subprocess.run([binaries.exe(name), "--version"], capture_output=True,
                                  timeout=30, check=False, cwd="/", env=_environment(account),
                                  **_credentials(account))
        except OSError:
            return False
        if done.returncode != 0:
            return False
    return True


def _mirror(source: Path, target: Path) -> None:
    """``source``'s tree at ``target``, readable by all: hard links where the file already
    is, copies (made readable and, where the owner may run it, runnable) elsewhere."""
    for top, dirs, files in os.walk(source):
        here = target / Path(top).relative_to(source)
        here.mkdir(mode=0o755, exist_ok=True)
        os.chmod(here, 0o755)
        for name in [*files, *dirs]:
            src, dst = Path(top, name), here / name
            info = os.lstat(src)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISDIR(info.st_mode):
                continue
            else:
                wanted = info.st_mode | stat.S_IROTH | stat.S_IRGRP
                if info.st_mode & stat.S_IXUSR:
                    wanted |= stat.S_IXOTH | stat.S_IXGRP
                if wanted == info.st_mode:
                    try:
                        os.link(src, dst)
                        continue
                    except OSError:
                        pass
                shutil.copy2(src, dst, follow_symlinks=False)
                os.chmod(dst, stat.S_IMODE(wanted))


def describe_server(url: str) -> Database:
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
    """A throwaway cluster on 127.0.0.1 (and a Unix socket in a 0700 directory), password
    auth (scram-sha-256, a random password per cluster); a context manager.

    ``url`` is ``postgresql://loadlab:PASSWORD@127.0.0.1:PORT/loadlab``; ``pid`` is the
    postmaster, the root of the database's process tree (its CPU is the database's CPU).
    ``binaries`` stays what was found; ``runs`` is what actually runs (a readable mirror
    of it when the account the cluster runs as cannot reach it).
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
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), init=False,
                          repr=False)
    runs: Binaries | None = field(default=None, init=False)

    # -- what callers read ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url(self.database)

    def _url(self, database: str) -> str:
        # token_urlsafe's alphabet needs no quoting in a URL
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

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
        account = run_user()
        root = clusters_root()
        sweep_stale_clusters(root)
        self.directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=root))
        atexit.register(self.stop)
        try:
            if account is not None:
                os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.runs = self._reachable_binaries(account)
            self.socket_dir.mkdir(mode=0o700)
            os.chmod(self.socket_dir, 0o700)
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

    def _reachable_binaries(self, account: pwd.struct_passwd | None) -> Binaries:
        """The binaries as found, or, when ``account`` cannot reach them, a mirror inside
        this cluster's directory of their install tree (bin/, lib/, share/) and, beside
        its package, the libraries a wheel vendors (auditwheel's ``<package>.libs``, which
        the binaries find relative to themselves)."""
        assert self.binaries is not None and self.directory is not None
        if account is None or _runs_as(self.binaries, account):
            return self.binaries
        tree = self.binaries.bindir.parent
        package = tree.parent
        mirror = self.directory / "pg"
        for made in (mirror, mirror / package.name):
            made.mkdir(mode=0o755)
            os.chmod(made, 0o755)
        _mirror(tree, mirror / package.name / tree.name)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            _mirror(libs, mirror / libs.name)
        runs = replace(self.binaries,
                       bindir=mirror / package.name / tree.name / self.binaries.bindir.name)
        if not _runs_as(runs, account):
            raise ClusterError(f"{account.pw_name} can run neither the PostgreSQL binaries in "
                               f"{self.binaries.bindir} nor a copy of them")
        return runs

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        assert self.runs is not None and self.directory is not None
        pwfile = self.directory / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            if account is not None:
                os.fchown(fh.fileno(), account.pw_uid, account.pw_gid)
            fh.write(self.password + "\n")
        argv = [self.runs.exe("initdb"), "-D", str(self.directory / "data"),
                "-A", "scram-sha-256", f"--pwfile={pwfile}", "-U", self.user, "-E", "UTF8",
                "--locale=C", "--no-sync"]
        try:
            with self.log_path.open("ab") as log:
                if account is not None:
                    os.fchown(log.fileno(), account.pw_uid, account.pw_gid)
                done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False,
                                      cwd=self.directory, env=_environment(account),
                                      timeout=self.ready_timeout_s, **_credentials(account))
        finally:
            pwfile.unlink(missing_ok=True)
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
        assert self.runs is not None and self.directory is not None
        argv = [self.runs.exe("postgres"), "-D", str(self.directory / "data"),
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
        admin = self._url("postgres")
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

        with psycopg.connect(self._url("postgres"), autocommit=True) as conn:
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
