"""The runs the claims need: the cells every claim declares, each once, in claim order,
at quick or full sizes. Each round runs them all, so every pair alternates (A B A B ...)
and a change on the machine hits both sides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadlab.claims.claim import Cell, Claim, Sizes
from loadlab.claims.registry import CLAIMS
from loadlab.claims.verdicts import Runs
from loadlab.runner.options import RunSpec

QUICK = Sizes(duration_s=4, warmup_s=1, async_users=200, sync_workers=12, repeats=2)
FULL = Sizes(duration_s=20, warmup_s=5, async_users=1000, sync_workers=32, repeats=3)


def cells(claims: tuple[Claim, ...] = CLAIMS) -> tuple[Cell, ...]:
    """The claims' cells in order, a cell that several claims read only once."""
    found: dict[str, Cell] = {}
    for claim in claims:
        for cell in claim.cells:
            if found.setdefault(cell.name, cell) is not cell:
                raise ValueError(f"two different cells are named {cell.name!r}")
    return tuple(found.values())


def plan(sizes: Sizes, cores: int, claims: tuple[Claim, ...] = CLAIMS) -> dict[str, RunSpec]:
    """The named runs, in the order they run. A claim this machine cannot measure (a cell
    it cannot run: ``Cell.missing``) adds none of its cells: its verdict says why."""
    measurable = tuple(c for c in claims if not any(cell.missing() for cell in c.cells))
    return {cell.name: cell.spec(sizes, cores) for cell in cells(measurable)}


def runs_by_name(planned: dict[str, RunSpec], recorded: Sequence[Mapping[str, Any]]) -> Runs:
    """The recorded runs (``summary.json``'s) by the names of the cells they ran."""
    by_key = {r["key"]: r for r in recorded}
    return {name: dict(by_key[spec.key]) for name, spec in planned.items()
            if spec.key in by_key}
