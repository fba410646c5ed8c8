"""Shared fixtures: real services on free loopback ports, one contract for both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lab_services import VARIANTS, start_service

from loadlab.launch import ServiceProcess


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """One running service per variant, shared by a module's tests."""
    proc = start_service(**VARIANTS[request.param])
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def database_url() -> str:
    """A seeded PostgreSQL: DATABASE_URL when set."""
    import os

    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.skip("no DATABASE_URL")
    return url
