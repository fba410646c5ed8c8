"""Which PostgreSQL binaries the lab runs: ``PG_BIN``, the system's, or the ``pgserver`` wheel's.

The system's are preferred (Debian's ``postgresql`` package, newest major first, then a
``postgres`` on ``PATH``); the wheel bundles real PostgreSQL 16 binaries for machines that
only have Python.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadlab.errors import UserError

INSTALL_HINT = "apt-get install postgresql (or: pip install 'loadlab[db]' for the pgserver wheel)"
SOURCES = ("system", "pgserver")


class PostgresUnavailable(UserError, RuntimeError):
    """No usable PostgreSQL binaries (or no driver) on this machine."""


@dataclass(frozen=True)
class Binaries:
    """A directory with ``initdb`` and ``postgres``, where it came from, and its version."""

    bindir: Path
    source: str  # "system", "pgserver" or "PG_BIN"
    version: str  # e.g. "15.14"

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def exe(self, name: str) -> str:
        return str(self.bindir / name)


def _usable(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                         text=True, timeout=30, check=False).stdout
    found = re.search(r"\)\s*(\d+(?:\.\d+)?)", out) or re.search(r"(\d+(?:\.\d+)?)", out)
    if not found:
        raise PostgresUnavailable(f"{bindir / 'postgres'} --version said {out.strip()!r}")
    return found.group(1)


def _major_key(path: str) -> tuple[int, str]:
    name = Path(path).parent.name
    return (int(name) if name.isdigit() else -1, name)


def system_bindirs() -> list[Path]:
    """Debian/Ubuntu's versioned directories, newest first, then ``postgres`` on PATH."""
    found = [Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                            key=_major_key, reverse=True)]
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent)
    return [d for i, d in enumerate(found) if _usable(d) and d not in found[:i]]


def pgserver_bindir() -> Path | None:
    """The wheel's ``pginstall/bin``, found without importing it (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if _usable(bindir) else None


def find_binaries(source: str | None = None) -> Binaries:
    """``PG_BIN`` when set, else the system's, else the wheel's; ``source`` forces one."""
    if source is None and os.environ.get("PG_BIN"):
        bindir = Path(os.environ["PG_BIN"])
        if not _usable(bindir):
            raise PostgresUnavailable(f"PG_BIN={bindir} has no executable initdb and postgres")
        return Binaries(bindir, "PG_BIN", _version(bindir))
    if source not in (None, *SOURCES):
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    if source in (None, "system"):
        for bindir in system_bindirs():
            return Binaries(bindir, "system", _version(bindir))
    if source in (None, "pgserver"):
        wheel = pgserver_bindir()
        if wheel is not None:
            return Binaries(wheel, "pgserver", _version(wheel))
    where = {"system": "no system PostgreSQL (/usr/lib/postgresql/*/bin or postgres on PATH)",
             "pgserver": "no pgserver wheel"}
    missing = "; ".join(where[s] for s in SOURCES if source in (None, s))
    raise PostgresUnavailable(f"{missing}: {INSTALL_HINT}")
