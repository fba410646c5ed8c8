"""``loadlab claims --quick`` end to end: real services, real Locust, real CPU limits.

Three claims whose cells are cheap but of each kind (I/O-bound Uvicorn, Gunicorn under a
CPU limit, the database), chosen with ``--claim``: the plumbing is the same for all 14,
whose judges are tested on recorded runs (``test_claims_verdicts``, ``test_claims_deciding``)
and whose whole plan is tested without running it (``test_claims_select``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.runner_cli import assert_nothing_left, kill_tagged, loadlab, summary, tagged_env

from loadlab.claims import QUICK, judge, plan, runs_by_name
from loadlab.claims.registry import selected

# One cell each of I/O (async-io), of a CPU limit (procs-1, limit-2), of the database.
MEASURED = ("async-io-concurrency", "cpu-limit-caps-scaling", "async-db-pool-caps-concurrency")


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_claims_quick_end_to_end(tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "claims"
    try:
        result = loadlab(["claims", "--quick", "--out", str(out),
                          *(a for cid in MEASURED for a in ("--claim", cid))], env, timeout=300)
    finally:
        kill_tagged(tag)
    assert result.returncode == 0, result.stderr[-2000:]
    claims = json.loads((out / "claims.json").read_text())
    assert [c["id"] for c in claims] == list(MEASURED)
    for claim in claims:
        assert {"id", "claim", "verdict", "evidence", "effect", "reason",
                "more_rounds"} <= set(claim)
        assert claim["verdict"] in ("holds", "does not hold", "inconclusive")
        assert re.search(r"\d", claim["evidence"])  # measured figures, not prose
        assert claim["id"] in result.stdout
    # The verdicts are a function of the recorded runs: recomputing them agrees.
    data = summary(out)
    cores = data["manifest"]["cores"]
    chosen = selected(MEASURED)
    again = judge(runs_by_name(plan(QUICK, cores, chosen), data["runs"]), cores, chosen)
    assert [v.verdict for v in again] == [c["verdict"] for c in claims]
    assert len(data["runs"]) == len(plan(QUICK, cores, chosen)) == 4
    assert all(len(r["rounds"]) == QUICK.repeats for r in data["runs"])
    report = (out / "report.html").read_text()
    assert "Claims" in report and all(cid in report for cid in MEASURED)
    assert_nothing_left(tag)
