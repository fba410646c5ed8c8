"""Every PromQL query a dashboard sends, with Grafana's variables filled in.

The tests run them against a real Prometheus: each must parse, and on a running lab each
must return data. ``label_values(metric, label)`` variable queries become ``metric``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def row_panels(board: Mapping[str, Any], row: str) -> Iterator[Mapping[str, Any]]:
    """The panels under the row titled ``row``: those after it up to the next row (an open
    row), or the ones it holds (a collapsed row)."""
    inside = False
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            inside = panel.get("title") == row
            if inside:
                yield from panel.get("panels", [])
        elif inside:
            yield panel


def queries(board: Mapping[str, Any], row: str | None = None) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel target, annotation and variable of a dashboard; with
    ``row``, only the targets of that row's panels."""
    panels = board.get("panels", []) if row is None else row_panels(board, row)
    for panel in panels:
        for target in panel.get("targets", []):
            yield f"{panel['title']} [{target['refId']}]", target["expr"]
    if row is not None:
        return
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation['name']}", annotation["expr"]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        match = LABEL_VALUES.match(query or "")
        if match:
            yield f"variable {variable['name']}", match["selector"]


def substitute(expr: str, values: Mapping[str, str], rate_interval: str = "20s") -> str:
    """Fill in variables as Grafana would: ``values`` maps a name to its regex or value."""
    builtins = {"__rate_interval": rate_interval, "__interval": rate_interval,
                "__range": "5m"}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in builtins:
            return builtins[name]
        if name.isdigit():  # label_replace's "$1": no Grafana variable has that name
            return match.group(0)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return VARIABLE.sub(fill, expr)
