"""Which interpreter served a run, and whether the GIL was off inside a request.

Read from the service's own ``GET /info`` while it serves the run (its ``gil_enabled`` is
read in the request itself: a free-threaded build turns the GIL back on when a module
that does not declare itself safe is imported, so the build alone proves nothing).
"""

from __future__ import annotations

import contextlib
import json
import urllib.request

from loadlab.jsontypes import JsonObject
from loadlab.runs.record import PythonFigures

INFO_TIMEOUT_S = 10.0  # a loaded service answers late; the run's figures do not wait on it


def read_interpreter(base_url: str) -> tuple[PythonFigures | None, bool | None]:
    """(python, gil_enabled) from /info; (None, None) when it does not answer in time."""
    body: JsonObject = {}
    url = f"{base_url.rstrip('/')}/info"
    with contextlib.suppress(OSError, ValueError), \
            urllib.request.urlopen(url, timeout=INFO_TIMEOUT_S) as reply:
        found = json.loads(reply.read())
        body = found if isinstance(found, dict) else {}
    python = body.get("python")
    figures: PythonFigures | None = None
    if isinstance(python, dict) and {"implementation", "version", "free_threaded"} <= set(python):
        figures = {"implementation": str(python["implementation"]),
                   "version": str(python["version"]),
                   "free_threaded": bool(python["free_threaded"])}
    gil = body.get("gil_enabled")
    return figures, gil if isinstance(gil, bool) else None


def gil_note(python: str, gil_enabled: bool | None) -> str | None:
    """A run asked for the free-threaded interpreter whose GIL was not seen off: one line
    for the run's notes (its figures are those of a GIL build), else None."""
    if python != "ft" or gil_enabled is False:
        return None
    if gil_enabled is None:
        return "warning: /info did not answer: whether the GIL was off is not known"
    return ("warning: the GIL was on inside a request on the free-threaded build (a module "
            "turned it back on): these are a GIL build's figures")
