"""``GET /info``: what a service runs on, built once per process."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from loadlab import cgroup, db
from loadlab.contract import ServerInfo
from loadlab.settings import ServiceSettings

_PACKAGES = ("loadlab", "fastapi", "starlette", "uvicorn", "flask", "werkzeug", "gunicorn",
             "gevent", "pydantic", "prometheus-client", "psycopg", "psycopg-pool")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def server_info(framework: str, settings: ServiceSettings) -> ServerInfo:
    return ServerInfo(
        framework=framework,
        server=settings.server,
        worker_class=settings.worker_class,
        workers=settings.workers,
        threads=settings.threads,
        cpu_limit_cores=cgroup.own_cpu_limit(),
        db_pool_size=db.pool_size(settings),
        pid=os.getpid(),
        versions=package_versions(),
    )
