"""Every claim, in the order the table shows them: the families, in order, each with its
claims in order. A new family is one module with a ``CLAIMS`` tuple and one entry here."""

from __future__ import annotations

from collections.abc import Sequence

from loadlab.claims import cpu, db, ft, io, stack
from loadlab.claims.claim import Claim
from loadlab.claims.verdicts import Runs, Verdict
from loadlab.errors import UserError

FAMILIES = (io, cpu, db, ft, stack)
CLAIMS: tuple[Claim, ...] = tuple(claim for family in FAMILIES for claim in family.CLAIMS)
CLAIM_IDS: tuple[str, ...] = tuple(claim.id for claim in CLAIMS)


def selected(ids: Sequence[str] | None) -> tuple[Claim, ...]:
    """The claims named (``--claim``, repeatable), in registry order; every claim when none
    is named. An unknown id is one line for the user."""
    if not ids:
        return CLAIMS
    unknown = [i for i in ids if i not in CLAIM_IDS]
    if unknown:
        raise UserError(f"--claim: unknown claim {unknown[0]!r} (one of: "
                        f"{', '.join(CLAIM_IDS)})")
    return tuple(claim for claim in CLAIMS if claim.id in ids)


def judge(runs: Runs, cores: int, claims: tuple[Claim, ...] = CLAIMS) -> list[Verdict]:
    """The verdicts on recorded runs (by cell name: ``plan.runs_by_name``), in order."""
    return [claim.judged(runs, cores) for claim in claims]
