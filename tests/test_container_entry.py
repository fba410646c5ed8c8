"""The container entry point and healthcheck, run for real as the images run them."""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from loadlab import healthcheck
from loadlab.launch import free_port

HEALTHCHECK_PY = healthcheck.__file__


def _entry(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loadlab.container", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("args, reason", [
    (["serve", "flask", "--workers", "two"], "--workers"),
    (["serve", "flask", "--worker-class", "uvicorn"], "uvicorn"),
    (["serve", "fastapi", "--threads", "4"], "gthread"),
    (["serve", "flask", "--cpus", "lots"], "--cpus"),
])
def test_bad_config_one_line_then_waits_until_stopped(args: list[str], reason: str) -> None:
    proc = _entry(*args)
    try:
        time.sleep(1.5)
        assert proc.poll() is None, "must not exit (the restart policy would loop)"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "Traceback" not in err


def test_good_config_serves(tmp_path: object) -> None:
    port = free_port("127.0.0.1")
    proc = _entry("serve", "fastapi", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while healthcheck.check(f"http://127.0.0.1:{port}/healthz") is not None:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


class _Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_exit_codes(http_server: int) -> None:
    def run(url: str) -> subprocess.CompletedProcess[str]:
        # As the images run it: isolated, without site-packages.
        return subprocess.run([sys.executable, "-I", "-S", HEALTHCHECK_PY, url],
                              capture_output=True, text=True, timeout=10, check=False)

    assert run(f"http://127.0.0.1:{http_server}/ok").returncode == 0
    assert run(f"tcp://127.0.0.1:{http_server}").returncode == 0
    failing = run(f"http://127.0.0.1:{http_server}/down")
    assert failing.returncode == 1 and "503" in failing.stderr
    closed = run(f"http://127.0.0.1:{free_port('127.0.0.1')}/healthz")
    assert closed.returncode == 1 and "refused" in closed.stderr.lower()
    assert run(f"tcp://127.0.0.1:{free_port('127.0.0.1')}").returncode == 1
