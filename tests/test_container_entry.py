"""The container entry point and healthcheck, run for real as the images run them."""

from __future__ import annotations

import http.server
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadlab.launch import free_port

HEALTHCHECK_SH = Path(__file__).resolve().parents[1] / "src" / "loadlab" / "healthcheck.sh"


def _entry(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loadlab.container", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _first_line(proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    """The process's first line on stderr, waited for ('' if none came in time)."""
    assert proc.stderr is not None
    stream, got = proc.stderr, []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return got[0] if got else ""


def _waits_for_a_signal(pid: int) -> bool:
    """Whether the process sleeps in sigwait() now (/proc wchan), or blocks SIGTERM (SigBlk:
    while it sleeps in sigwait the kernel lifts the block on what it waits for)."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:"))
    return "sigtimedwait" in wchan or bool(int(mask, 16) & 1 << (signal.SIGTERM - 1))


@pytest.mark.parametrize("args, reason", [
    (["serve", "flask", "--workers", "two"], "--workers"),
    (["serve", "flask", "--worker-class", "uvicorn"], "uvicorn"),
    (["serve", "fastapi", "--threads", "4"], "--threads > 1 does not apply to fastapi"),
    (["serve", "flask", "--cpus", "lots"], "--cpus"),
])
def test_bad_config_one_line_then_waits_until_stopped(args: list[str], reason: str) -> None:
    proc = _entry(*args)
    try:
        first = _first_line(proc)
        # Its line printed, it must go on to wait for the stop, not exit (the restart policy
        # would loop): seen asleep in sigwait().
        deadline = time.monotonic() + 30
        while proc.poll() is None and not _waits_for_a_signal(proc.pid):
            assert time.monotonic() < deadline, "never came to wait for SIGTERM"
            time.sleep(0.05)
        assert proc.poll() is None, "must not exit (the restart policy would loop)"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
    err = first + rest
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "Traceback" not in err


def test_good_config_serves(tmp_path: object) -> None:
    port = free_port("127.0.0.1")
    proc = _entry("serve", "fastapi", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while check(f"http://127.0.0.1:{port}/healthz").returncode != 0:
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


def check(url: str) -> subprocess.CompletedProcess[str]:
    """The healthcheck as the images run it: `bash /app/healthcheck.sh URL`."""
    return subprocess.run(["bash", str(HEALTHCHECK_SH), url], capture_output=True, text=True,
                          timeout=10, check=False)


def test_healthcheck_exit_codes(http_server: int) -> None:
    assert check(f"http://127.0.0.1:{http_server}/ok").returncode == 0
    assert check(f"tcp://127.0.0.1:{http_server}").returncode == 0
    failing = check(f"http://127.0.0.1:{http_server}/down")
    assert failing.returncode == 1 and "503" in failing.stderr
    closed = check(f"http://127.0.0.1:{free_port('127.0.0.1')}/healthz")
    assert closed.returncode == 1 and "refused" in closed.stderr.lower()
    assert check(f"tcp://127.0.0.1:{free_port('127.0.0.1')}").returncode == 1
    for bad in ("", "127.0.0.1:8000", "ftp://127.0.0.1/"):
        assert check(bad).returncode == 2
    for failed in (failing, closed):
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_healthcheck_gives_up_on_a_silent_peer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        started = time.monotonic()
        silent = check(f"http://127.0.0.1:{listener.getsockname()[1]}/healthz")
    assert silent.returncode == 1 and "no answer" in silent.stderr
    assert time.monotonic() - started < 5


@pytest.mark.requires("strace")
def test_healthcheck_is_one_process(http_server: int, tmp_path: Path) -> None:
    """Bash builtins only: a healthy check starts no other program (that is its point)."""
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-e", "trace=execve,clone,clone3,fork,vfork", "-o",
                    str(trace), "bash", str(HEALTHCHECK_SH),
                    f"http://127.0.0.1:{http_server}/ok"], check=True, timeout=10,
                   capture_output=True)
    calls = [line for line in trace.read_text().splitlines() if "(" in line]
    assert len([c for c in calls if "execve(" in c]) == 1, calls
    assert not [c for c in calls if "clone" in c or "fork" in c], calls
