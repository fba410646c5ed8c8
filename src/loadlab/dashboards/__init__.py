"""Grafana dashboards as code: ``loadlab dashboards`` writes grafana/dashboards/*.json.

Output is deterministic (sorted keys, fixed uids), so the committed JSON can be checked
against the generator and nobody edits the JSON by hand.

The map: this module holds ``BOARDS``, ``render`` and ``stale``; one module per board, one
function per panel: ``comparison`` (the services side by side), ``service`` (one
service's drill-down), ``loadgen`` (Locust's side), with ``database_row`` (the Database row of
the first two) and ``common`` (datasource, panel defaults); ``queries`` (every PromQL query
with Grafana's variables filled in, for the tests); ``kube`` (the Kubernetes manifests'
generated files); ``cli`` (``loadlab dashboards [--check]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from loadlab.dashboards import comparison, loadgen, service
from loadlab.dashboards.common import finish
from loadlab.paths import lab_path

BOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "comparison.json": comparison.build,
    "service.json": service.build,
    "loadgen.json": loadgen.build,
}


def default_dir() -> Path:
    return lab_path("grafana/dashboards")


def model(build: Callable[[], db.Dashboard]) -> dict[str, Any]:
    """The board's JSON model: the SDK's, with the look every board shares."""
    return finish(json.loads(json.dumps(build().build(), cls=JSONEncoder)))


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        name: json.dumps(model(build), sort_keys=True, indent=2) + "\n"
        for name, build in BOARDS.items()
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names whose file differs from the generator's output (or is missing)."""
    return [
        name for name, text in render().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
