"""System tools the tests need, checked in one place.

A test whose tool is missing skips, saying what is missing and the command that installs
it; `pytest_terminal_summary` in conftest.py then prints one line of everything skipped
that way. Where a tool must be there (CI: `.ci/run` sets `LOADLAB_REQUIRE_<NAME>=1`, or
`LOADLAB_REQUIRE_ALL=1` for every one), the same check fails the test instead.

Use it as `require_tool("promtool")` (returns the executable's path) or, for a check of
your own, `require("docker", problem)` where `problem` is None when all is well; or mark a
test or module `@pytest.mark.requires("chromium")`. A new requirement is one entry in
`REQUIREMENTS`.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import NoReturn

import pytest


@dataclass(frozen=True)
class Requirement:
    name: str
    install: str
    executables: tuple[str, ...] = ()  # all must be found (PATH, or an absolute path)

    @property
    def env(self) -> str:
        return f"LOADLAB_REQUIRE_{self.name.upper()}"


REQUIREMENTS: dict[str, Requirement] = {r.name: r for r in [
    Requirement("chromium", "apt-get install -y chromium", ("/usr/bin/chromium",)),
    Requirement("promtool", "apt-get install -y prometheus", ("promtool",)),
    Requirement("prometheus", "apt-get install -y prometheus", ("prometheus", "promtool")),
    Requirement("docker", "apt-get install -y docker.io, start dockerd, then "
                "run .ci/install-compose-v2"),
    Requirement("postgres", "apt-get install -y postgresql"),
    Requirement("postgres_exporter", "apt-get install -y prometheus-postgres-exporter",
                ("prometheus-postgres-exporter",)),
    Requirement("cgroup", "run as root on a machine with a writable cpu cgroup "
                "(see loadlab doctor)"),
    Requirement("wrk", "apt-get install -y wrk", ("wrk",)),
    Requirement("strace", "apt-get install -y strace", ("strace",)),
    Requirement("git", "apt-get install -y git", ("git",)),
    Requirement("python_ft", "run .ci/build-python-ft (free-threaded CPython 3.13t, "
                "about 4 minutes on 2 cores)"),
]}

SKIPPED: Counter[str] = Counter()  # requirement name -> tests skipped for want of it
REASONS: dict[str, str] = {}


def required(name: str) -> bool:
    """Whether a missing `name` fails (CI) rather than skips."""
    req = REQUIREMENTS[name]
    return "1" in (os.environ.get(req.env), os.environ.get("LOADLAB_REQUIRE_ALL"))


def require(name: str, problem: str | None) -> None:
    """Skip (or, when required, fail) the running test if `problem` is not None."""
    if problem is None:
        return
    req = REQUIREMENTS[name]
    if required(name):
        pytest.fail(f"{name} is required here ({req.env}=1), but {problem}; "
                    f"install: {req.install}", pytrace=False)
    SKIPPED[name] += 1
    REASONS[name] = problem
    pytest.skip(f"needs {name}: {problem} (install: {req.install})")


def find(name: str) -> str | None:
    """The first executable of requirement `name`, or None if any of them is missing."""
    found = [shutil.which(exe) for exe in REQUIREMENTS[name].executables]
    return found[0] if found and all(found) else None


def missing(name: str) -> str | None:
    """Why the executables of `name` are not usable here, or None."""
    exes = REQUIREMENTS[name].executables
    absent = [exe for exe in exes if shutil.which(exe) is None]
    return f"{', '.join(absent)} not found" if absent else None


def require_tool(name: str) -> str:
    """The path of `name`'s executable; skips or fails the test when it is missing."""
    require(name, missing(name))
    path = find(name)
    assert path is not None
    return path


def summary_line() -> str | None:
    """One line of what was skipped for a missing tool, and how to get each."""
    if not SKIPPED:
        return None
    parts = [f"{name} ({count} test{'s' if count > 1 else ''}: {REASONS[name]}; "
             f"{REQUIREMENTS[name].install})" for name, count in sorted(SKIPPED.items())]
    return "skipped for missing system tools: " + "; ".join(parts)


def postgres_missing(reason: str) -> NoReturn:
    """The database tests' skip (or, where PostgreSQL is required, failure) with the fix."""
    require("postgres", reason)
    raise AssertionError("unreachable: require() skips or fails")
