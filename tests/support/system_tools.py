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

import functools
import glob
import os
import pwd
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import pytest


@functools.cache
def _compose_cli() -> str | None:
    """Why `docker compose` (v2) does not run here, or None (the CLI alone, no engine)."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False,
                          timeout=60)
    return None if done.returncode == 0 else "docker compose (v2) does not run"


def _debian_postgresql() -> str | None:
    """Why Debian's PostgreSQL server (and its postgres account) is not here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        return "no /usr/lib/postgresql/*/bin/postgres"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres account"
    return None


@dataclass(frozen=True)
class Requirement:
    name: str
    install: str
    executables: tuple[str, ...] = ()  # all must be found (PATH, or an absolute path)
    check: Callable[[], str | None] | None = None  # why it is unusable, or None

    @property
    def env(self) -> str:
        return f"LOADLAB_REQUIRE_{self.name.upper()}"


REQUIREMENTS: dict[str, Requirement] = {r.name: r for r in [
    Requirement("chromium", "apt-get install -y chromium", ("/usr/bin/chromium",)),
    Requirement("promtool", "apt-get install -y prometheus", ("promtool",)),
    Requirement("prometheus", "apt-get install -y prometheus", ("prometheus", "promtool")),
    Requirement("docker", "apt-get install -y docker.io, start dockerd, then "
                "run .ci/install-compose-v2"),
    Requirement("compose", "apt-get install -y docker.io (the CLI alone will do), then run "
                ".ci/install-compose-v2", check=_compose_cli),
    Requirement("postgres", "apt-get install -y postgresql"),
    Requirement("postgresql", "apt-get install -y postgresql (Debian's server, as the "
                "compose image runs it; the pgserver wheel will not do)",
                check=_debian_postgresql),
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
    REASONS[name] = problem
    pytest.skip(f"needs {name}: {problem} (install: {req.install})")


def count_skip(message: str) -> None:
    """Count a skipped test whose reason is one of ours (a fixture that skips is set up
    once, then its skip is repeated for every test using it: counted here, per test)."""
    text = message.removeprefix("Skipped: ")
    name = text.removeprefix("needs ").split(":", 1)[0]
    if text.startswith("needs ") and name in REQUIREMENTS and name in REASONS:
        SKIPPED[name] += 1


def find(name: str) -> str | None:
    """The first executable of requirement `name`, or None if any of them is missing."""
    found = [shutil.which(exe) for exe in REQUIREMENTS[name].executables]
    return found[0] if found and all(found) else None


def missing(name: str) -> str | None:
    """Why the executables of `name` are not usable here, or None."""
    req = REQUIREMENTS[name]
    absent = [exe for exe in req.executables if shutil.which(exe) is None]
    if absent:
        return f"{', '.join(absent)} not found"
    return req.check() if req.check is not None else None


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


_CLUSTER_PROBLEMS: dict[str, str | None] = {}  # binaries source -> why no cluster starts


def cluster_problem(source: str | None = None) -> str | None:
    """Why no throwaway PostgreSQL cluster starts here (from binaries of ``source``, as
    ``find_binaries`` takes it), or None; found out by starting one, once per source.

    Binaries can be there and still not run: as root, the cluster drops to an unprivileged
    account that may not reach them (a checkout in a 0700 home)."""
    key = source or "any"
    if key not in _CLUSTER_PROBLEMS:
        from loadlab.pgcluster import (
            INSTALL_HINT,
            ClusterError,
            PostgresCluster,
            PostgresUnavailable,
            find_binaries,
        )
        problem: str | None = None
        try:
            PostgresCluster(binaries=find_binaries(source), seed_data=False).start().stop()
        except PostgresUnavailable as exc:
            problem = f"{exc}" if "apt-get" in str(exc) else f"{exc}; {INSTALL_HINT}"
        except (ClusterError, OSError) as exc:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            problem = f"a PostgreSQL cluster cannot start here ({detail[:300]})"
        _CLUSTER_PROBLEMS[key] = problem
    return _CLUSTER_PROBLEMS[key]


def require_cluster(source: str | None = None) -> None:
    """Skip (or, where PostgreSQL is required, fail) unless a cluster can start here."""
    require("postgres", cluster_problem(source))


def postgres_missing(reason: str) -> NoReturn:
    """The database tests' skip (or, where PostgreSQL is required, failure) with the fix."""
    require("postgres", reason)
    raise AssertionError("unreachable: require() skips or fails")
