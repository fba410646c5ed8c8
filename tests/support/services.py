"""Real services on free loopback ports, shared by the test modules.

Kept out of conftest.py so that test modules can import it (``support.services``) by a
name no other directory's conftest shadows.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from typing import Any

import pytest

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServeError, ServerConfig
from loadlab.servers import FT_PYTHON, FT_PYTHON_ENV, ft_python, variant_name
from support.system_tools import require

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
# The same on free-threaded CPython 3.13t (``--python ft``; no gevent there, and Granian is
# its newest release with a 3.13t wheel, see .ci/build-python-ft): the contract
# suite's ``service`` fixture runs these too, skipping until .ci/build-python-ft has run.
FT_VARIANTS = {
    f"{name}-ft": dict(options, python="ft") for name, options in VARIANTS.items()
    if options["worker_class"] in ("uvicorn", "sync", "gthread", "granian")
}


def require_ft() -> None:
    """Skip (or, under LOADLAB_REQUIRE_PYTHON_FT/ALL, fail) unless the free-threaded
    interpreter is built."""
    try:
        path = ft_python()
    except ServeError:
        where = os.environ.get(FT_PYTHON_ENV) or FT_PYTHON
        require("python_ft", f"no free-threaded interpreter at {where}")
        return
    probe = subprocess.run(
        [str(path), "-c", "import sys, sysconfig; "
         "sys.exit(0 if sysconfig.get_config_var('Py_GIL_DISABLED') else 1)"],
        capture_output=True, check=False, timeout=60)
    require("python_ft", None if probe.returncode == 0 else f"{path} is not a free-threaded build")


def _require_interpreter(options: dict[str, object]) -> None:
    if options.get("python") == "ft":
        require_ft()


def start_service(**options: object) -> ServiceProcess:
    _require_interpreter(options)
    cfg = ServerConfig(port=free_port(), **options)  # type: ignore[arg-type]
    return ServiceProcess(cfg).start()


def db_service(url: str, pool_size: int | None = None, timeout_s: float | None = None,
               **options: object) -> ServiceProcess:
    """A service whose database is ``url``; a context manager (started on entry)."""
    _require_interpreter(options)
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("LOADLAB_DB_POOL_SIZE", None)
    if pool_size is not None:
        env["LOADLAB_DB_POOL_SIZE"] = str(pool_size)
    if timeout_s is not None:
        env["LOADLAB_DB_POOL_TIMEOUT_S"] = str(timeout_s)
    cfg = ServerConfig(port=free_port(), **options)  # type: ignore[arg-type]
    return ServiceProcess(cfg, env=env)


# ``make test-quick`` runs the tests on a running service against one variant of each
# adapter (ASGI, WSGI); every other server and the free-threaded builds run the same tests
# in ``make test`` (marked ``slow``: each is a server started and driven for a while).
QUICK_VARIANTS = ("fastapi-uvicorn", "flask-sync")


def variant_params(names: Iterable[str]) -> list[Any]:
    """``names`` as fixture params, those outside ``QUICK_VARIANTS`` marked ``slow``."""
    return [pytest.param(n, marks=() if n in QUICK_VARIANTS else pytest.mark.slow)
            for n in names]
