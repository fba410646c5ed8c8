"""Hostile requests, sent byte for byte over raw sockets to every variant.

Each gets a 4xx, or, for bytes that are not HTTP at all, no answer and a closed
connection. Never a 5xx, and no process of the service dies (worker pids are checked
after the whole barrage). Where the server refuses a request at the HTTP layer (Uvicorn:
text/plain, Gunicorn: text/html), its own body is fine: see docs/contract.md.
"""

from __future__ import annotations

import contextlib
import re
import socket

import httpx
import pytest
from support.contract_check import service_pids

from loadlab import contract
from loadlab.launch import ServiceProcess

JSON = b"Content-Type: application/json\r\n"
DEEP = b"[" * 400_000 + b"]" * 400_000  # under the body limit, far past any parser's depth


def _request(target: bytes, headers: bytes = b"", body: bytes | None = None,
             method: bytes = b"GET", length: bool = True) -> bytes:
    if body is not None and length:
        headers += b"Content-Length: %d\r\n" % len(body)
    return (method + b" " + target + b" HTTP/1.1\r\nHost: loadlab\r\nConnection: close\r\n"
            + headers + b"\r\n" + (body or b""))


def _echo(body: bytes, headers: bytes = JSON, length: bool = True) -> bytes:
    return _request(b"/echo", headers, body, b"POST", length)


CASES: dict[str, bytes] = {
    "one 64 KiB header": _request(b"/json", b"X-Big: " + b"a" * 65_536 + b"\r\n"),
    "one 1 MiB header": _request(b"/json", b"X-Big: " + b"a" * (1 << 20) + b"\r\n"),
    "500 headers": _request(b"/json", b"".join(b"X-H%d: v\r\n" % i for i in range(500))),
    "8 KiB URL": _request(b"/io?ms=1&pad=" + b"a" * 8192),
    "1 MiB URL": _request(b"/io?ms=1&pad=" + b"a" * (1 << 20)),
    "raw 0xff in query": _request(b"/io?ms=\xff"),
    "raw 0xff in path": _request(b"/\xff\xfe"),
    "encoded invalid UTF-8 and NUL in query": _request(b"/request?%ff=%fe%00"),
    "encoded NUL in a parameter": _request(b"/io?ms=1%00"),
    "latin-1 header value": _request(b"/request", b"X-A: \xff\xfe\r\n"),
    "NUL in a header": _request(b"/json", b"X-A: a\x00b\r\n"),
    "NUL in the path": _request(b"/io\x00"),
    "NUL inside a JSON string": _echo(b'{"name":"a\x00b","quantity":1,"price":1}'),
    "invalid UTF-8 in the body": _echo(b'{"name":"\xff\xfe","quantity":1,"price":1}'),
    "deeply nested JSON": _echo(DEEP),
    "deeply nested object": _echo(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    "body over the limit": _echo(b" " * (contract.MAX_BODY_BYTES + 1)),
    "declared length of 1 TB": _request(b"/echo", JSON + b"Content-Length: 1000000000000\r\n",
                                        b"{}", b"POST", length=False),
    "negative length": _request(b"/echo", JSON + b"Content-Length: -1\r\n", b"{}", b"POST",
                                length=False),
    "length and chunked together": _request(
        b"/echo", JSON + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n",
        b"POST", length=False),
    "malformed chunk size": _echo(b"zz\r\nabc\r\n0\r\n\r\n",
                                  JSON + b"Transfer-Encoding: chunked\r\n", length=False),
    "invalid method token": _request(b"/json", method=b"G@T"),
    "unknown HTTP version": b"GET /json HTTP/9.9\r\nHost: loadlab\r\n\r\n",
    "TLS hello on the plain port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,
}
# Bytes that are not HTTP at all: a server may close without a word (Gunicorn does).
MAY_GO_UNANSWERED = {"TLS hello on the plain port"}
# Odd but valid: /request reports them (decoded with replacement characters).
ACCEPTED = {"encoded invalid UTF-8 and NUL in query", "latin-1 header value"}


def send_raw(service: ServiceProcess, data: bytes, timeout_s: float = 3.0) -> int | None:
    """Send ``data``, return the status of the answer, or None if none came."""
    with socket.create_connection((service.cfg.host, service.cfg.port), timeout=timeout_s) as s:
        # Refused mid-upload: the answer may still be waiting to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        head = b""
        try:
            while b"\r\n" not in head and (chunk := s.recv(4096)):
                head += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def pids_before(service: ServiceProcess) -> set[int]:
    return service_pids(service)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_request_is_refused(service: ServiceProcess, pids_before: set[int],
                                  name: str) -> None:
    status = send_raw(service, CASES[name])
    if status is None:
        assert name in MAY_GO_UNANSWERED, f"{name}: no answer"
    elif name in ACCEPTED:
        assert status == 200, f"{name}: {status}"
    else:
        assert 400 <= status < 500, f"{name}: {status}"


def test_no_worker_died(service: ServiceProcess, pids_before: set[int]) -> None:
    for _ in range(10):
        assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200
    assert pids_before <= service_pids(service), "a process of the service died"
