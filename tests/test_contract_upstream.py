"""``/upstream`` against another live service, a slow one and a dead one; same bytes.

Two services call each other (FastAPI -> Flask, Flask -> FastAPI) through UPSTREAM_URL:
real outbound calls with each framework's pooled client, and the same 502/504 bodies on
both when the upstream is gone or too slow. Ports are picked first, so each service can
point at the other before either is up.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from support.contract_check import check

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServerConfig

pytestmark = pytest.mark.slow  # every variant calling every other, for real

TIMEOUT_S = 1.0


def _service(framework: str, worker_class: str, port: int, upstream: str) -> ServiceProcess:
    threads = 4 if worker_class == "gthread" else 1
    cfg = ServerConfig(framework=framework, worker_class=worker_class, port=port, workers=1,
                       threads=threads)
    env = {**os.environ, "UPSTREAM_URL": upstream, "LOADLAB_UPSTREAM_TIMEOUT_S": str(TIMEOUT_S)}
    return ServiceProcess(cfg, env=env)


def _upstream(service: ServiceProcess, ms: int) -> httpx.Response:
    return check(httpx.get(f"{service.url}/upstream", params={"ms": ms}, timeout=20))


def _unreachable(service: ServiceProcess) -> None:
    started = time.monotonic()
    dead = _upstream(service, 10)
    assert (dead.status_code, dead.json()) == (502, {"detail": "upstream unreachable"})
    assert time.monotonic() - started < 10 * TIMEOUT_S


# Requests whose answers carry nothing variant-specific: both services must send the same bytes.
SAME_BYTES = [
    ("GET", "/healthz", None), ("GET", "/json", None), ("GET", "/io?ms=1", None),
    ("GET", "/cpu?work=3", None), ("GET", "/cpu/blocking?work=3", None),
    ("GET", "/mixed?ms=1&work=2", None), ("GET", "/io?ms=abc", None), ("GET", "/io", None),
    ("GET", "/mixed?ms=1&ms=2", None), ("GET", "/cpu?work=99999999999", None),
    ("POST", "/echo", '{"name":" été ","quantity":2,"price":0.1,"tags":["A","a"]}'.encode()),
    ("POST", "/echo", b"{bad"), ("POST", "/echo", b'{"name":"x"}'), ("GET", "/nope", None),
    ("DELETE", "/json", None), ("GET", "/echo", None), ("OPTIONS", "/io", None),
]


def _same_bytes(first: ServiceProcess, second: ServiceProcess) -> None:
    for method, url, body in SAME_BYTES:
        headers = {"content-type": "application/json"} if body is not None else {}
        answers = [
            httpx.request(method, f"{svc.url}{url}", content=body, headers=headers, timeout=20)
            for svc in (first, second)
        ]
        a, b = answers
        assert (a.status_code, a.headers["content-type"], a.content) == (
            b.status_code, b.headers["content-type"], b.content), (method, url)


def test_cross_calls_and_failures() -> None:
    fastapi_port, flask_port = free_port(), free_port()
    fastapi_io, flask_io = (f"http://127.0.0.1:{port}/io" for port in (fastapi_port, flask_port))
    with _service("fastapi", "uvicorn", fastapi_port, flask_io) as fastapi:
        _unreachable(fastapi)  # Flask is not up yet: the connection is refused.
        with _service("flask", "gthread", flask_port, fastapi_io) as flask:
            _same_bytes(fastapi, flask)
            for caller, callee in ((fastapi, flask), (flask, fastapi)):
                body = _upstream(caller, 30).json()
                assert body["upstream"] == f"{callee.url}/io"
                assert (body["status"], body["slept_ms"]) == (200, 30)
                assert body["elapsed_ms"] >= 30
                # An upstream slower than the timeout: 504 after about the timeout.
                started = time.monotonic()
                slow = _upstream(caller, int(TIMEOUT_S * 3000))
                assert (slow.status_code, slow.json()) == (504, {"detail": "upstream timed out"})
                assert TIMEOUT_S * 0.9 <= time.monotonic() - started < TIMEOUT_S * 3
        flask_port = free_port()
        with _service("flask", "sync", flask_port, f"{fastapi.url}/nope") as flask:
            wrong = _upstream(flask, 10)
            assert (wrong.status_code, wrong.json()) == (502, {"detail": "upstream answered 404"})
            fastapi.stop()
            _unreachable(flask)


class _DroppingUpstream:
    """An upstream that resets the first request for ``/io?ms=2`` without an answer, as a
    server does that closes a kept-alive connection (its keep-alive timeout) just as the
    request arrives (seen on Gunicorn's gthread and on Uvicorn: docs/contract.md), and holds
    any request of ``ms`` >= 1000 unanswered. ``seen`` says what it did, in order."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    DROPPED = "/io?ms=2"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/io"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while line := reader.readline():
                while reader.readline() not in (b"\r\n", b""):
                    pass  # the headers: a GET has no body
                path = line.split(b" ")[1].decode()
                if int(path.rpartition("ms=")[2] or 0) >= 1000:
                    self.seen.append(f"held {path}")
                    reader.read()  # until the caller gives up and closes
                    return
                if path == self.DROPPED and f"reset {path}" not in self.seen:
                    self.seen.append(f"reset {path}")
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closed with linger 0: a reset, no answer
                self.seen.append(f"answered {path}")
                conn.sendall(self.OK)

    def close(self) -> None:
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=10)


@pytest.mark.parametrize(("framework", "worker_class"),
                         [("fastapi", "uvicorn"), ("flask", "gthread")])
def test_a_dropped_kept_alive_connection_is_tried_once_more(framework: str,
                                                            worker_class: str) -> None:
    """The upstream drops the request without an answer: the request, idempotent, goes once
    more on a new connection (a 200, not a 502); a timeout is never repeated."""
    upstream = _DroppingUpstream()
    try:
        with _service(framework, worker_class, free_port(), upstream.url) as service:
            first, second = (_upstream(service, ms) for ms in (1, 2))
            assert (first.status_code, second.status_code) == (200, 200), second.text
            assert upstream.seen == ["answered /io?ms=1", "reset /io?ms=2", "answered /io?ms=2"]
            slow = _upstream(service, int(TIMEOUT_S * 3000))
            assert (slow.status_code, slow.json()) == (504, {"detail": "upstream timed out"})
            assert upstream.seen[3:] == ["held /io?ms=3000"]
    finally:
        upstream.close()


class _Canary(BaseHTTPRequestHandler):
    """Answers 404 at once and records who came: a port /upstream must never reach."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    handler = type("Canary", (_Canary,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_host_header_never_picks_the_upstream(service: ServiceProcess,
                                                  canary: tuple[int, list[str]]) -> None:
    """A client naming another loopback port in `Host:` does not make the service call it:
    without UPSTREAM_URL the upstream is the service's own bound address."""
    port, seen = canary
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        answer = check(httpx.get(f"{service.url}/upstream", params={"ms": 1},
                                 headers={"Host": host}, timeout=20))
        assert answer.status_code == 200, answer.text
        assert answer.json()["upstream"] == f"{service.url}/io"
    assert seen == [], f"/upstream reached the port the Host header named: {seen}"


@pytest.mark.parametrize(("bind", "url"), [
    ("127.0.0.1:8000", "http://127.0.0.1:8000/io"),
    ("0.0.0.0:8001", "http://127.0.0.1:8001/io"),
    ("[::]:8002", "http://[::1]:8002/io"),
    ("[::1]:8003", "http://[::1]:8003/io"),
    ("fastapi:8000", "http://fastapi:8000/io"),
    ("", None), ("127.0.0.1", None), ("unix:/tmp/x.sock", None),
])
def test_the_own_address_comes_from_the_bind(bind: str, url: str | None) -> None:
    from loadlab.settings import own_io_url

    assert own_io_url(bind) == url
