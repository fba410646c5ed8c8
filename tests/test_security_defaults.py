"""Security defaults, checked by running the real scripts, services and Locust: Grafana's
guarded entrypoint, the Locust UI's basic auth on a widened bind, loopback binds natively."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from contract_check import service_pids
from lab_services import start_service
from locustrun import Locust, wait_for

from loadlab.cli import build_parser
from loadlab.launch import free_port
from loadlab.loopback import is_loopback

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


def postgres_entry(bind: str, password: str | None) -> subprocess.CompletedProcess[str]:
    # printenv stands in for the image's docker-entrypoint.sh: it shows what it would get.
    env = {"PATH": "/usr/bin:/bin", "LOADLAB_BIND": bind, "POSTGRES_ENTRYPOINT": "printenv",
           "LOADLAB_PARK_ON_ERROR": "0"}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    return subprocess.run(["sh", str(POSTGRES_ENTRY), "POSTGRES_HOST_AUTH_METHOD"],
                          capture_output=True, text=True, env=env, timeout=10, check=False)


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "::1"])
def test_postgres_trusts_loopback_without_a_password(bind: str) -> None:
    result = postgres_entry(bind, "")
    assert result.returncode == 0 and result.stdout.strip() == "trust"


@pytest.mark.parametrize("password", [None, ""])
def test_postgres_refuses_a_widened_bind_without_a_password(password: str | None) -> None:
    result = postgres_entry("0.0.0.0", password)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "POSTGRES_PASSWORD" in result.stderr


def test_postgres_with_a_password_keeps_password_authentication() -> None:
    result = postgres_entry("0.0.0.0", "s3cret-for-test")
    assert result.returncode == 1 and result.stdout == ""  # printenv: the variable is unset


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
