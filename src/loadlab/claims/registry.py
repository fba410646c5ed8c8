"""Every claim, in the order the table shows them: the families, in order, each with its
claims in order. A new family is one module with a ``CLAIMS`` tuple and one entry here."""

from __future__ import annotations

from loadlab.claims import cpu, db, ft, io, stack
from loadlab.claims.claim import Claim
from loadlab.claims.verdicts import Runs, Verdict

FAMILIES = (io, cpu, db, ft, stack)
CLAIMS: tuple[Claim, ...] = tuple(claim for family in FAMILIES for claim in family.CLAIMS)
CLAIM_IDS: tuple[str, ...] = tuple(claim.id for claim in CLAIMS)


def judge(runs: Runs, cores: int, claims: tuple[Claim, ...] = CLAIMS) -> list[Verdict]:
    """The verdicts on recorded runs (by cell name: ``plan.runs_by_name``), in order."""
    return [claim.judged(runs, cores) for claim in claims]
