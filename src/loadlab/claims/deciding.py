"""``--until-decided``: more rounds of only the cells of claims still undecided, until each
is decided or the budget is spent, and then, for each one left, precisely why.

The loop knows nothing of services or Locust: it is given a ``Measure`` (cell names and
a round number -> one new round record per cell) and a clock, so that it can be run on
recorded rounds (the tests) as on real ones (``command``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from loadlab.claims.claim import Claim
from loadlab.claims.registry import CLAIMS, judge
from loadlab.claims.verdicts import UNSURE, Runs, Verdict
from loadlab.runner.rounds import combine
from loadlab.runs.record import Run

# (cell names, the extra round's number from 1) -> one new round record per cell name.
Measure = Callable[[Sequence[str], int], Mapping[str, dict[str, Any]]]
# Reasons an inconclusive verdict has that more rounds may change: an interval that
# straddles a threshold (more_rounds set), a busy machine (it may quieten), a failed run.
RETRIED = ("the machine was busy", "runs missing or failed")


@dataclass
class Decided:
    """What the loop ended with: the verdicts, the rounds per cell, why it stopped."""

    verdicts: list[Verdict]
    rounds: dict[str, list[dict[str, Any]]]
    extra_rounds: int
    spent_s: float
    stopped: str
    notes: list[str] = field(default_factory=list)

    def runs(self) -> Runs:
        return folded(self.rounds)


def folded(rounds: Mapping[str, Sequence[dict[str, Any]]]) -> Runs:
    """Each cell's rounds as one run (medians on top, every round kept)."""
    return {name: dict(combine([cast(Run, r) for r in rs])) if len(rs) > 1
            else {**rs[0], "rounds": list(rs)} for name, rs in rounds.items() if rs}


def retryable(v: Verdict) -> bool:
    """Whether more rounds may decide this verdict."""
    if v.verdict != UNSURE or v.reason.startswith("not measured"):
        return False
    return v.more_rounds is not None or any(v.reason.startswith(r) for r in RETRIED)


def undecided_cells(verdicts: Sequence[Verdict], claims: Sequence[Claim],
                    planned: Sequence[str]) -> list[str]:
    """The planned cells of the claims more rounds may decide, in plan order."""
    wanted = {c.name for v, claim in zip(verdicts, claims, strict=True) if retryable(v)
              for c in claim.cells}
    return [name for name in planned if name in wanted]


def fitting(verdicts: Sequence[Verdict], claims: Sequence[Claim], planned: Sequence[str],
            cost: Mapping[str, float], left_s: float) -> list[str]:
    """The cells of the retryable claims that fit in ``left_s``, the claims taken nearest
    to deciding first (fewest more rounds likely needed, then the cheapest round), a cell
    two of them read counted once; in plan order."""
    def rounds_then_cost(pair: tuple[Verdict, Claim]) -> tuple[float, float]:
        v, claim = pair
        return (v.more_rounds if v.more_rounds is not None else math.inf,
                sum(cost.get(c.name, 0.0) for c in claim.cells))

    chosen: set[str] = set()
    for _, claim in sorted(((v, c) for v, c in zip(verdicts, claims, strict=True)
                            if retryable(v)), key=rounds_then_cost):
        more = {c.name for c in claim.cells if c.name in planned} | chosen
        if sum(cost.get(n, 0.0) for n in more) <= left_s:
            chosen = more
    return [name for name in planned if name in chosen]


def until_decided(rounds: Mapping[str, Sequence[dict[str, Any]]], cores: int,
                  measure: Measure, budget_s: float, *, spent_s: float = 0.0,
                  claims: tuple[Claim, ...] = CLAIMS, round_s: Mapping[str, float] | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Decided:
    """Add rounds of the undecided claims' cells while the budget allows: a round of all
    of them, or, when that does not fit, of the claims nearest to deciding that do.

    ``rounds``: the rounds measured so far by cell name (plan order); ``spent_s``: the
    budget they used already; ``round_s``: a cell's expected seconds per round (else the
    mean of what the loop measures, starting from the mean of round_s given).
    """
    have = {name: list(rs) for name, rs in rounds.items()}
    planned = list(have)
    cost = dict(round_s or {})
    began = clock() - spent_s
    extra = 0
    while True:
        verdicts = judge(folded(have), cores, claims)
        todo = undecided_cells(verdicts, claims, planned)
        spent = clock() - began
        if not todo:
            left = [v for v in verdicts if v.verdict == UNSURE]
            stopped = ("every claim decided" if not left else
                       "the claims left undecided cannot be decided by more rounds")
            return Decided(verdicts, have, extra, spent, stopped)
        typical = sum(cost.values()) / len(cost) if cost else 10.0
        need = sum(cost.get(name, typical) for name in todo)
        if spent + need > budget_s:
            # A round of them all does not fit: a round of the claims nearest to deciding
            # whose cells do, when there are any.
            some = fitting(verdicts, claims, planned,
                           {n: cost.get(n, typical) for n in planned}, budget_s - spent)
            if not some:
                return _spent(verdicts, claims, have, extra, spent, budget_s, todo, need)
            todo = some
        started = clock()
        new = measure(todo, extra + 1)
        took = clock() - started
        for name in todo:
            if name in new:
                have[name].append(new[name])
            cost[name] = took / len(todo)
        extra += 1


def _spent(verdicts: list[Verdict], claims: Sequence[Claim],
           have: dict[str, list[dict[str, Any]]], extra: int, spent: float, budget_s: float,
           todo: list[str], need: float) -> Decided:
    """Stopped by the budget: each verdict still open says what it would need."""
    out, notes = [], []
    for v, claim in zip(verdicts, claims, strict=True):
        if not retryable(v):
            out.append(v)
            continue
        cells = [c.name for c in claim.cells if c.name in todo]
        rounds = min(len(have[c]) for c in cells) if cells else 0
        wants = (f"about {v.more_rounds} more round(s)" if v.more_rounds
                 else "a quieter machine or more rounds")
        why = (f"--budget {budget_s:g} s spent ({spent:.0f} s, {rounds} rounds of "
               f"{', '.join(cells)}); {wants} of these cells would be needed, "
               f"{need:.0f} s a round for all undecided cells")
        notes.append(f"{v.id}: {v.reason}; {why}")
        out.append(replace(v, reason=f"{v.reason}; {why}", evidence=f"{v.evidence}; {why}"))
    return Decided(out, have, extra, spent, f"--budget {budget_s:g} s spent", notes)
