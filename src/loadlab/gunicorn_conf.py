"""Gunicorn settings shared by every Gunicorn variant, loaded as a module
(`gunicorn --config python:loadlab.gunicorn_conf`): no config file per service.

The variant itself (bind, workers, worker class, threads) comes from LOADLAB_* variables
set by ``loadlab serve``, so the one file serves natively and in containers.
"""
import os
import sys

from loadlab.contract import MAX_THREADS, MAX_WORKER_CONNECTIONS, MAX_WORKERS
from loadlab.servers import LISTEN_BACKLOG, recycling


def _whole(name: str, default: str, top: int) -> int:
    """A LOADLAB_* whole number 1..top; anything else is one line and exit 2 (not Gunicorn's
    traceback and exit 1, which a container would restart for ever)."""
    text = os.environ.get(name, default).strip()
    if not text.isdigit() or not 1 <= int(text) <= top:
        print(f"loadlab: {name}={text!r}: must be a whole number 1..{top}", file=sys.stderr)
        raise SystemExit(2)  # not an Exception: Gunicorn's config loader lets it through
    return int(text)


bind = os.environ.get("LOADLAB_BIND", "127.0.0.1:8000")
workers = _whole("LOADLAB_WORKERS", "1", MAX_WORKERS)
worker_class = os.environ.get("LOADLAB_GUNICORN_WORKER_CLASS", "sync")
threads = _whole("LOADLAB_THREADS", "1", MAX_THREADS)
worker_connections = _whole("LOADLAB_WORKER_CONNECTIONS", "1000", MAX_WORKER_CONNECTIONS)
backlog = LISTEN_BACKLOG  # the accept-queue gauge reports it as its limit
keepalive = 5
timeout = 60
graceful_timeout = 10
accesslog = None  # an access log per request costs a quarter of /json throughput
errorlog = "-"
loglevel = os.environ.get("LOADLAB_LOG_LEVEL", "warning")
control_socket_disable = True
# Worker recycling (soak tests, leak hunts): 0 keeps workers for good. The jitter spreads
# the restarts so the workers do not all recycle at once. Read as Uvicorn's are (serve.py).
max_requests, max_requests_jitter = recycling()


def child_exit(server: object, worker: object) -> None:
    """A worker exited (crash, kill, recycling): drop its live gauges, archive its totals."""
    from loadlab.metrics.multiprocess import mark_dead

    pid = getattr(worker, "pid", None)
    if pid is None:
        return
    try:
        mark_dead(pid)
    except Exception as exc:  # the master must outlive any bookkeeping failure
        log = getattr(server, "log", None)
        if log is not None:
            log.warning("metrics bookkeeping for worker %s failed: %s", pid, exc)

