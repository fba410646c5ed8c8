"""A claim's two cells measured in the same rounds, judged as a blocked design (paired by
round), and the recorded quick run of a nearly quiet machine judged again.

``tests/fixtures/claims/quiet-2rounds.summary.json``: ``loadlab claims --quick
--until-decided --budget 360`` on the 2-core machine, load from the run itself only: 25
cells x 2 rounds, each run's rounds with their per-second samples (trimmed of the
fields no judge reads). Nothing is started and nothing is timed here."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadlab import stats
from loadlab.claims import CLAIMS, FAILS, HOLDS, QUICK, UNSURE, judge, runs_by_name
from loadlab.claims.deciding import fitting, until_decided
from loadlab.claims.plan import cells
from loadlab.claims.verdicts import round_label, same_rounds
from loadlab.runs.record import run_rounds

RECORDED = Path(__file__).parent / "fixtures" / "claims" / "quiet-2rounds.summary.json"
# The quiet run of 2026-12-04 20:52 UTC after the deciding work (docs/claims.md): every
# claim decided from its 2 rounds, `claims --quick --until-decided --budget 420`, 302 s.
DECIDED_RUN = RECORDED.with_name("quiet-decided.summary.json")
LOG2 = math.log(2.0)


@pytest.fixture(autouse=True)
def _free_threaded_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded run had the free-threaded interpreter: its cells are judged here."""
    monkeypatch.setenv("LOADLAB_PYTHON_FT", sys.executable)


def seconds(level: float, pattern: tuple[float, ...], noise: float = 0.02,
            ) -> list[tuple[float, float]]:
    return [(level * (1 + noise * z), 1.0) for z in pattern]


A, B, C = (1.0, -1.0, 0.5), (-0.5, 1.0, -0.5), (0.5, 0.0, -0.5)


# --- the paired estimate -------------------------------------------------------------------

def test_steady_leaves_out_the_first_interval_and_partial_ones() -> None:
    # Recorded: the first interval from the mark and a partial last one are off.
    got = stats.steady([25.4, 19.7, 18.7, 18.5, 0.0], [0.749, 1.016, 1.016, 1.024, 0.037])
    assert got == [(19.7, 1.016), (18.7, 1.016), (18.5, 1.024)]
    assert stats.steady([0.0, 31.6, 31.5], [1.019, 1.012, 1.017]) == [(31.6, 1.012),
                                                                       (31.5, 1.017)]
    assert stats.steady([5.0], [1.0]) == []


def test_drift_that_moves_both_cells_cancels_when_paired() -> None:
    """Round 2 is 30% slower for both cells (the machine, not the claim): paired by round
    the ratio 2.0 is judged on the seconds; as two independent estimates each cell's
    rounds differ and the drift is counted against the claim."""
    base = [seconds(100.0, A), seconds(70.0, B)]
    cur = [seconds(200.0, C), seconds(140.0, A)]
    e = stats.paired_estimate(base, cur)
    assert e is not None and "rounds pooled" in e.method and e.df > 2
    low, high = e.interval()
    assert math.log(1.5) < low < LOG2 < high < math.log(2.5)
    apart = stats.difference(stats.series_estimate(base, log=True),  # type: ignore[arg-type]
                             stats.series_estimate(cur, log=True))  # type: ignore[arg-type]
    assert "rounds differ" in apart.method
    assert apart.interval()[0] < math.log(1.5)  # straddles the holding threshold


def test_a_cell_that_moved_alone_makes_the_rounds_the_observations() -> None:
    """Round 2: only the current cell 25% slower, far beyond what its seconds spread: the
    pair's rounds disagree and the interval is the paired t on the two rounds."""
    base = [seconds(100.0, A), seconds(100.0, B)]
    cur = [seconds(200.0, C), seconds(150.0, A)]
    e = stats.paired_estimate(base, cur)
    assert e is not None and "differs by round" in e.method
    assert e.df == 1 and e.observations == 2
    low, high = e.interval()
    assert low < math.log(1.5) and high > LOG2


def test_too_little_to_pair_leaves_the_rounds_to_decide() -> None:
    assert stats.paired_estimate([seconds(100.0, A)], [seconds(200.0, A)]) is None
    # No cell has two seconds in any run: no spread within a run to read.
    one = [[(100.0, 1.0)], [(90.0, 1.0)]]
    assert stats.paired_estimate(one, [[(200.0, 1.0)], [(180.0, 1.0)]]) is None
    assert stats.paired_estimate([seconds(100.0, A)] * 2, [[(0.0, 1.0), (1.0, 1.0)]] * 2) is None


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * rng.normal()
    return x


@pytest.mark.parametrize("tau", [0.0, 0.03, 0.05, 0.08])
def test_the_paired_interval_covers_the_true_ratio_whatever_the_interaction(tau: float,
                                                                           ) -> None:
    """2 rounds of 3 seconds, the machine drifting 15% between rounds, each cell moved
    on its own by ``tau`` (log sd) in each round, seconds 5% apart: the interval holds
    the true ratio 2.0 in at least 90% of trials whatever ``tau`` (the pooling test
    cannot see a small interaction with 2 rounds: POOL_ALPHA = 0.5 keeps the coverage
    it loses there near 95%; at 0.25 it fell to 85% at tau = 0.05-0.08)."""
    rng = np.random.default_rng(20261204)
    trials, covered = 400, 0
    for _ in range(trials):
        base, cur = [], []
        for _ in range(2):
            drift = math.exp(rng.normal(0, 0.15))
            for side, level in ((base, 100.0), (cur, 200.0)):
                own = drift * math.exp(rng.normal(0, tau))
                side.append([(level * own * math.exp(0.05 * z), 1.0)
                             for z in _ar1(rng, 3, 0.0)])
        e = stats.paired_estimate(base, cur)
        assert e is not None
        low, high = e.interval()
        covered += low <= LOG2 <= high
    assert covered / trials >= 0.90


def test_rounds_are_paired_by_the_round_they_ran_in() -> None:
    def rnd(run_id: str, where: str = "") -> dict[str, Any]:
        return {"run_id": run_id, "locust_json": f"{where}raw/{run_id}.json"}

    base = [rnd("007-a-r1"), rnd("007-a-r2"), rnd("000-a-r1", "more-1/")]
    cur = [rnd("008-b-r2"), rnd("001-b-r1", "more-1/"), rnd("000-b-r1", "more-2/")]
    assert [round_label(r, i) for i, r in enumerate(base)] == [":r1", ":r2", "more-1:r1"]
    pb, pc = same_rounds(base, cur)
    # r1 of the plan has no partner and more-2 none either: two pairs, in base's order.
    assert [r["run_id"] for r in pb] == ["007-a-r2", "000-a-r1"]
    assert [r["run_id"] for r in pc] == ["008-b-r2", "001-b-r1"]


# --- the recorded quick run ---------------------------------------------------------------

def recorded() -> dict[str, dict[str, Any]]:
    summary = json.loads(RECORDED.read_text())
    planned = {c.name: c.spec(QUICK, 2) for c in cells(CLAIMS)}
    return runs_by_name(planned, summary["runs"])


# Decided from the 2 recorded rounds. Before: 6 (sync-worker-per-request and
# async-db-pool-caps-concurrency straddled 110% / 1.20 on the lumps in the first interval
# of each run; cpu-limit-caps-scaling held on two independent estimates whose pair in
# fact differed by round, p = 0.09). sync-worker-per-request held too, on the gthread 2x4
# cell it had then; its gthread cell is 1x8 since, which this run did not measure.
DECIDED = {"async-io-concurrency", "event-loop-blocking",
           "sync-memory-per-concurrency", "async-db-pool-caps-concurrency",
           "sync-driver-blocks-loop", "connections-multiply-with-workers"}


def test_the_recorded_quiet_run_judged_again() -> None:
    found = {v.id: v for v in judge(recorded(), 2)}
    assert {k for k, v in found.items() if v.verdict == HOLDS} == DECIDED
    assert all(found[k].verdict == UNSURE for k in set(found) - DECIDED)
    assert "not measured" in found["sync-worker-per-request"].evidence
    scales = found["cpu-scales-with-processes"]
    assert scales.effect is not None and "paired by round" in scales.effect["method"]
    assert scales.more_rounds == 1 and "straddles 1.50" in scales.reason
    # A ratio between its two thresholds: more rounds would not decide it, and it says so.
    assert "lies between the thresholds 1.50 and 1.25" in found["db-bound-throughput"].reason
    assert found["db-bound-throughput"].more_rounds is None


def test_a_quiet_quick_run_decides_every_claim() -> None:
    """Judged from its recorded rounds: each claim holds or does not, none inconclusive,
    and the two that do not hold say which of their rules decided it."""
    summary = json.loads(DECIDED_RUN.read_text())
    planned = {c.name: c.spec(QUICK, 2) for c in cells(CLAIMS)}
    found = {v.id: v for v in judge(runs_by_name(planned, summary["runs"]), 2)}
    assert set(found) == {c.id for c in CLAIMS}
    assert [k for k, v in found.items() if v.verdict == UNSURE] == []
    assert {k for k, v in found.items() if v.verdict == FAILS} == {
        "db-bound-throughput", "server-vs-framework"}
    # The database took 13% of the CPU; every run was limited by the services' quota.
    assert "limited by the service (cpu_quota)" in found["db-bound-throughput"].reason
    # Flask /json on Granian served about twice its rate on one Gunicorn sync worker.
    ratio = found["server-vs-framework"].effect
    assert ratio is not None and ratio["low"] > 1.5
    parallel = found["free-threading-parallel-cpu"].effect
    assert parallel is not None and parallel["low"] >= 1.5


class PerCell:
    """Seven seconds a run (the recorded quick runs' pace), nothing otherwise."""

    def __init__(self, pool: dict[str, list[dict[str, Any]]]) -> None:
        self.now = 0.0
        self.pool = pool
        self.asked: list[list[str]] = []

    def __call__(self) -> float:
        return self.now

    def measure(self, names: list[str], extra: int) -> dict[str, dict[str, Any]]:
        """The recorded first round again, as if measured in ``more-N/``."""
        self.asked.append(list(names))
        self.now += 7.0 * len(names)
        out = {}
        for n in names:
            again = copy.deepcopy(self.pool[n][0])
            again["locust_json"] = f"more-{extra}/{again['locust_json']}"
            out[n] = again
        return out


def test_the_budget_left_goes_to_the_claims_nearest_to_deciding() -> None:
    """24 cells x 2 rounds at 7 s spent 336 s of 360: a round of every undecided claim's
    cells does not fit, a round of cpu-scales-with-processes' (about 1 more round, 14 s)
    and cpu-limit-caps-scaling's (procs-1 shared: 7 s more) does, and decides the first."""
    have = {name: run_rounds(run) for name, run in recorded().items()}
    clock = PerCell(have)
    done = until_decided(have, 2, clock.measure, 360.0, spent_s=336.0,
                         round_s={n: 7.0 for n in have}, clock=clock)
    assert clock.asked == [["procs-1", "procs-n", "limit-2"]]
    found = {v.id: v for v in done.verdicts}
    assert found["cpu-scales-with-processes"].verdict == HOLDS
    assert done.stopped == "--budget 360 s spent"
    assert "--budget 360 s spent" in found["threads-not-parallel-cpu"].reason


def test_fitting_takes_the_nearest_claims_and_counts_a_shared_cell_once() -> None:
    verdicts = judge(recorded(), 2)
    planned = [c.name for c in cells(CLAIMS)]
    cost = {n: 7.0 for n in planned}
    assert fitting(verdicts, CLAIMS, planned, cost, 13.9) == []
    assert fitting(verdicts, CLAIMS, planned, cost, 14.0) == ["procs-1", "procs-n"]
    assert fitting(verdicts, CLAIMS, planned, cost, 21.0) == ["procs-1", "procs-n", "limit-2"]
