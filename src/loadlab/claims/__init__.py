"""``loadlab claims``: the textbook claims, measured, with verdicts from stated thresholds.

A claim is one ``Claim`` (id, words, the cells it reads, its judge, its holds / does-not-hold
bands) in the module of its family; its id is written there and nowhere else. Each judge
reads only the recorded runs, so a verdict can be recomputed from any results directory.

The map:

- ``verdicts``: the framework: ``Effect`` (an effect size with its 95% interval over
  rounds), ``decide`` (an effect against its thresholds), ``all_of``, ``Verdict`` (one
  entry of ``claims.json``) and the readers of recorded rounds. Knows no claim.
- ``claim``: ``Claim``, ``Cell`` (one named run a claim needs), ``Sizes`` and ``Reading``
  (what a judge is given).
- ``io``, ``cpu``, ``db``, ``ft``, ``stack``: the families; each claim's cells, judge and
  ``Claim`` together (``ft``: the free-threaded build; ``stack``: server or framework).
- ``registry``: ``CLAIMS`` (the families' claims in order), ``CLAIM_IDS`` and ``judge``.
- ``plan``: ``QUICK``/``FULL`` sizes; ``plan`` (the cells to run, each once, in claim
  order); ``runs_by_name`` (recorded runs back to cell names).
- ``deciding``: ``until_decided``, more rounds of the undecided claims' cells within a
  budget (``--until-decided``; when a round of them all does not fit, ``fitting``: the
  claims nearest to deciding). ``table``: the terminal table. ``command``: ``loadlab
  claims`` itself.

Adding a claim to a family touches that module; a new family is a module with a
``CLAIMS`` tuple and one entry in ``registry.FAMILIES``.
"""

from __future__ import annotations

from loadlab.claims.claim import Cell, Claim, Reading, Sizes
from loadlab.claims.plan import FULL, QUICK, plan, runs_by_name
from loadlab.claims.registry import CLAIM_IDS, CLAIMS, judge
from loadlab.claims.verdicts import FAILS, HOLDS, UNSURE, Verdict

__all__ = [
    "CLAIMS", "CLAIM_IDS", "FAILS", "FULL", "HOLDS", "QUICK", "UNSURE", "Cell", "Claim",
    "Reading", "Sizes", "Verdict", "judge", "plan", "runs_by_name",
]
