"""Gunicorn settings shared by every Gunicorn variant, loaded as a module
(`gunicorn --config python:loadlab.gunicorn_conf`): no config file per service.

The variant itself (bind, workers, worker class, threads) comes from LOADLAB_* variables
set by ``loadlab serve``, so the one file serves natively and in containers.
"""
import os

from loadlab.serve import LISTEN_BACKLOG, recycling

bind = os.environ.get("LOADLAB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("LOADLAB_WORKERS", "1"))
worker_class = os.environ.get("LOADLAB_GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("LOADLAB_THREADS", "1"))
worker_connections = int(os.environ.get("LOADLAB_WORKER_CONNECTIONS", "1000"))
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

