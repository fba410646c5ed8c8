"""Real services on free loopback ports, shared by the test modules.

Kept out of conftest.py so that test modules can import it by a name no other
directory's conftest shadows.
"""

from __future__ import annotations

import os

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServerConfig

# The variants the contract suite runs against: every server and worker class, 2 workers.
VARIANTS = {
    "fastapi-uvicorn": dict(framework="fastapi", worker_class="uvicorn", workers=2),
    "fastapi-gunicorn": dict(framework="fastapi", worker_class="uvicorn-worker", workers=2),
    "flask-sync": dict(framework="flask", worker_class="sync", workers=2),
    "flask-gthread": dict(framework="flask", worker_class="gthread", workers=2, threads=4),
    "flask-gevent": dict(framework="flask", worker_class="gevent", workers=2),
}


def start_service(**options: object) -> ServiceProcess:
    cfg = ServerConfig(port=free_port(), **options)  # type: ignore[arg-type]
    return ServiceProcess(cfg).start()


def db_service(url: str, pool_size: int | None = None, timeout_s: float | None = None,
               **options: object) -> ServiceProcess:
    """A service whose database is ``url``; a context manager (started on entry)."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("LOADLAB_DB_POOL_SIZE", None)
    if pool_size is not None:
        env["LOADLAB_DB_POOL_SIZE"] = str(pool_size)
    if timeout_s is not None:
        env["LOADLAB_DB_POOL_TIMEOUT_S"] = str(timeout_s)
    cfg = ServerConfig(port=free_port(), **options)  # type: ignore[arg-type]
    return ServiceProcess(cfg, env=env)
