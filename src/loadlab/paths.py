"""Where the lab's own files are: services/, locust/, grafana/, matrices/, docker-compose.yml.

They are not Python modules, so an installed package finds them under one root, the first
of: `loadlab --repo DIR` (which sets LOADLAB_REPO, so the processes it starts agree), the
LOADLAB_REPO variable, and the checkout loadlab runs from (the source tree of an editable
install as pip recorded it, or the current directory when the running package is installed
inside it). Any other current directory is never searched: the services and the
locustfile are code the lab runs, and running loadlab from /tmp or a downloaded folder
must not run that folder's files. Containers name single directories instead
(LOADLAB_SERVICES_DIR, LOADLAB_LOCUSTFILE). Nothing is found by counting parent
directories of this file.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from importlib import metadata
from pathlib import Path

from loadlab.errors import UserError

REPO_ENV = "LOADLAB_REPO"


class LabFilesMissing(UserError, ValueError):
    """The lab's files are not under any root; the message is one line for the user."""


def editable_source() -> Path | None:
    """The directory `pip install -e` was run on (PEP 610's direct_url.json), or None."""
    try:
        text = metadata.distribution("loadlab").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    info = json.loads(text)
    url = str(info.get("url", ""))
    if not info.get("dir_info", {}).get("editable") or not url.startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def holds_this_install(directory: Path) -> bool:
    """Whether the running loadlab package lies inside ``directory`` (its own checkout:
    ``src/`` on the path, or a venv made inside the checkout)."""
    try:
        return Path(__file__).resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


def roots() -> list[Path]:
    """Where to look, in order; an explicit root is the only one."""
    configured = os.environ.get(REPO_ENV)
    if configured:
        return [Path(configured)]
    found = []
    source = editable_source()
    if source is not None:
        found.append(source)
    cwd = Path.cwd()
    if cwd not in found and holds_this_install(cwd):
        found.append(cwd)
    return found


def lab_path(relative: str, probe: str = "") -> Path:
    """`root/relative` under the first root where `root/relative/probe` exists."""
    candidates = roots()
    for root in candidates:
        if (root / relative / probe).exists():
            return root / relative
    where = " or ".join(str(root) for root in candidates) or "no checkout"
    hint = (f"check {REPO_ENV}" if os.environ.get(REPO_ENV)
            else "run loadlab from the lab's checkout or pass --repo DIR")
    raise LabFilesMissing(f"{Path(relative, probe)} not found in {where}: {hint}")


def lab_root() -> Path:
    """The checkout itself (the compose project directory)."""
    return lab_path(".", "docker-compose.yml").resolve()


def services_dir() -> Path:
    """The services' sources (``$LOADLAB_SERVICES_DIR``, else the lab's ``services/``)."""
    configured = os.environ.get("LOADLAB_SERVICES_DIR")
    if configured:
        return Path(configured)
    return lab_path("services", "fastapi/fastapi_app.py")
