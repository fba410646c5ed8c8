"""Security defaults, checked by running the real scripts, services and Locust: Grafana's
guarded entrypoint, the Locust UI's basic auth on a widened bind, loopback binds natively."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.contract_check import service_pids
from support.locust_process import Locust, wait_for
from support.services import start_service
from support.system_tools import missing, require

from loadlab.cli import build_parser
from loadlab.launch import free_port
from loadlab.loopback import is_loopback
from loadlab.procs import kill_group

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_ENTRY = ROOT / "grafana" / "entrypoint.sh"
LOCUST = Path(sys.executable).with_name("locust")


def grafana_entry(bind: str, password: str | None) -> subprocess.CompletedProcess[str]:
    # /bin/echo stands in for Grafana's /run.sh, which cannot run here.
    env = {"PATH": "/usr/bin:/bin", "LOADLAB_BIND": bind, "GRAFANA_ENTRYPOINT": "/bin/echo",
           "LOADLAB_PARK_ON_ERROR": "0"}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    return subprocess.run(["sh", str(GRAFANA_ENTRY), "started"], capture_output=True,
                          text=True, env=env, timeout=10, check=False)


BINDS = {"127.0.0.1": True, "127.0.0.2": True, "127.255.1.9": True, "localhost": True,
         "::1": True, "[::1]": True, "0.0.0.0": False, "::": False, "192.168.1.5": False,
         "10.0.0.1": False, "localhost.example": False, "128.0.0.1": False}


@pytest.mark.parametrize("bind", sorted(BINDS))
def test_one_loopback_rule_for_grafana_and_the_locust_ui(bind: str) -> None:
    """Grafana's shell entrypoint starts without a password exactly where the Python rule
    (the Locust UI's guard, the runner) calls the bind loopback."""
    assert is_loopback(bind) is BINDS[bind]
    result = grafana_entry(bind, "")
    assert (result.returncode == 0 and result.stdout.strip() == "started") is BINDS[bind]


@pytest.mark.parametrize("password", [None, "", "admin"])
def test_grafana_refuses_a_widened_bind_without_a_real_password(password: str | None) -> None:
    result = grafana_entry("0.0.0.0", password)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_grafana_starts_on_a_widened_bind_with_a_password() -> None:
    result = grafana_entry("0.0.0.0", "s3cret-for-test")
    assert result.returncode == 0 and result.stdout.strip() == "started"


POSTGRES_ENTRY = ROOT / "postgres" / "entrypoint.sh"
# The offline image's entrypoint: the official image's conventions on Debian's package, so
# the lab's own pair of entrypoints runs here natively on Debian's PostgreSQL.
IMAGE_ENTRY = ROOT / "postgres" / "docker-entrypoint.sh"


def pg_bindir() -> Path:
    require("postgresql", missing("postgresql"))
    return sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))[-1].parent


class Volume:
    """A data directory standing in for the compose volume, and the auth directory (the
    tmpfs volume the services mount), owned by the account the container's uid 999 is
    here: `postgres` when the tests run as root."""

    def __init__(self, tmp: Path) -> None:
        import pwd

        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.data, self.auth, self.sock = tmp / "data", tmp / "auth", tmp / "sock"
        for path in (tmp, self.data, self.auth, self.sock):
            path.mkdir(exist_ok=True)
            if self.account is not None:
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        self.data.chmod(0o700)
        self.port = free_port("127.0.0.1")

    def env(self, bind: str, password: str | None, **extra: str) -> dict[str, str]:
        env = {"PATH": f"{pg_bindir()}:/usr/bin:/bin", "LOADLAB_BIND": bind,
               "PGDATA": str(self.data), "LOADLAB_DB_AUTH_DIR": str(self.auth),
               "POSTGRES_USER": "loadlab", "POSTGRES_DB": "loadlab",
               "POSTGRES_ENTRYPOINT": str(IMAGE_ENTRY), "LOADLAB_PARK_ON_ERROR": "0",
               "PGHOST": str(self.sock), "PGPORT": str(self.port), "LC_ALL": "C.UTF-8",
               **extra}
        if password is not None:
            env["POSTGRES_PASSWORD"] = password
        return env

    def command(self, entry: Path) -> list[str]:
        # Loopback only, whatever postgresql.conf says: the server's port is this test's.
        return ["sh", str(entry), "postgres", "-c", "listen_addresses=127.0.0.1",
                "-p", str(self.port), "-k", str(self.sock)]

    def _user(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid,
                "extra_groups": []}

    def run(self, entry: Path, env: dict[str, str], timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        """The entrypoint when it is expected to end by itself (a refusal)."""
        return subprocess.run(self.command(entry), env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, cwd="/", **self._user())

    def old_trust_volume(self) -> None:
        """A volume as the lab's earlier guard left it on loopback: `host all all all
        trust` (it exported POSTGRES_HOST_AUTH_METHOD=trust to the image's entrypoint)."""
        env = self.env("127.0.0.1", None, POSTGRES_HOST_AUTH_METHOD="trust")
        done = subprocess.run(["bash", str(IMAGE_ENTRY), "postgres", "--version"], env=env,
                              capture_output=True, text=True, timeout=120, check=False,
                              cwd="/", **self._user())
        assert done.returncode == 0, done.stderr[-2000:]
        assert "host all all all trust" in (self.data / "pg_hba.conf").read_text()

    def start(self, env: dict[str, str]) -> subprocess.Popen[str]:
        log = open(self.data.parent / "server.log", "w")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(self.command(POSTGRES_ENTRY), env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True, cwd="/",
                                start_new_session=True, **self._user())
        log.close()
        deadline = time.monotonic() + 120
        while subprocess.run([str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1",
                              "-p", str(self.port)], check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop(proc)
                raise AssertionError(self.log())
            time.sleep(0.2)
        return proc

    def log(self) -> str:
        return (self.data.parent / "server.log").read_text()

    @staticmethod
    def stop(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:  # SIGINT: the image's STOPSIGNAL, a fast shutdown
            kill_group(proc.pid, 60, signal.SIGINT, proc=proc)

    def connects(self, password: str | None) -> bool:
        """Whether a client over TCP gets in as the database's superuser with `password`."""
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user="loadlab",
                                 dbname="loadlab", password=password or "",
                                 passfile=str(self.data.parent / "no-passfile"),
                                 connect_timeout=10) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError as exc:
            assert "password authentication failed" in str(exc) or \
                "no password supplied" in str(exc), exc
            return False


@pytest.fixture
def volume() -> Iterator[Volume]:
    # Not under pytest's tmp_path: its parents are private to this account, and the
    # server runs as the postgres account.
    pg_bindir()  # Debian's server and its postgres account, or skip
    top = Path(tempfile.mkdtemp(prefix="loadlab-pg-entry-"))
    top.chmod(0o755)
    try:
        yield Volume(top / "pg")
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.requires("postgresql")
def test_a_fresh_volume_never_trusts_a_tcp_client(volume: Volume) -> None:
    """No password set, on loopback: the lab generates one, keeps it where the services
    read it, and a client over TCP without it (any local account) is refused."""
    server = volume.start(volume.env("127.0.0.1", None))
    try:
        password = (volume.auth / "password").read_text()
        assert len(password) == 32 and password.isalnum()
        assert (volume.auth / "password").stat().st_mode & 0o777 == 0o644
        assert not volume.connects(None) and not volume.connects("wrong")
        assert volume.connects(password)
        assert not re.search(r"^host\S*\s.*\btrust\s*$",
                             (volume.data / "pg_hba.conf").read_text(), re.M)
    finally:
        volume.stop(server)
    # The next start keeps that password; POSTGRES_PASSWORD set later takes effect.
    server = volume.start(volume.env("127.0.0.1", None))
    try:
        assert (volume.auth / "password").read_text() == password
        assert volume.connects(password)
    finally:
        volume.stop(server)
    server = volume.start(volume.env("127.0.0.1", "Changed-later'1"))
    try:
        assert not volume.connects(password) and volume.connects("Changed-later'1")
        assert (volume.auth / "password").read_text() == "Changed-later'1"
    finally:
        volume.stop(server)


@pytest.mark.requires("postgresql")
def test_a_trust_volume_is_refused_on_a_widened_bind(volume: Volume) -> None:
    """What the review reproduced: a volume made on loopback by the earlier guard keeps
    `host all all all trust`; widening the bind with a POSTGRES_PASSWORD set must not
    publish a database that takes any password or none."""
    volume.old_trust_volume()
    result = volume.run(POSTGRES_ENTRY, volume.env("0.0.0.0", "S3cret-for-test"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "trusts every TCP client" in lines[0], result.stderr
    assert "down -v" in lines[0]
    assert "host all all all trust" in (volume.data / "pg_hba.conf").read_text()


@pytest.mark.requires("postgresql")
def test_a_trust_volume_is_converted_on_loopback(volume: Volume) -> None:
    volume.old_trust_volume()
    server = volume.start(volume.env("127.0.0.1", None))
    try:
        assert "converted to scram-sha-256" in volume.log()
        assert not volume.connects(None) and not volume.connects("anything")
        assert volume.connects((volume.auth / "password").read_text())
    finally:
        volume.stop(server)
    # Converted for good: a widened bind now starts (with the password in force).
    server = volume.start(volume.env("0.0.0.0", "S3cret-for-test"))
    try:
        assert not volume.connects(None) and volume.connects("S3cret-for-test")
    finally:
        volume.stop(server)


def test_postgres_refuses_without_a_place_for_a_generated_password(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LOADLAB_BIND": "127.0.0.1", "PGDATA": str(tmp_path),
           "LOADLAB_DB_AUTH_DIR": str(tmp_path / "absent"), "POSTGRES_ENTRYPOINT": "printenv",
           "LOADLAB_PARK_ON_ERROR": "0"}
    result = subprocess.run(["sh", str(POSTGRES_ENTRY), "POSTGRES_PASSWORD"],
                            capture_output=True, text=True, env=env, timeout=10, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "POSTGRES_PASSWORD" in result.stderr
    # With one set, no directory is needed: the image's entrypoint gets it.
    result = subprocess.run(["sh", str(POSTGRES_ENTRY), "POSTGRES_PASSWORD"],
                            capture_output=True, text=True,
                            env={**env, "POSTGRES_PASSWORD": "given"}, timeout=10,
                            check=False)
    assert result.returncode == 0 and result.stdout.strip() == "given"


@pytest.fixture
def locust_ui(request: pytest.FixtureRequest) -> Iterator[tuple[int, Path]]:
    """A real Locust master UI (no users started) with the webauth module loaded."""
    bind, password = request.param
    port = free_port("127.0.0.1")
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"loadlab-webauth-{port}.log"
    env = {**os.environ, "LOADLAB_BIND": bind, "LOCUST_WEB_PASSWORD": password,
           "LOCUST_WEB_USERNAME": "lab"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(LOCUST), "-f", f"{ROOT}/locust/locustfile.py,{ROOT}/locust/webauth.py",
             "--web-host", "127.0.0.1", "--web-port", str(port), "--host",
             "http://127.0.0.1:9"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # answering, even if refusing
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.unlink(missing_ok=True)


def status(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("locust_ui", [("0.0.0.0", "pw-for-test")], indirect=True)
def test_locust_ui_asks_for_basic_auth(locust_ui: tuple[int, Path]) -> None:
    base = f"http://127.0.0.1:{locust_ui[0]}"
    assert status(f"{base}/") == 401
    assert status(f"{base}/stats/requests", ("lab", "wrong")) == 401
    assert status(f"{base}/stats/requests", ("lab", "pw-for-test")) == 200
    assert status(f"{base}/metrics") == 200  # Prometheus scrapes it from inside


@pytest.mark.parametrize("locust_ui", [("0.0.0.0", "")], indirect=True)
def test_locust_ui_refuses_a_widened_bind_without_a_password(
        locust_ui: tuple[int, Path]) -> None:
    base = f"http://127.0.0.1:{locust_ui[0]}"
    assert status(f"{base}/") == 503
    assert status(f"{base}/metrics") == 503  # so the healthcheck shows it
    assert "set LOCUST_WEB_PASSWORD" in locust_ui[1].read_text()


@pytest.mark.parametrize("locust_ui", [("127.0.0.1", "")], indirect=True)
def test_locust_ui_open_on_loopback(locust_ui: tuple[int, Path]) -> None:
    assert status(f"http://127.0.0.1:{locust_ui[0]}/stats/requests") == 200


def listening_ips(pids: set[int]) -> set[str]:
    out = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        out |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def test_native_service_listens_on_loopback_by_default() -> None:
    assert build_parser().parse_args(["serve", "flask"]).host == "127.0.0.1"
    service = start_service(framework="flask", worker_class="sync", workers=1)
    try:
        assert listening_ips(service_pids(service)) == {"127.0.0.1"}
    finally:
        service.stop()


def test_plain_locust_ui_listens_on_loopback_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCUST_WEB_HOST", raising=False)
    monkeypatch.delenv("LOADLAB_IN_CONTAINER", raising=False)
    lo = Locust(["--web-port", str(free_port()), "--host", "http://127.0.0.1:9"]).start()
    try:
        assert lo.proc is not None
        pid = lo.proc.pid
        ips = wait_for(lambda: listening_ips({pid}), 30, "the web UI to listen")
        assert ips == {"127.0.0.1"}
    finally:
        lo.terminate()
        lo.finish(timeout_s=30)


@pytest.mark.requires("postgresql")
def test_the_services_connect_with_the_generated_password(
        volume: Volume, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose gives the services a DATABASE_URL without a password and the file the
    database keeps its generated one in: they read it at each connection, so a password
    that appears or changes after they started is used (docker-compose.yml)."""
    from loadlab.service_db import SyncDatabase
    from loadlab.settings import ServiceSettings

    monkeypatch.setenv("LOADLAB_DB_PASSWORD_FILE", str(volume.auth / "password"))
    settings = ServiceSettings(
        database_url=f"postgresql://loadlab:@127.0.0.1:{volume.port}/loadlab",
        db_pool_size=1, db_pool_timeout_s=30)
    server = volume.start(volume.env("127.0.0.1", None))
    database = SyncDatabase(settings).open()
    try:
        database.sleep(1)
    finally:
        database.close()
        volume.stop(server)
