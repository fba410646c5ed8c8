"""``GET /info``: what a service runs on, built once per process."""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version

from loadlab import cgroup, service_db
from loadlab.contract import PythonInfo, ServerInfo
from loadlab.metrics.side import URL_ENV
from loadlab.servers import PACKAGES
from loadlab.settings import ServiceSettings

# The servers', apps' and lab's packages, from the server registry.
_PACKAGES = PACKAGES


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def python_info() -> PythonInfo:
    return PythonInfo(
        implementation=platform.python_implementation(),
        version=platform.python_version(),
        free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    )


def gil_enabled() -> bool:
    """The GIL's state now: a free-threaded build can turn it on at run time (an extension
    module that does not declare itself safe), so it is read per request, not at start."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def with_gil_state(info: ServerInfo) -> ServerInfo:
    """``info`` as /info answers it: with the GIL's state at this request."""
    enabled = gil_enabled()
    return info if info.gil_enabled == enabled else info.model_copy(
        update={"gil_enabled": enabled})


def server_info(framework: str, settings: ServiceSettings) -> ServerInfo:
    return ServerInfo(
        framework=framework,
        server=settings.server,
        worker_class=settings.worker_class,
        workers=settings.workers,
        threads=settings.threads,
        cpu_limit_cores=cgroup.own_cpu_limit(),
        db_pool_size=service_db.pool_size(settings),
        pid=os.getpid(),
        versions=package_versions(),
        python=python_info(),
        gil_enabled=gil_enabled(),
        metrics_url=os.environ.get(URL_ENV) or None,
    )
