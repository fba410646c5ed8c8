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
