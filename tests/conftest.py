"""Shared fixtures: real services on free loopback ports, one contract for both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """One running service per variant, shared by a module's tests."""
    proc = start_service(**VARIANTS[request.param])
    try:
        yield proc
    finally:
        proc.stop()
