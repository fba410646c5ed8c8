"""Real services on free loopback ports, shared by the test modules.

Kept out of conftest.py so that test modules can import it by a name no other
directory's conftest shadows.
"""

from __future__ import annotations

import os

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServerConfig
from loadlab.servers import variant_name

# The variants the contract suite runs against: every worker class of every server in the
# registry (tests/test_servers.py checks none is missing), 2 workers, named by the registry.
_VARIANTS: list[dict[str, object]] = [
    dict(framework="fastapi", worker_class="uvicorn", workers=2),
    dict(framework="fastapi", worker_class="uvicorn-worker", workers=2),
    dict(framework="flask", worker_class="sync", workers=2),
    dict(framework="flask", worker_class="gthread", workers=2, threads=4),
    dict(framework="flask", worker_class="gevent", workers=2),
    dict(framework="fastapi", worker_class="granian", workers=2),
    dict(framework="flask", worker_class="granian", workers=2, threads=4),
]
VARIANTS = {variant_name(str(v["framework"]), str(v["worker_class"])): v for v in _VARIANTS}


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
