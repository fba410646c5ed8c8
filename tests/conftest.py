"""Shared fixtures: real services on free loopback ports, one contract for both; a real
PostgreSQL for the database tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requirements_probe
from lab_services import VARIANTS, start_service, variant_params

from loadlab.launch import ServiceProcess


@pytest.fixture(scope="module", params=variant_params(sorted(VARIANTS)))
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """One running service per variant, shared by a module's tests (the contract suite
    adds the free-threaded ones: tests/test_contract.py); ``make test-quick`` only
    ``lab_services.QUICK_VARIANTS``."""
    proc = start_service(**VARIANTS[request.param])
    try:
        yield proc
    finally:
        proc.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.requires("promtool", ...)`: skip, or fail where required (CI)."""
    for mark in item.iter_markers("requires"):
        for name in mark.args:
            requirements_probe.require(name, requirements_probe.missing(name))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test skipped for a missing tool counts in the closing line."""
    if report.skipped and isinstance(report.longrepr, tuple):
        requirements_probe.count_skip(str(report.longrepr[2]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = requirements_probe.summary_line()
    if line is not None:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """``DATABASE_URL`` when set (seeded if needed), else a throwaway cluster, seeded."""
    from loadlab.database import INSTALL_HINT, PostgresCluster, PostgresUnavailable, seed

    try:
        import psycopg  # noqa: F401
    except ImportError:
        requirements_probe.postgres_missing("psycopg is not installed: pip install 'loadlab[db]'")
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        seed(url)
        yield url
        return
    requirements_probe.require_cluster()  # binaries that cannot run here skip too
    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        reason = f"{exc}" if "apt-get" in str(exc) else f"{exc}; {INSTALL_HINT}"
        requirements_probe.postgres_missing(reason)
    try:
        yield cluster.url
    finally:
        cluster.stop()
