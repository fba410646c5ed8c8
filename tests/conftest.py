"""Shared fixtures: real services on free loopback ports, one contract for both; a real
PostgreSQL for the database tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from support import system_tools
from support.runner_cli import kill_tagged, tagged_env
from support.services import VARIANTS, start_service, variant_params

from loadlab.launch import ServiceProcess


@pytest.fixture(scope="module", params=variant_params(sorted(VARIANTS)))
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """One running service per variant, shared by a module's tests (the contract suite
    adds the free-threaded ones: tests/test_contract.py); ``make test-quick`` only
    ``support.services.QUICK_VARIANTS``."""
    proc = start_service(**VARIANTS[request.param])
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def fastapi() -> Iterator[ServiceProcess]:
    """One FastAPI service (one Uvicorn worker) shared by a module's tests: the Locust tests'
    target."""
    proc = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the module's ``service``."""
    with httpx.Client(base_url=service.url, timeout=20) as http:
        yield http


@pytest.fixture
def env() -> Iterator[tuple[dict[str, str], str]]:
    """An environment for ``loadlab`` subprocesses whose tag their processes inherit; what
    still carries the tag at the end is killed (the runner tests)."""
    environment, tag = tagged_env()
    try:
        yield environment, tag
    finally:
        kill_tagged(tag)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.requires("promtool", ...)`: skip, or fail where required (CI)."""
    for mark in item.iter_markers("requires"):
        for name in mark.args:
            system_tools.require(name, system_tools.missing(name))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test skipped for a missing tool counts in the closing line."""
    if report.skipped and isinstance(report.longrepr, tuple):
        system_tools.count_skip(str(report.longrepr[2]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = system_tools.summary_line()
    if line is not None:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """``DATABASE_URL`` when set (seeded if needed), else a throwaway cluster, seeded."""
    from loadlab.pgcluster import INSTALL_HINT, PostgresCluster, PostgresUnavailable, seed

    try:
        import psycopg  # noqa: F401
    except ImportError:
        system_tools.postgres_missing("psycopg is not installed: pip install 'loadlab[db]'")
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        seed(url)
        yield url
        return
    system_tools.require_cluster()  # binaries that cannot run here skip too
    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        reason = f"{exc}" if "apt-get" in str(exc) else f"{exc}; {INSTALL_HINT}"
        system_tools.postgres_missing(reason)
    try:
        yield cluster.url
    finally:
        cluster.stop()
