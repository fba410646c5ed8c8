"""The compose lab, built and started once per session; always torn down, checked clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.compose_project import Stack, engine_problem, registry_answers
from support.system_tools import require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.slow)


# Package scope: the stack is down once this package's last test ends, not at the end
# of the whole session (its idle containers would share the cores with every later test).
@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    require("docker", engine_problem())
    lab = Stack(offline=not registry_answers())
    try:
        lab.build()
        lab.up()
        yield lab
    finally:
        lab.down()
        left = lab.leftovers()
        assert left == {}, f"docker compose down -v left {left} behind"
