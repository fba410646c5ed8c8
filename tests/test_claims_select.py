"""``loadlab claims --claim ID``: which claims a run measures, and the whole plan without
running it (the end-to-end test measures three claims: ``test_claims_quick``)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from loadlab.claims import CLAIM_IDS, CLAIMS, QUICK, judge, plan
from loadlab.claims.registry import selected
from loadlab.errors import UserError
from loadlab.report.html import render


def test_no_claim_named_measures_every_claim_and_every_cell() -> None:
    assert selected(None) == selected([]) == CLAIMS
    whole = plan(QUICK, 2, selected(None))
    assert whole == plan(QUICK, 2)
    measurable = [c for c in CLAIMS if not any(cell.missing() for cell in c.cells)]
    assert {cell.name for c in measurable for cell in c.cells} == set(whole)
    assert [v.id for v in judge({}, 2, selected(None))] == list(CLAIM_IDS)


def test_named_claims_run_only_their_cells_in_registry_order() -> None:
    chosen = selected(["cpu-limit-caps-scaling", "async-io-concurrency",
                       "cpu-scales-with-processes"])
    assert [c.id for c in chosen] == ["async-io-concurrency", "cpu-scales-with-processes",
                                      "cpu-limit-caps-scaling"]
    # procs-1 is read by two of them and runs once.
    assert list(plan(QUICK, 2, chosen)) == ["async-io", "procs-1", "procs-n", "limit-2"]
    assert [v.id for v in judge({}, 2, chosen)] == [c.id for c in chosen]


def test_an_unknown_claim_is_a_user_error_naming_the_ids() -> None:
    with pytest.raises(UserError, match=r"--claim: unknown claim 'nope' \(one of: "
                                        r"async-io-concurrency, "):
        selected(["async-io-concurrency", "nope"])


def test_the_command_refuses_an_unknown_claim_in_one_line_before_running(
        tmp_path: Path) -> None:
    out = tmp_path / "claims"
    result = subprocess.run(
        [sys.executable, "-m", "loadlab", "claims", "--quick", "--out", str(out),
         "--claim", "async-io-concurrency", "--claim", "no-such-claim"],
        text=True, capture_output=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "unknown claim 'no-such-claim'" in result.stderr
    assert not out.exists()  # nothing ran


def test_the_help_offers_claim() -> None:
    result = subprocess.run([sys.executable, "-m", "loadlab", "claims", "--help"],
                            text=True, capture_output=True, timeout=60)
    assert result.returncode == 0 and "--claim ID" in result.stdout


def test_the_report_shows_every_claims_verdict() -> None:
    claims = json.loads(json.dumps([asdict(v) for v in judge({}, 2)]))
    report = render({"manifest": {}, "runs": []}, claims, Path("."))
    assert "Claims" in report and all(cid in report for cid in CLAIM_IDS)
