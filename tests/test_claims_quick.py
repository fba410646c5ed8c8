"""``loadlab claims --quick`` end to end: real services, real Locust, real CPU limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.runner_cli import assert_nothing_left, kill_tagged, loadlab, summary, tagged_env

from loadlab.claims import CLAIM_IDS, QUICK, judge, plan, runs_by_name


@pytest.mark.slow
@pytest.mark.timeout(780)
def test_claims_quick_end_to_end(tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "claims"
    try:
        result = loadlab(["claims", "--quick", "--out", str(out)], env, timeout=720)
    finally:
        kill_tagged(tag)
    assert result.returncode == 0, result.stderr[-2000:]
    claims = json.loads((out / "claims.json").read_text())
    assert [c["id"] for c in claims] == list(CLAIM_IDS)
    for claim in claims:
        assert {"id", "claim", "verdict", "evidence", "effect", "reason",
                "more_rounds"} <= set(claim)
        assert claim["verdict"] in ("holds", "does not hold", "inconclusive")
        assert re.search(r"\d", claim["evidence"])  # measured figures, not prose
        assert claim["id"] in result.stdout
    # The verdicts are a function of the recorded runs: recomputing them agrees.
    data = summary(out)
    cores = data["manifest"]["cores"]
    again = judge(runs_by_name(plan(QUICK, cores), data["runs"]), cores)
    assert [v.verdict for v in again] == [c["verdict"] for c in claims]
    assert len(data["runs"]) == len(plan(QUICK, cores))
    assert all(len(r["rounds"]) == QUICK.repeats for r in data["runs"])
    report = (out / "report.html").read_text()
    assert "Claims" in report and all(cid in report for cid in CLAIM_IDS)
    assert_nothing_left(tag)
