"""The side port: ``loadlab serve``'s own process serves the service's metrics.

``/metrics`` on the service port is answered by the same workers as the load, so a
saturated Gunicorn sync worker answers a scrape only after its backlog, and a blocked
event loop not at all until it turns: Prometheus's scrape times out and the series gap
exactly when the service is overloaded. The supervisor runs outside the worker pool (and
natively outside its CPU limit), so it reads the multiprocess directory every worker
writes and answers at once, with the same families: the request metrics (each worker
passes on its tallies every ``tally.FLUSH_INTERVAL_S``), CPU, memory and the listening
socket's accept queue, which is exactly what shows the overload.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST

from loadlab.metrics import collectors, multiprocess
from loadlab.metrics.acceptqueue import AcceptQueueReader

PORT_ENV = "LOADLAB_METRICS_PORT"
URL_ENV = "LOADLAB_METRICS_URL"
CONTAINER_PORT = 9000
PATH = "/metrics"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    side: SideMetrics

    def server_bind(self) -> None:
        # HTTPServer's own looks the host up (getfqdn): a DNS wait in a container.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that sends nothing does not hold a thread for ever
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self._reply(404, b"not found: the metrics are at /metrics\n", "text/plain")
            return
        try:
            try:
                body = self.server.side.render()
            except Exception:  # once more: a worker may have been writing a new file
                body = self.server.side.render()
        except Exception as exc:  # a scrape must never end the supervisor's server
            self._reply(500, f"metrics unavailable: {exc}\n".encode(), "text/plain")
            return
        self._reply(200, body, CONTENT_TYPE_LATEST)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # one line per scrape would drown the server's own log


def display_host(host: str) -> str:
    """A host a scraper can use in a URL: the machine's name for a wildcard bind."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


class SideMetrics:
    """The metrics server of one ``loadlab serve``: bound at construction (so a taken port
    fails before the service starts), served from a daemon thread after ``start()``."""

    def __init__(self, host: str, port: int, directory: Path,
                 labels: collectors.ServerLabels, backlog: int,
                 environ: Mapping[str, str]) -> None:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        self._server: _Server = server_class((host, port), _Handler)
        self._server.side = self
        self.port = int(self._server.server_address[1])
        self.url = f"http://{display_host(host)}:{self.port}{PATH}"
        self.directory = directory
        self.labels = labels
        self.backlog = backlog
        self.environ = dict(environ)
        self.accept: AcceptQueueReader | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def listener(self, pid: int) -> None:
        """The process that holds the service's listening sockets (the server's root)."""
        self.accept = AcceptQueueReader(pid, self.backlog)

    def render(self) -> bytes:
        from loadlab.metrics import exposition  # not at import: serve imports this early

        with self._lock:
            multiprocess.sweep(self.directory, own_pid=os.getpid())
            http = list(multiprocess.LockedMultiProcessCollector(self.directory).collect())
            service = collectors.ServiceCollector(self.labels, http, self.accept,
                                                  self.environ)
            return exposition(http, service)

    def start(self) -> SideMetrics:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="loadlab-side-metrics", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
