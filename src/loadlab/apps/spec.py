"""``MODULE:ATTR`` or ``path/to/file.py:ATTR`` -> the module to import and from where.

Standard library only: the supervisor parses the name before anything starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from loadlab.servers import ServeError

# What ``loadlab serve`` tells the workers (and the compose ``app`` service sets).
APP_ENV = "LOADLAB_APP"
APP_DIR_ENV = "LOADLAB_APP_DIR"
INTERFACE_ENV = "LOADLAB_APP_INTERFACE"
INTERFACES = ("asgi", "wsgi")

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_ATTR = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")


@dataclass(frozen=True)
class AppSpec:
    """The user's app: ``module`` importable from ``app_dir`` (first on the import path),
    its attribute ``attr`` (dotted: ``api.app``), the interface when forced ("" detects)."""

    module: str
    attr: str
    app_dir: str
    interface: str = ""

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"

    def env(self) -> dict[str, str]:
        """What the workers read (``entry.create_app``)."""
        return {APP_ENV: self.target, APP_DIR_ENV: self.app_dir, INTERFACE_ENV: self.interface}


def parse(text: str, app_dir: str = "", interface: str = "") -> AppSpec:
    """The app a ``--app`` names. A file path imports the file's module from its directory
    (or, inside ``--app-dir``, as the dotted path below it); a module imports from
    ``--app-dir`` (default: the current directory), as Uvicorn's ``--app-dir`` does."""
    if interface and interface not in INTERFACES:
        raise ServeError(f"--interface must be asgi or wsgi, got {interface!r}")
    left, sep, attr = text.strip().rpartition(":")
    if not sep or not left or not _ATTR.fullmatch(attr):
        raise ServeError(f"--app must be MODULE:ATTR or path/to/file.py:ATTR, got {text!r}")
    base = Path(app_dir or os.getcwd()).expanduser().resolve()
    if app_dir and not base.is_dir():
        raise ServeError(f"--app-dir {app_dir}: no such directory")
    if left.endswith(".py") or os.sep in left or "/" in left:
        path = Path(left).expanduser()
        path = (Path.cwd() / path if not path.is_absolute() else path).resolve()
        if not path.is_file():
            raise ServeError(f"--app {text}: no such file {path}")
        if path.suffix != ".py":
            raise ServeError(f"--app {text}: not a Python file (.py)")
        if app_dir and path.is_relative_to(base):
            parts = path.relative_to(base).with_suffix("").parts
            module = ".".join(parts)
        else:
            module, base = path.stem, path.parent
        if not _MODULE.fullmatch(module):
            raise ServeError(f"--app {text}: {module!r} is not an importable module name")
        return AppSpec(module, attr, str(base), interface)
    if not _MODULE.fullmatch(left):
        raise ServeError(f"--app {text}: {left!r} is not a module name (MODULE:ATTR)")
    return AppSpec(left, attr, str(base), interface)
