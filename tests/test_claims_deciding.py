"""Claims that decide: intervals from each run's per-second samples (batch means), and
``--until-decided`` adding rounds only where a claim is undecided, within a budget.

Everything here is computed from synthetic or recorded runs with known answers; nothing is
started and nothing is timed (the loop's clock is a counter)."""

from __future__ import annotations

import copy
import itertools
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from support.claim_runs import good_runs, verdicts

from loadlab import stats
from loadlab.claims import CLAIMS, FAILS, HOLDS, QUICK, UNSURE, judge, plan
from loadlab.claims.deciding import folded, retryable, until_decided
from loadlab.claims.ft import FREE_THREADING_PARALLEL_CPU, FREE_THREADING_SINGLE_THREAD_COST
from loadlab.claims.stack import SERVER_VS_FRAMEWORK
from loadlab.runner.sampler import Scrape, ServerSampler
from loadlab.runs.record import run_rounds

SECONDS = 4  # quick's measured window, one sample a second


def ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """A stationary AR(1) series of unit variance."""
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * rng.normal()
    return x


# Each second's deviation from its round's rate, in units of ``noise``: zero-sum (the
# round's rate is its record's), uncorrelated from one second to the next.
PATTERNS = ((1.0, -1.0, 0.5, -0.5), (-0.5, 1.0, -1.0, 0.5), (0.5, -0.5, -1.0, 1.0))


def with_series(runs: dict[str, dict[str, Any]], noise: float = 0.03, seed: int = 0,
                ) -> dict[str, dict[str, Any]]:
    """Every round given per-second samples about its rate (``noise``: their relative
    spread), and the cores its requests used (the round's CPU per request); before them,
    as the sampler records it, the interval from the warm-up mark (partial, a lump of
    the counters: left out by the judges, loadlab.stats.steady)."""
    out = copy.deepcopy(runs)
    for run in out.values():
        for i, rnd in enumerate(run["rounds"]):
            server = rnd.get("server") or {}
            per_request = (float(server.get("cpu_seconds") or 0) / rnd["requests"]
                           if rnd.get("requests") else 0.01) or 0.01
            pattern = PATTERNS[(i + seed) % len(PATTERNS)]
            rps = [rnd["rps"] * 1.4] + [rnd["rps"] * (1 + noise * z) for z in pattern]
            rnd["series"] = {"seconds": [0.75] + [1.0] * len(pattern), "rps": rps,
                             "cpu_cores": [r * per_request for r in rps]}
        run["series"] = run["rounds"][-1]["series"]
    return out


def noisy_rounds(runs: dict[str, dict[str, Any]], name: str, rates: Sequence[float]) -> None:
    for rnd, rate in zip(runs[name]["rounds"], rates, strict=True):
        rnd["rps"] = rate
        rnd["requests"] = int(rate * 10)


@pytest.fixture(autouse=True)
def _free_threaded_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADLAB_PYTHON_FT", sys.executable)


# --- the batch-means interval ------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_batch_means_cover_the_true_mean_of_an_autocorrelated_series(rho: float) -> None:
    """AR(1) seconds of known mean 100: the interval holds it about 95% of the time, where
    treating the seconds as independent does not once they are correlated."""
    rng = np.random.default_rng(20261203)
    trials, covered, naive = 400, 0, 0
    for _ in range(trials):
        rounds = [[(100.0 + v, 1.0) for v in ar1(rng, 40, rho)] for _ in range(2)]
        e = stats.series_estimate(rounds)
        assert e is not None
        low, high = e.interval()
        covered += low <= 100.0 <= high
        flat = np.asarray([v for r in rounds for v, _ in r])
        half = 1.99 * flat.std(ddof=1) / math.sqrt(len(flat))
        naive += abs(flat.mean() - 100.0) <= half
    assert covered / trials >= 0.91
    if rho > 0:
        assert naive / trials <= 0.8  # the independent-seconds interval is too narrow
        assert e.batch_s > 1 and e.rho > 0.3


def test_rounds_that_disagree_are_the_observations_not_their_seconds() -> None:
    """Two rounds 20% apart with quiet seconds: their seconds cannot stand for more rounds."""
    rng = np.random.default_rng(3)
    rounds = [[(level * (1 + 0.01 * z), 1.0) for z in rng.normal(size=8)]
              for level in (100.0, 120.0)]
    e = stats.series_estimate(rounds)
    assert e is not None and "rounds as observations" in e.method
    assert e.df == 1 and e.observations == 2
    low, high = e.interval()
    assert low < 100 and high > 120


def test_rounds_that_agree_pool_their_seconds() -> None:
    rounds = [[(v, 1.0) for v in (97.0, 103.0, 101.0, 99.0)],
              [(v, 1.0) for v in (102.5, 98.5, 98.0, 103.0)]]
    e = stats.series_estimate(rounds)
    assert e is not None and "rounds pooled" in e.method
    assert e.observations == 2 * SECONDS and e.df == 2 * SECONDS - 1
    # The rounds' own interval (one degree of freedom) is several times wider.
    ci = stats.mean_ci([float(np.mean([v for v, _ in r])) for r in rounds])
    assert ci is not None
    low, high = e.interval()
    assert (ci[2] - ci[1]) > 1.5 * (high - low)


def test_a_partial_second_at_the_edge_is_merged_by_its_length() -> None:
    pairs = stats.merge_short([50.0, 100.0, 100.0], [0.2, 1.0, 1.0])
    assert pairs == [((50 * 0.2 + 100) / 1.2, 1.2), (100.0, 1.0)]


def test_one_round_or_too_few_seconds_leave_the_rounds_to_decide() -> None:
    assert stats.series_estimate([[(1.0, 1.0)] * 5]) is None
    assert stats.series_estimate([[(1.0, 1.0)] * 5, [(1.0, 1.0)]]) is None


# --- the run record keeps its seconds ------------------------------------------------------

def test_the_sampler_gives_the_window_second_by_second() -> None:
    sampler = ServerSampler("http://127.0.0.1:9/metrics", None, "http://127.0.0.1:9")
    sampler.scrapes = [
        Scrape(t=0.0, requests=0, cpu_seconds=0.0),
        Scrape(t=1.0, requests=10, cpu_seconds=0.1),  # the mark: warm-up over
        Scrape(t=2.0, requests=110, cpu_seconds=1.0),
        Scrape(t=2.5, ok=False),  # a scrape the service did not answer
        Scrape(t=3.0, requests=200, cpu_seconds=1.9),
        Scrape(t=4.0, requests=300, cpu_seconds=2.8),
        Scrape(t=9.0, requests=300, cpu_seconds=2.8),  # after the load
    ]
    sampler._mark = 1
    assert sampler.series(until=4.0) == {
        "seconds": [1.0, 1.0, 1.0], "rps": [100.0, 90.0, 100.0], "cpu_cores": [0.9, 0.9, 0.9]}
    assert sampler.series()["seconds"] == [1.0, 1.0, 1.0]  # the scrape after the load left out


def test_rounds_keep_their_series() -> None:
    from loadlab.runner.rounds import ROUND_FIELDS

    assert "series" in ROUND_FIELDS


# --- the judges, on per-second samples -----------------------------------------------------

# The cells whose rate follows the machine's CPU speed (a drift between rounds moves them).
CPU_CELLS = ("loop-blocking", "loop-threadpool", "procs-1", "procs-n", "threads-1",
             "threads-2", "limit-2", "db-fastapi", "db-flask", "ft-threads-1",
             "ft-threads-2", "json-fastapi-uvicorn", "json-fastapi-granian",
             "json-flask-gunicorn", "json-flask-granian")


def test_quick_rounds_with_their_seconds_decide_every_claim_on_a_quiet_machine() -> None:
    """Quick-sized runs (2 rounds of 4 s) of a quiet machine whose CPU ran 15% slower in
    round 2 (as recorded: 10-35%), every CPU-bound cell alike: from the rounds alone,
    each cell's two rounds 15% apart, several claims stay inconclusive; with the seconds
    and the cells paired by round (the drift cancels) every claim is decided."""
    runs = good_runs()
    for name in CPU_CELLS:
        first = runs[name]["rounds"][0]["rps"]
        noisy_rounds(runs, name, [first, first * 0.85])
    rounds_only = verdicts(runs)
    assert [k for k, v in rounds_only.items() if v == UNSURE], rounds_only
    decided = verdicts(with_series(runs, noise=0.05))
    assert set(decided.values()) == {HOLDS}, decided


def _claim_verdict(runs: dict[str, dict[str, Any]], cid: str) -> Any:
    [v] = [v for v in judge(runs, 2) if v.id == cid]
    return v


@pytest.mark.parametrize(("cid", "rates", "expected", "said"), [
    # free-threaded 2 threads barely faster than 1: threads do not run in parallel there
    (FREE_THREADING_PARALLEL_CPU.id, {"ft-threads-2": [72, 73]}, FAILS, "other side"),
    # with the GIL 2 threads ~2x: the normal build is not what the claim says
    (FREE_THREADING_PARALLEL_CPU.id, {"threads-2": [180, 182]}, FAILS, "other side"),
    # 1.3x free-threaded: between the bands
    (FREE_THREADING_PARALLEL_CPU.id, {"ft-threads-2": [91, 92]}, UNSURE, "between"),
    # the free-threaded build as fast as the normal one single-threaded
    (FREE_THREADING_SINGLE_THREAD_COST.id,
     {"ft-threads-1": [100, 101], "ft-threads-2": [195, 196]}, FAILS, "not slower"),
    (FREE_THREADING_SINGLE_THREAD_COST.id,
     {"ft-threads-1": [93.5, 93], "ft-threads-2": [180, 181]}, UNSURE, "between"),
    # Granian 2x Uvicorn on /json: the server moves the figure
    (SERVER_VS_FRAMEWORK.id, {"json-fastapi-granian": [3000, 3010]}, FAILS, "other side"),
    (SERVER_VS_FRAMEWORK.id, {"io-fastapi-granian": [1800 * 1.35, 1800 * 1.36]}, UNSURE,
     "between"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_the_new_claims_decide_either_way(cid: str, rates: dict[str, list[float]],
                                          expected: str, said: str) -> None:
    runs = good_runs()
    for name, values in rates.items():
        noisy_rounds(runs, name, values)
    v = _claim_verdict(with_series(runs, noise=0.03), cid)
    assert v.verdict == expected and said in v.reason, v
    assert v.effect is not None and "batch means" in v.effect["method"]
    # The claims that read none of the changed cells still hold (threads-not-parallel-cpu
    # reads threads-2 too: with the GIL 2 threads at 2x, it does not hold either).
    untouched = {c.id for c in CLAIMS if not {cell.name for cell in c.cells} & set(rates)}
    others = {k: x for k, x in verdicts(with_series(runs, noise=0.03)).items()
              if k != cid and k in untouched}
    assert set(others.values()) == {HOLDS}


def test_the_new_claims_hold_on_good_evidence_with_the_ratio_stated() -> None:
    v = _claim_verdict(with_series(good_runs(), noise=0.02), FREE_THREADING_SINGLE_THREAD_COST.id)
    assert v.verdict == HOLDS
    assert v.effect is not None and v.effect["low"] > 1.05
    assert "time per request, free-threaded / with the GIL 1.3" in v.evidence
    v = _claim_verdict(with_series(good_runs(), noise=0.02), SERVER_VS_FRAMEWORK.id)
    assert v.verdict == HOLDS and "FastAPI / Flask on /json" in v.evidence


def test_the_gil_found_on_inside_a_free_threaded_request_decides_nothing() -> None:
    runs = with_series(good_runs())
    for rnd in runs["ft-threads-2"]["rounds"]:
        rnd["server"] = {**rnd["server"], "gil_enabled": True}
    v = _claim_verdict(runs, FREE_THREADING_PARALLEL_CPU.id)
    assert v.verdict == UNSURE and "GIL was on" in v.reason


def test_a_busy_machine_leaves_the_free_threaded_claims_inconclusive_and_says_so() -> None:
    runs = good_runs()
    noisy_rounds(runs, "ft-threads-2", [72, 73])
    for rnd in runs["ft-threads-1"]["rounds"]:
        rnd["machine"] = {"other_cores": 1.3}
    v = _claim_verdict(with_series(runs, noise=0.03), FREE_THREADING_PARALLEL_CPU.id)
    assert v.verdict == UNSURE and v.reason.startswith("the machine was busy (1.30 cores")


def test_without_the_free_threaded_interpreter_its_claims_say_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("LOADLAB_PYTHON_FT", str(tmp_path / "no-python"))
    cells = plan(QUICK, 2)
    assert not any(spec.python == "ft" for spec in cells.values())
    assert {"ft-threads-1", "ft-threads-2"}.isdisjoint(cells)  # only their claims read them
    assert {"threads-1", "threads-2"} <= set(cells)  # threads-not-parallel-cpu reads them too
    for v in judge(with_series(good_runs()), 2):
        if v.id.startswith("free-threading-"):
            assert v.verdict == UNSURE and v.more_rounds is None
            assert v.reason == ("not measured: the free-threaded interpreter is not built "
                                "(bash .ci/build-python-ft)")
            assert not retryable(v)
        else:
            assert v.verdict == HOLDS, v


# --- --until-decided -------------------------------------------------------------------------

class Recorded:
    """A measuring function over recorded rounds: each call hands out, per cell asked
    for, the next round it holds (a cell's rounds come round again once used up)."""

    def __init__(self, pool: dict[str, list[dict[str, Any]]]) -> None:
        self.pool = {name: itertools.cycle(rounds) for name, rounds in pool.items()}
        self.asked: list[list[str]] = []

    def __call__(self, names: Sequence[str], round_no: int) -> dict[str, dict[str, Any]]:
        self.asked.append(list(names))
        return {n: copy.deepcopy(next(self.pool[n])) for n in names}


class Clock:
    """Ten seconds pass in each measuring call, nothing otherwise."""

    def __init__(self, measure: Recorded, per_call: float = 10.0) -> None:
        self.now = 0.0
        self.measure = measure
        self.per_call = per_call

    def __call__(self) -> float:
        return self.now

    def wrap(self, names: Sequence[str], round_no: int) -> dict[str, dict[str, Any]]:
        self.now += self.per_call
        return self.measure(names, round_no)


def _rounds(runs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {name: run_rounds(run) for name, run in runs.items()}


def _straddling() -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """cpu-scales-with-processes straddling 1.5 after 2 rounds (2 workers 1.6x, rounds
    far apart); recorded rounds that agree at 1.9x would decide it."""
    runs = good_runs()
    noisy_rounds(runs, "procs-n", [165, 145])
    runs = with_series(runs, noise=0.03)
    later = with_series(good_runs(), noise=0.03, seed=7)
    return runs, {name: run_rounds(run) for name, run in later.items()}


def test_until_decided_measures_only_the_undecided_claims_cells_and_stops_when_decided(
        ) -> None:
    runs, pool = _straddling()
    before = {v.id: v for v in judge(runs, 2)}
    assert before["cpu-scales-with-processes"].verdict == UNSURE
    assert before["cpu-scales-with-processes"].more_rounds is not None
    measure = Recorded(pool)
    clock = Clock(measure)
    done = until_decided(_rounds(runs), 2, clock.wrap, budget_s=360, clock=clock)
    assert done.stopped == "every claim decided"
    assert {v.verdict for v in done.verdicts} == {HOLDS}
    assert done.extra_rounds == len(measure.asked) >= 1
    # procs-1 is read by cpu-limit-caps-scaling too, but only the undecided claim's cells ran.
    assert all(asked == ["procs-1", "procs-n"] for asked in measure.asked)
    assert len(done.rounds["procs-n"]) == 2 + done.extra_rounds
    assert len(done.rounds["threads-1"]) == 2
    # The folded runs are what claims.json's verdicts are recomputed from.
    assert [v.verdict for v in judge(done.runs(), 2)] == [v.verdict for v in done.verdicts]


def test_until_decided_stops_when_the_budget_is_spent_and_says_what_is_needed() -> None:
    runs, _ = _straddling()
    measure = Recorded(_rounds(runs))  # more rounds like the first two
    clock = Clock(measure)
    # 285 s of 300 spent; a round of the two cells costs 10 s: one more round fits.
    done = until_decided(_rounds(runs), 2, clock.wrap, budget_s=300, spent_s=285,
                         round_s={n: 5.0 for n in runs}, clock=clock)
    assert done.stopped == "--budget 300 s spent"
    [v] = [v for v in done.verdicts if v.verdict == UNSURE]
    assert v.id == "cpu-scales-with-processes"
    assert "straddles 1.50" in v.reason and "--budget 300 s spent" in v.reason
    assert "procs-1, procs-n" in v.reason and "would be needed" in v.reason
    assert done.notes and done.notes[0].startswith("cpu-scales-with-processes: the interval [")
    assert measure.asked == [["procs-1", "procs-n"]] and done.extra_rounds == 1
    assert clock.now == 10 and done.spent_s == 295


def test_until_decided_measures_nothing_when_every_claim_is_decided() -> None:
    runs = with_series(good_runs())
    measure = Recorded(_rounds(runs))
    done = until_decided(_rounds(runs), 2, measure, budget_s=360, clock=lambda: 0.0)
    assert done.stopped == "every claim decided" and measure.asked == []


def test_until_decided_does_not_retry_what_more_rounds_cannot_decide() -> None:
    runs = good_runs()
    noisy_rounds(runs, "ft-threads-2", [91, 92])  # 1.3x: between the bands
    runs = with_series(runs, noise=0.03)
    measure = Recorded(_rounds(runs))
    done = until_decided(_rounds(runs), 2, measure, budget_s=360, clock=lambda: 0.0)
    assert measure.asked == []
    assert done.stopped == "the claims left undecided cannot be decided by more rounds"


def test_claims_json_entries_keep_their_fields() -> None:
    from dataclasses import asdict

    [v] = [v for v in judge(with_series(good_runs()), 2) if v.id == "cpu-scales-with-processes"]
    entry = asdict(v)
    assert {"id", "claim", "verdict", "evidence", "effect", "reason", "more_rounds"} <= set(entry)
    json.dumps(entry)
    # Both cells' seconds: 2 rounds x 4 seconds a side.
    assert entry["effect"]["observations"] == 2 * 2 * SECONDS
    assert "(16 batch means)" in entry["evidence"]


def test_folded_rounds_read_back_as_the_same_rounds() -> None:
    runs = with_series(good_runs())
    again = folded(_rounds(runs))
    assert [v.verdict for v in judge(again, 2)] == [v.verdict for v in judge(runs, 2)]
    assert len(CLAIMS) == len(judge(again, 2))


MEASURE_ONE = """
import json, sys
from pathlib import Path
from loadlab.claims.command import measuring
from loadlab.runner.options import RunSpec
from loadlab.runner.runtimes import runtime_for
spec = RunSpec(target="fastapi", scenario="json", users=2, duration_s=3, warmup_s=1)
other = RunSpec(target="flask", scenario="json", users=2, duration_s=3, warmup_s=1)
measure = measuring(Path(sys.argv[1]), {"json": spec, "other": other}, runtime_for("native"))
print(json.dumps(measure(["json"], 1)))
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_real_measure_runs_one_round_of_only_the_cells_asked_for(tmp_path: Any) -> None:
    """Plumbing: a real service and Locust, one tiny round, its seconds recorded and its
    files found from the claims' directory."""
    import subprocess

    from support.runner_cli import assert_nothing_left, kill_tagged, tagged_env

    env, tag = tagged_env()
    try:
        done = subprocess.run([sys.executable, "-c", MEASURE_ONE, str(tmp_path)], env=env,
                              text=True, capture_output=True, timeout=200)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(got) == {"json"}
    rnd = got["json"]
    assert rnd["status"] == "ok", rnd.get("error")
    series = rnd["series"]
    assert len(series["rps"]) == len(series["seconds"]) >= 1
    assert all(r > 0 for r in series["rps"])
    assert rnd["samples"].startswith("more-1/") and (tmp_path / rnd["samples"]).is_file()
    assert rnd["locust_json"].startswith("more-1/")
    ran = json.loads((tmp_path / "more-1" / "summary.json").read_text())["runs"]
    assert [r["target"] for r in ran] == ["fastapi"]
    assert_nothing_left(tag)


@pytest.mark.parametrize(("args", "said"), [
    (["--budget", "60"], "--budget applies to --until-decided"),
    (["--until-decided", "--budget", "0"], "--budget: '0' must be above 0"),
    (["--until-decided", "--budget", "soon"], "--budget: cannot read 'soon' as a duration"),
])
def test_a_bad_budget_is_one_line_and_exit_2(args: list[str], said: str, tmp_path: Any) -> None:
    from support.runner_cli import loadlab_here, tagged_env

    _, tag = tagged_env()
    done = loadlab_here(["claims", "--quick", *args, "--out", str(tmp_path / "c")], tag)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()  # nothing measured


def test_a_part_near_failing_speaks_over_one_between_its_thresholds() -> None:
    """One part failing is enough for "does not hold": a part lying between its
    thresholds (rounds cannot move it) must not hide another that a round may fail (the
    recorded case: FastAPI /json 0.77 between 0.67 and 0.80, Flask /json 2.11 [0.82, 5.41]
    across 1.50), or --until-decided would give up on a claim it can decide."""
    from loadlab.claims.verdicts import Effect, all_of, decide

    between = decide(Effect("FastAPI", 0.77, 0.74, 0.80, 2), 0.8, 0.67)
    assert between.verdict == UNSURE and between.more_rounds is None
    near_failing = decide(Effect("Flask", 2.11, 0.82, 5.41, 2), 1.25, 1.5, higher=False)
    assert near_failing.toward == FAILS and near_failing.more_rounds is not None
    both = all_of(between, near_failing)
    assert both.verdict == UNSURE and both.more_rounds == near_failing.more_rounds
    assert "straddles 1.50" in both.reason
    # To hold every part must: then the hardest part speaks.
    near_holding = decide(Effect("x", 1.2, 0.9, 1.6, 2), 1.25, 1.5, higher=False)
    assert near_holding.toward == HOLDS
    assert all_of(between, near_holding).more_rounds is None
