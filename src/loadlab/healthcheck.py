"""Container healthcheck: exit 0 when an HTTP URL answers 2xx (or, for ``tcp://host:port``,
when the port accepts a connection), else 1 with one line why.

Deliberately tiny and stdlib-only: compose runs it every few seconds in every container,
as ``python -I -S /app/healthcheck.py URL`` (no site-packages, ~8 ms of CPU instead of
~30 ms), so an idle lab costs next to nothing.
"""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit


def check(url: str, timeout_s: float = 2.0) -> str | None:
    """None when healthy, else the reason."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if parts.scheme == "tcp":
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            return f"{url}: {exc}"
        return None
    request = f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(request)
            status_line = conn.recv(64).split(b"\r\n", 1)[0].decode("latin-1")
    except OSError as exc:
        return f"{url}: {exc}"
    fields = status_line.split()
    if len(fields) < 2 or not fields[1].startswith("2"):
        return f"{url}: {status_line or 'no answer'}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: healthcheck.py http://HOST:PORT/PATH | tcp://HOST:PORT", file=sys.stderr)
        return 2
    reason = check(argv[0])
    if reason:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
