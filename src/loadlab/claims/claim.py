"""A claim as one object: its id, its words, the cells it reads, its judge and its bands.

A family module (``io.py``, ``cpu.py``, ``db.py``) declares each claim's cells beside its
judge, then the ``Claim`` itself; the registry only lists the families. A cell two claims
share is declared once, beside the first claim that reads it, and the other one names
the same ``Cell``. A judge reads rounds only of the cells its claim declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadlab.claims.verdicts import (
    UNSURE,
    Decision,
    Effect,
    Runs,
    Verdict,
    cell_rounds,
    verdict,
)
from loadlab.runner.options import RunSpec


@dataclass(frozen=True)
class Sizes:
    """How large the plan's cells are: quick or full (``loadlab.claims.plan``)."""

    duration_s: float
    warmup_s: float
    async_users: int  # concurrent I/O waits held by one async process
    sync_workers: int  # workers started to hold as many concurrent waits
    repeats: int  # rounds of every cell, alternated (the machine is noisy)
    io_ms: int = 100
    cpu_work: int = 100  # ~10 ms of pure-Python work
    db_pool: int = 5  # the pool that caps one Uvicorn process's database waits
    db_users: int = 50  # more users than the pool, so that the pool is the limit

    def timing(self) -> dict[str, Any]:
        """Every cell's warm-up and measured window."""
        return dict(duration_s=self.duration_s, warmup_s=self.warmup_s)

    def io(self) -> dict[str, Any]:
        """The I/O wait scenario (``/io?ms=...``)."""
        return dict(scenario="io", io_ms=self.io_ms, **self.timing())

    def cpu(self) -> dict[str, Any]:
        """The pure-Python CPU work scenario in a ``def`` endpoint (``/cpu``)."""
        return dict(scenario="cpu", cpu_work=self.cpu_work, **self.timing())


def _anywhere() -> str | None:
    return None


@dataclass(frozen=True)
class Cell:
    """One configuration a claim measures, named (its name keys the runs a judge reads).

    ``missing``: why it cannot run on this machine (an interpreter or a server not
    installed), None when it can; such a cell is not planned and its claims say why.
    """

    name: str
    build: Callable[[Sizes, int], RunSpec]  # (sizes, cores of the machine) -> the run
    missing: Callable[[], str | None] = _anywhere

    def spec(self, sizes: Sizes, cores: int) -> RunSpec:
        return self.build(sizes, cores)


@dataclass(frozen=True)
class Claim:
    """A textbook claim, measured: written once, everything else reads it from here.

    ``holds`` and ``fails`` state its bands in words before any measuring (the thresholds
    its judge applies to the interval); ``unsure`` adds when it is inconclusive beyond a
    straddling interval. They may name figures known only when judging (``{need:.2f}``),
    given to ``bands``.
    """

    id: str
    text: str
    cells: tuple[Cell, ...]
    judge: Callable[[Reading], Verdict]
    holds: str
    fails: str
    unsure: str = ""

    def bands(self, **figures: Any) -> str:
        said = f"holds: {self.holds}; does not hold: {self.fails}"
        if self.unsure:
            said += f"; inconclusive when {self.unsure}"
        return said.format(**figures)

    def judged(self, runs: Runs, cores: int) -> Verdict:
        """The verdict on recorded runs (by cell name): inconclusive when a cell is missing
        (not measured, with the reason, when this machine cannot run it)."""
        cannot = list(dict.fromkeys(why for c in self.cells if (why := c.missing())))
        if cannot:
            said = "; ".join(cannot)
            return Verdict(self.id, self.text, UNSURE, f"not measured: {said}",
                           reason=f"not measured: {said}")
        absent = [c.name for c in self.cells if not cell_rounds(runs, c.name)]
        if absent:
            reasons = "; ".join(
                f"{n}: {(runs.get(n) or {}).get('error', 'not measured')}" for n in absent
            )
            return Verdict(self.id, self.text, UNSURE, f"runs missing or failed ({reasons})",
                           reason="runs missing or failed")
        return self.judge(Reading(self, runs, cores))


@dataclass(frozen=True)
class Reading:
    """What a judge is given: its claim, the recorded runs (each declared cell has rounds)
    and the machine's cores; its verdicts carry the claim's id and words."""

    claim: Claim
    runs: Runs
    cores: int

    def rounds(self, cell: Cell) -> list[dict[str, Any]]:
        if cell not in self.claim.cells:
            raise KeyError(f"claim {self.claim.id} reads cell {cell.name} it does not declare")
        return cell_rounds(self.runs, cell.name)

    def bands(self, **figures: Any) -> str:
        return self.claim.bands(**figures)

    def verdict(self, decision: Decision, evidence: str, effect: Effect | None = None,
                verdict_override: str | None = None, why: str = "") -> Verdict:
        return verdict(self.claim.id, self.claim.text, decision, evidence, effect,
                       verdict_override, why)

    def unsure(self, evidence: str, reason: str) -> Verdict:
        """Inconclusive without an effect: a figure the judge needs was not measured."""
        return Verdict(self.claim.id, self.claim.text, UNSURE, evidence, reason=reason)
