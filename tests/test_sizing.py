"""``loadlab size``: the target, the candidates, the search on known capacity curves, the
recommendation; bad input one line and exit 2 with nothing started; for real on a small
candidate set, and a target no configuration can meet (exit 1)."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from support.runner_cli import assert_nothing_left, kill_tagged, loadlab, loadlab_here, tagged_env

from loadlab.runs.bottleneck import BUSY_CORES
from loadlab.sizing.candidates import (
    Branch,
    Candidate,
    CandidateError,
    cores_of,
    parse_candidates,
    serving_classes,
    textbook,
)
from loadlab.sizing.search import Point, capacity, narrow_rest, recommend, walk_branch
from loadlab.sizing.slo import Slo, SloError, parse_slo

SLO = Slo("p95", 200.0, 0.01)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_shop" / "app.py"


def test_the_target_is_read() -> None:
    assert parse_slo("p95<200ms") == Slo("p95", 200.0, 0.01)
    assert parse_slo(" P99 <= 1.5s ", 0.05) == Slo("p99", 1500.0, 0.05)
    assert str(parse_slo("p50<20ms")) == "p50 < 20 ms"


@pytest.mark.parametrize("text", ["p95>200ms", "p97<200ms", "p95<0ms", "200ms", "p95<20 m"])
def test_a_bad_target_is_refused(text: str) -> None:
    with pytest.raises(SloError):
        parse_slo(text)


def test_textbook_points_for_two_cores() -> None:
    assert cores_of(2) == 2 and cores_of(0.5) == 1
    wsgi = textbook(serving_classes("flask"), 2)
    assert wsgi[Branch("sync")] == [1, 2, 5]  # 1, cores, 2·cores+1
    assert wsgi[Branch("gthread", 4)] == [1, 2, 5]  # threads for I/O
    assert sum(len(w) for w in wsgi.values()) >= 12  # the performance bar's candidates
    asgi = textbook(serving_classes("", "asgi"), 2)
    assert asgi[Branch("uvicorn")] == [1, 2, 5]  # one event loop per core, and beyond
    assert all(b.worker_class in ("uvicorn", "uvicorn-worker", "granian") for b in asgi)
    pooled = textbook(serving_classes("flask"), 2, [4, 10])
    assert {b.db_pool_size for b in pooled} == {4, 10}


def test_explicit_candidates() -> None:
    got = parse_candidates("sync:2,gthread:2x8,sync:1", serving_classes("flask"), "flask")
    assert got == {Branch("sync"): [1, 2], Branch("gthread", 8): [2]}
    assert Candidate(Branch("gthread", 8), 2).label() == "gthread 2×8"
    assert Candidate(Branch("uvicorn"), 2).label() == "uvicorn ×2"


@pytest.mark.parametrize(("text", "words"), [
    ("uvicorn:2", "does not serve flask"),
    ("sync", "expected"),
    ("sync:0", "workers"),
    ("sync:2x4", "threads mean nothing"),
])
def test_bad_candidates(text: str, words: str) -> None:
    with pytest.raises(CandidateError, match=words):
        parse_candidates(text, serving_classes("flask"), "flask")


def _known(capacities: dict[int, float], spread: float = 0.02):  # type: ignore[no-untyped-def]
    """A server whose latency meets the target up to a known rate per worker count; three
    rounds per point, served = offered (± spread) below it."""
    calls: list[tuple[int, float]] = []

    def measure(candidate: Candidate, rate: float) -> Point:
        calls.append((candidate.workers, rate))
        cap = capacities[candidate.workers]
        met = rate <= cap
        served = [min(rate, cap) * (1 + d) for d in (-spread, 0.0, spread)]
        latency = [50.0 if met else 900.0] * 3
        return Point(rate, served, latency, [0.0] * 3, met)

    return measure, calls


def test_capacity_ramps_then_bisects_to_the_known_answer() -> None:
    measure, calls = _known({2: 410.0})
    out = capacity(Candidate(Branch("gthread", 8), 2), measure, SLO, start_rate=20,
                   max_rate=5000, steps=6)
    rates = [r for _, r in calls]
    assert rates[:6] == [20, 40, 80, 160, 320, 640]  # the ramp doubles until it misses
    assert out.rate_met is not None and 400 <= out.rate_met <= 410
    assert out.rate_missed is not None and out.rate_missed > 410
    assert out.capacity == pytest.approx(out.rate_met)
    assert out.ci is not None and out.ci[0] <= out.capacity <= out.ci[1]
    assert "missed the target" in out.stopped


def test_a_start_above_capacity_ramps_down() -> None:
    measure, calls = _known({1: 30.0})
    out = capacity(Candidate(Branch("sync"), 1), measure, SLO, 200, 5000, steps=3)
    assert [r for _, r in calls][:4] == [200, 100, 50, 25]
    assert out.rate_met is not None and 25 <= out.rate_met <= 30


def test_an_unmeetable_target_has_no_capacity() -> None:
    measure, _ = _known({1: 0.5})
    out = capacity(Candidate(Branch("sync"), 1), measure, SLO, 8, 100, steps=3)
    assert out.capacity is None and "missed the target even at 1" in out.stopped
    rec = recommend([out], SLO, 2)
    assert rec.best is None and "cannot meet the target" in rec.sentence


def test_a_branch_stops_when_more_workers_no_longer_help() -> None:
    measure, calls = _known({1: 100.0, 2: 190.0, 5: 195.0, 9: 150.0})
    walk = walk_branch(Branch("sync"), [1, 2, 5, 9], measure, SLO, 20, 5000, steps=5)
    tried = sorted({w for w, _ in calls})
    assert tried == [1, 2, 5]  # 5 served no more than 2 (within the intervals): 9 not tried
    assert "9 not tried" in walk.stopped


def test_the_recommendation_names_the_runner_up_and_the_difference() -> None:
    measure, _ = _known({2: 400.0, 3: 395.0, 5: 200.0}, spread=0.03)
    outs = [capacity(Candidate(Branch("gthread", 8), w), measure, SLO, 50, 5000, 8,
                     precision=0.01) for w in (2, 3, 5)]
    rec = recommend(outs, SLO, 2)
    assert rec.best is outs[0] and rec.runner_up is outs[1]
    assert rec.difference_ci is not None and rec.difference_ci[0] <= 0 <= rec.difference_ci[1]
    assert not rec.significant and "no significant difference" in rec.sentence
    clear = recommend([outs[0], outs[2]], SLO, 2)
    assert clear.significant and "req/s more" in clear.sentence


@pytest.mark.parametrize(("args", "words"), [
    (["--target", "flask", "--scenario", "io", "--cpus", "2", "--slo", "p95>1ms"], "--slo"),
    (["--target", "flask", "--scenario", "io", "--cpus", "0", "--slo", "p95<1ms"], "--cpus"),
    (["--target", "flask", "--scenario", "io", "--cpus", "2", "--slo", "p95<9ms",
      "--candidates", "uvicorn:2"], "does not serve flask"),
    (["--target", "flask", "--cpus", "2", "--slo", "p95<9ms"], "--scenario, --locustfile"),
    (["--target", "flask", "--request", "BREW /tea", "--cpus", "2", "--slo", "p95<9ms"],
     "unknown method"),
    (["--target", "nope", "--scenario", "io", "--cpus", "2", "--slo", "p95<9ms"], "--target"),
    (["--target", "flask", "--scenario", "io", "--cpus", "2", "--slo", "p95<9ms",
      "--db-pool-sizes", "0"], "--db-pool-sizes"),
    (["--target", "flask", "--scenario", "io", "--cpus", "2", "--slo", "p95<9ms",
      "--min-capacity", "x"], "--min-capacity"),
    (["--target", "flask", "--scenario", "io", "--cpus", "2", "--slo", "p95<9ms",
      "--budget", "soon"], "--budget"),
    (["--target", "flask", "--scenario", "io", "--cpus", "2"], "--slo"),
    (["--app", "no_such_dir/app.py:app", "--request", "GET /", "--cpus", "2", "--slo",
      "p95<9ms"], "no such file"),
    (["--app", f"{EXAMPLE}:app", "--target", "flask", "--request", "GET /",
      "--cpus", "2", "--slo", "p95<9ms"], "leave out --target"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], words: str, tmp_path: Path) -> None:
    _, tag = tagged_env()
    done = loadlab_here(["size", *args, "--out", str(tmp_path / "o")], tag)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "o").exists()
    assert_nothing_left(tag)


SMALL = ["--target", "flask", "--scenario", "io", "--io-ms", "20", "--cpus", "2",
         "--rounds", "2", "--duration", "2s", "--warmup", "1s", "--steps", "1"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the command's own timeout: a loaded CI machine took over 600 s
def test_size_recommends_from_a_small_candidate_set(tmp_path: Path) -> None:
    """One sync worker serves at most 1/20 ms = 50 req/s; two, twice that."""
    env, tag = tagged_env()
    out = tmp_path / "size"
    try:
        done = loadlab(["size", *SMALL, "--candidates", "sync:1,sync:2", "--slo", "p95<200ms",
                        "--start-rate", "20", "--max-rate", "160", "--min-capacity", "10",
                        "--out", str(out)], env, timeout=900)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((out / "size.json").read_text())
    caps = {c["label"]: c["capacity_rps"] for c in doc["candidates"]}
    assert set(caps) == {"sync ×1", "sync ×2"}
    # Little's law bounds each: a worker holds each request at least 20 ms.
    assert 0 < caps["sync ×2"] <= 100
    # sync ×1 is measured, or pruned by its Little's-law bound (1 slot / >= 20 ms x 1.25)
    # once sync ×2's interval clears that bound: which depends on the machine's noise.
    one = next(c for c in doc["candidates"] if c["label"] == "sync ×1")
    if one.get("pruned"):
        assert caps["sync ×1"] is None and one["bound_rps"] <= 50 * 1.25
        assert one["stopped"].startswith("pruned") and not one["points"]
    else:
        assert 0 < caps["sync ×1"] <= 50 and one["points"]
    rec = doc["recommendation"]
    assert rec["met"] and rec["best"] == "sync ×2" and rec["sentence"] in done.stdout
    for c in doc["candidates"]:
        assert c["stopped"]
    report = (out / "report.html").read_text()
    size = report[report.index('<section id="size">'):report.index('<section id="points">')]
    assert size.count('<tr><td class="l">sync ×') == 2 and "p95 &lt; 200 ms" in size
    assert f"report: {out / 'report.html'}" in done.stdout and not (out / "size.html").exists()
    assert_nothing_left(tag)


@pytest.mark.slow
def test_an_unmeetable_target_exits_non_zero(tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "size"
    try:
        done = loadlab(["size", *SMALL, "--rounds", "1", "--candidates", "sync:1",
                        "--slo", "p95<5ms", "--start-rate", "4", "--out", str(out)],
                       env, timeout=600)
    finally:
        kill_tagged(tag)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "the budget cannot meet the target" in done.stdout
    doc = json.loads((out / "size.json").read_text())
    assert doc["recommendation"]["met"] is False
    assert_nothing_left(tag)


def test_two_rounds_are_too_few_to_call_a_difference() -> None:
    def measure(candidate: Candidate, rate: float) -> Point:
        cap = {2: 400.0, 5: 200.0}[candidate.workers]
        met = rate <= cap
        return Point(rate, [min(rate, cap) * 0.99, min(rate, cap) * 1.01],
                     [50.0 if met else 900.0] * 2, [0.0] * 2, met)

    outs = [capacity(Candidate(Branch("sync"), w), measure, SLO, 50, 5000, 8) for w in (2, 5)]
    rec = recommend(outs, SLO, 2)
    assert rec.best is outs[0] and not rec.significant
    assert "too few rounds to tell them apart (2; 3 or more" in rec.sentence


@pytest.mark.slow
def test_below_min_capacity_is_a_missed_gate(tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "size"
    try:
        done = loadlab(["size", *SMALL, "--rounds", "1", "--candidates", "sync:1",
                        "--slo", "p95<500ms", "--start-rate", "10", "--max-rate", "20",
                        "--min-capacity", "100000", "--out", str(out)], env, timeout=600)
    finally:
        kill_tagged(tag)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "gate missed: --min-capacity 100000" in done.stderr
    doc = json.loads((out / "size.json").read_text())
    assert doc["recommendation"]["met"] is True and doc["below_min_capacity"] is True
    assert_nothing_left(tag)


# --- the search's bar: pruning, the bracket, the interval rule, one server per candidate ---

from loadlab import stats  # noqa: E402
from loadlab.runner.kept import KeptRuntime  # noqa: E402
from loadlab.sizing.search import (  # noqa: E402
    LITTLE_MARGIN,
    Knowledge,
    Outcome,
    needs_rounds,
    order,
    search_all,
    window_estimate,
)


def _window(values: list[float]) -> list[tuple[float, float]]:
    return [(v, 1.0) for v in values]


def test_one_window_carries_an_interval_from_its_batch_means() -> None:
    est = window_estimate([_window([100, 102, 98, 101, 99, 100])])
    assert est is not None and est.rounds == 1 and "batch means of one window" in est.method
    low, high = est.interval()
    assert low < 100 < high and high - low < 10
    noisy = window_estimate([_window([60, 140, 90, 110, 70, 130])])
    assert noisy is not None and noisy.interval()[1] - noisy.interval()[0] > high - low
    assert window_estimate([_window([100])]) is None  # one sample: no spread to read
    pooled = window_estimate([_window([100, 101, 99]), _window([100, 99, 101])])
    assert pooled is not None and pooled.rounds == 2  # the claims' estimate over rounds


def _point(rate: float, samples: list[float], met: bool = True) -> Point:
    return Point(rate, [statistics.mean(samples)], [50.0], [0.0], met,
                 estimate=window_estimate([_window(samples)]))


def test_more_rounds_only_where_the_interval_is_wider_than_10_percent() -> None:
    tight = _point(100, [100, 101, 99, 100, 100, 101])
    wide = _point(100, [50, 150, 80, 120, 60, 140])
    hw_tight, hw_wide = tight.half_width(), wide.half_width()
    assert hw_tight is not None and hw_tight < 0.10 and not needs_rounds(tight)
    assert hw_wide is not None and hw_wide > 0.10 and needs_rounds(wide)
    assert needs_rounds(Point(100, [100.0], [50.0], [0.0], True))  # no interval at all
    assert not needs_rounds(wide, precision=1.0)


def _curve(cap_of, mean_ms: float = 25.0, noise: float = 0.0):  # type: ignore[no-untyped-def]
    """Known capacities: a point meets the target up to cap_of(candidate); its window's
    per-second samples spread by ``noise`` around what it served."""
    calls: list[tuple[str, float]] = []

    def measure(candidate: Candidate, rate: float) -> Point:
        calls.append((candidate.label(), rate))
        cap = cap_of(candidate)
        met = rate <= cap
        served = min(rate, cap)
        samples = [served * (1 + noise * d) for d in (-1, 0.5, 0, -0.5, 1)]
        return Point(rate, [served], [50.0 if met else 900.0], [0.0], met,
                     mean_ms=[mean_ms], estimate=window_estimate([_window(samples)]))

    return measure, calls


@pytest.mark.parametrize("cap", [7.3, 37.0, 410.0, 1234.0])
def test_the_bisection_converges_to_the_known_capacity(cap: float) -> None:
    measure, _ = _curve(lambda c: cap)
    out = capacity(Candidate(Branch("gevent"), 2), measure, SLO, 20, 5000, steps=10)
    assert out.rate_met is not None and out.rate_missed is not None
    assert out.rate_met <= cap < out.rate_missed  # the known answer is in the bracket
    assert out.rate_missed - out.rate_met <= max(1.0, 0.10 * out.rate_met)
    assert out.ci is not None and out.ci[0] <= out.capacity <= out.ci[1]  # type: ignore[operator]


def test_the_ramp_goes_to_the_bound_before_past_it() -> None:
    measure, calls = _curve(lambda c: 95.0)
    capacity(Candidate(Branch("sync"), 2), measure, SLO, 20, 5000, 3, bound=100.0)
    assert [r for _, r in calls][:4] == [20, 40, 80, 100]  # not 160: the bound is next



def test_a_bound_within_rounding_of_the_rate_met_is_passed_not_repeated() -> None:
    # 85 meets; the bound 85.3 rounds back to 85: the next rate must be past it (a loaded
    # CI machine measured 85 req/s over and over until its timeout).
    measure, calls = _curve(lambda c: 95.0)
    capacity(Candidate(Branch("sync"), 2), measure, SLO, 85, 5000, 3, bound=85.3)
    rates = [r for _, r in calls]
    assert rates[:2] == [85, 170] and len(rates) == len(set(rates))


def test_a_busy_machine_is_named_beside_the_recommendation() -> None:
    quiet = [_known_outcome(2, 200.0, (190.0, 210.0)), _known_outcome(1, 100.0, (95.0, 105.0))]
    rec = recommend(quiet, SLO, 2)
    assert rec.busy_cores == 0.0 and "busy" not in rec.sentence
    busy = [replace(o, points=[replace(p, other_cores=1.2) for p in o.points]) for o in quiet]
    rec = recommend(busy, SLO, 2)
    assert rec.best is not None and rec.best.capacity == 200.0
    assert rec.as_dict()["busy_cores"] == 1.2
    assert rec.sentence.endswith("The machine was busy (up to 1.20 cores of other work during "
                                 "the points): the capacities are what it could give then, "
                                 "not the configurations'.")

def _known_outcome(label_workers: int, cap: float, ci: tuple[float, float]) -> Outcome:
    return Outcome(Candidate(Branch("gevent"), label_workers), capacity=cap, ci=ci,
                   rate_met=cap, points=[Point(cap, [cap], [50.0], [0.0], True,
                                               mean_ms=[25.0])])


def test_a_candidate_whose_bound_is_below_the_best_is_pruned_with_its_reason() -> None:
    known = Knowledge()
    known.learn(_known_outcome(2, 310.0, (300.0, 320.0)))
    assert known.service_ms == 25.0
    one = known.prune(Candidate(Branch("sync"), 1))
    assert one is not None and one.pruned and one.capacity is None
    assert one.bound == pytest.approx(1 / 0.025 * LITTLE_MARGIN)  # 1 slot / 25 ms, × margin
    assert "pruned: at most 50.0 req/s (Little's law: 1 slots / 25 ms" in one.stopped
    assert "below gevent ×2's 300.0" in one.stopped
    # 2 × 16 threads may hold 32 requests: 1,600 req/s at most, not below the best.
    assert known.prune(Candidate(Branch("gthread", 16), 2)) is None
    assert known.prune(Candidate(Branch("uvicorn"), 1)) is None  # an event loop: no slots
    # Along a branch, the USL's best case (linear) from a measured count bounds the next.
    sync8 = Outcome(Candidate(Branch("sync"), 8), capacity=100.0, ci=(95.0, 105.0))
    nine = known.prune(Candidate(Branch("sync"), 9), [sync8])
    assert nine is not None and nine.bound == pytest.approx(105.0 * 9 / 8)
    assert "linear scaling" in nine.stopped


def test_an_empty_knowledge_prunes_nothing() -> None:
    assert Knowledge().prune(Candidate(Branch("sync"), 1)) is None


def test_the_search_measures_the_most_room_first_and_prunes_the_slot_bound() -> None:
    """An app whose requests each hold a slot 25 ms, on 2 cores that serve 300 req/s at
    most: a sync worker serves at most 40 req/s, threads multiply that."""

    def cap_of(c: Candidate) -> float:
        slot_bound = c.workers * c.threads / 0.025 if c.worker_class in ("sync",
                                                                          "gthread") else 1e9
        return min(slot_bound, 300.0)

    measure, calls = _curve(cap_of, noise=0.01)
    branches = textbook(serving_classes("", "wsgi"), 2)
    walks = search_all(branches, measure, SLO, 20, 5000, steps=6)
    assert [w.branch for w in walks][:2] == [b for b, _ in order(branches)][:2]
    assert walks[0].branch.worker_class in ("gevent", "granian")  # unbounded slots first
    outcomes = {o.candidate.label(): o for w in walks for o in w.outcomes}
    assert len(outcomes) == sum(len(w) for w in branches.values()) >= 12  # none dropped
    measured = {label for label, _ in calls}
    for label in ("sync ×1", "sync ×2", "sync ×5", "gthread 1×4"):
        o = outcomes[label]
        assert o.pruned and label not in measured, label
        assert o.bound is not None and o.bound < 300.0 * 0.97
    best = max((o for o in outcomes.values() if o.capacity), key=lambda o: o.capacity or 0)
    assert best.rate_met is not None and 270 <= best.rate_met <= 300
    assert "pruned" not in best.stopped
    # A pruned candidate's bound is honest: the known capacity is below it.
    for o in outcomes.values():
        if o.pruned and o.bound is not None:
            assert cap_of(o.candidate) <= o.bound
        elif o.pruned:  # left by a branch that stopped: the branch's reason
            assert o.stopped.startswith("pruned: the branch stopped (")


def test_a_capacity_wider_than_10_percent_gets_rounds_until_it_is_not() -> None:
    asked: list[int] = []
    wide = [0.6, 1.4, 0.7, 1.3]

    def measure(candidate: Candidate, rate: float) -> Point:
        met = rate <= 100
        served = min(rate, 100.0)
        return Point(rate, [served], [50.0 if met else 900.0], [0.0], met,
                     estimate=window_estimate([_window([served * f for f in wide])]))

    def refine(candidate: Candidate, point: Point) -> Point | None:
        n = len(point.rps) + 1
        asked.append(n)
        if n > 3:
            return None
        # The second round's window is steady: pooled, the interval narrows.
        windows = [_window([point.rate * f for f in wide])] + [
            _window([point.rate * f for f in (0.99, 1.01, 1.0, 1.0)] * 4)] * (n - 1)
        return Point(point.rate, [point.rate] * n, [50.0] * n, [0.0] * n, True,
                     estimate=stats.series_estimate(windows))

    out = capacity(Candidate(Branch("sync"), 1), measure, SLO, 20, 5000, 6, refine=refine)
    met = out.met_point
    assert met is not None and len(met.rps) == 1 + len([n for n in asked if n <= 3])
    assert asked and all(n <= 4 for n in asked)
    hw = met.half_width()
    assert hw is not None and (hw <= 0.10 or len(met.rps) == 3)
    # A candidate whose interval lies wholly below the best so far gets no more rounds.
    asked.clear()
    below = capacity(Candidate(Branch("sync"), 1), measure, SLO, 20, 5000, 6,
                     refine=refine, floor=1000.0)
    assert asked == [] and below.met_point is not None and needs_rounds(below.met_point)
    # A point already within ±10% gets no further round.
    wide[:] = [1.0, 1.01, 0.99, 1.0]
    capacity(Candidate(Branch("sync"), 1), measure, SLO, 20, 5000, 6, refine=refine)
    assert asked == []


def test_the_budget_left_narrows_the_wide_capacities_best_first() -> None:
    """The search leaves a candidate wholly below the best wide (it cannot change the
    answer); the rest of the budget gives it rounds beyond --rounds until it is within
    ±10%, the highest capacity first, and stops when the budget does."""
    noisy = [0.6, 1.4, 0.7, 1.3]
    steady = [0.99, 1.01, 1.0, 1.0] * 4

    def measure(candidate: Candidate, rate: float) -> Point:
        cap = 100.0 * candidate.workers
        served = min(rate, cap)
        return Point(rate, [served], [50.0 if rate <= cap else 900.0], [0.0], rate <= cap,
                     estimate=window_estimate([_window([served * f for f in noisy])]))

    asked: list[tuple[int, int]] = []

    def refine(candidate: Candidate, point: Point) -> Point | None:
        n = len(point.rps) + 1
        asked.append((candidate.workers, n))
        windows = ([_window([point.rate * f for f in noisy])]
                   + [_window([point.rate * f for f in steady])] * (n - 1))
        return Point(point.rate, [point.rate] * n, [50.0] * n, [0.0] * n, True,
                     estimate=stats.series_estimate(windows))

    def outcomes() -> list:  # type: ignore[type-arg]
        return [capacity(Candidate(Branch("sync"), w), measure, SLO, 20, 5000, 6)
                for w in (1, 2)]

    wide = outcomes()
    assert all(o.met_point is not None and needs_rounds(o.met_point) for o in wide)
    assert narrow_rest(wide, refine, lambda: True) == ["sync ×2", "sync ×1"]
    assert [w for w, _ in asked] == sorted(w for w, _ in asked)[::-1]  # ×2 first
    assert all(o.met_point is not None and not needs_rounds(o.met_point) for o in wide)
    # No time left: nothing more is measured.
    asked.clear()
    assert narrow_rest(outcomes(), refine, lambda: False) == [] and asked == []
    # Time for one round only: the best gets it, and the search stops there.
    rounds_left = [1]

    def one_more() -> bool:
        return rounds_left[0] > 0

    def counted(candidate: Candidate, point: Point) -> Point | None:
        rounds_left[0] -= 1
        return refine(candidate, point)

    asked.clear()
    assert narrow_rest(outcomes(), counted, one_more) == ["sync ×2"]
    assert asked == [(2, 2)]


class _Recorded:
    """A runtime that only counts: which configurations were started and stopped."""

    name = "recorded"

    def __init__(self) -> None:
        self.started: list[int] = []
        self.stopped = 0
        self.up = False

    def start(self, cfg, env=None):  # type: ignore[no-untyped-def]
        from loadlab.runner.runtime_base import Endpoint
        self.started.append(cfg.workers)
        self.up = True
        return Endpoint(f"http://127.0.0.1/{len(self.started)}", "", pid=None)

    def stop(self) -> None:
        self.stopped += 1
        self.up = False

    def alive(self) -> bool:
        return self.up


def test_one_service_per_candidate_for_all_its_points() -> None:
    from loadlab.serve import ServerConfig

    inner = _Recorded()
    kept = KeptRuntime(inner)  # type: ignore[arg-type]
    two = ServerConfig(framework="flask", worker_class="sync", workers=2, port=0)
    five = ServerConfig(framework="flask", worker_class="sync", workers=5, port=0)
    a = kept.start(two)
    kept.stop()  # a run ends: the service stays
    assert kept.start(two) == a and kept.warm(two) and inner.started == [2]
    assert not kept.warm(two, {"DATABASE_URL": "x"})  # another environment: another service
    kept.start(five)  # another candidate: the first stops, a second starts
    assert inner.started == [2, 5] and inner.stopped == 1 and kept.starts == 2
    inner.up = False  # the service died: the next run starts it again
    kept.start(five)
    assert inner.started == [2, 5, 5]
    kept.close()
    assert not inner.up


GIL_APP = '''
import time


def app(environ, start_response):
    """Holds the GIL for 10 ms of this thread's CPU a request (pure Python busy loop; a
    wall-clock loop would let threads share the 10 ms)."""
    end = time.thread_time() + 0.010
    while time.thread_time() < end:
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''

IO_APP = '''
import time


def app(environ, start_response):
    """Waits 50 ms a request (an I/O wait: the GIL is released)."""
    time.sleep(0.050)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


def _size_app(tmp_path: Path, source: str, extra: list[str]) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    app = tmp_path / "app.py"
    app.write_text(source)
    env, tag = tagged_env()
    out = tmp_path / "size"
    try:
        done = loadlab(["size", "--app", f"{app}:app", "--request", "GET /", "--cpus", "2",
                        "--out", str(out), *extra], env, timeout=900)
    finally:
        kill_tagged(tag)
    assert_nothing_left(tag)
    assert (out / "size.json").exists(), done.stderr[-3000:]
    return done.returncode, json.loads((out / "size.json").read_text()), done.stdout


@pytest.mark.slow
def test_an_app_holding_the_gil_is_recommended_processes(tmp_path: Path) -> None:
    """10 ms of the GIL a request: one process serves at most 100 req/s whatever its
    threads; two processes (workers = cores) twice that."""
    code, doc, _ = _size_app(tmp_path, GIL_APP, [
        "--candidates", "sync:2,gthread:1x4", "--slo", "p95<500ms", "--start-rate", "20",
        "--max-rate", "400", "--steps", "2", "--duration", "3s"])
    assert code == 0
    rec = doc["recommendation"]
    if rec["best"] != "sync ×2":
        # Two processes need two cores: with other work taking one, the machine could not
        # show the difference, and the recommendation must say so.
        assert rec["busy_cores"] > BUSY_CORES and "The machine was busy" in rec["sentence"], \
            rec["sentence"]
    caps = {c["label"]: c for c in doc["candidates"]}
    assert caps["gthread 1×4"]["capacity_rps"] is None or \
        caps["gthread 1×4"]["capacity_rps"] <= 100 * 1.1  # one GIL: at most 1 / 10 ms


@pytest.mark.slow
def test_an_app_waiting_on_io_gets_threads_and_littles_law(tmp_path: Path) -> None:
    """50 ms of I/O a request: 8 threads serve at most 8 / 50 ms = 160 req/s; one sync
    worker at most 20, which the search prunes once the threads are measured."""
    code, doc, _ = _size_app(tmp_path, IO_APP, [
        "--candidates", "sync:1,gthread:1x8", "--slo", "p95<300ms", "--start-rate", "40",
        "--max-rate", "400", "--steps", "3", "--duration", "3s"])
    assert code == 0
    rec = doc["recommendation"]
    assert rec["best"] == "gthread 1×8", rec["sentence"]
    best = next(c for c in doc["candidates"] if c["label"] == "gthread 1×8")
    # Little's law: 8 slots each held 50 ms serve at most 160 req/s (within the interval;
    # the latency from the intended send time also holds the accept queue's wait, so it is
    # the service time, not that latency, that bounds the rate); threads that waited in
    # parallel serve well beyond one sync worker's 20.
    assert best["ci"][0] <= 160 and best["capacity_rps"] >= 2 * 20
    sync = next(c for c in doc["candidates"] if c["label"] == "sync ×1")
    if sync["pruned"]:
        assert "(1 pruned)" in rec["sentence"]
        assert "Little's law: 1 slots" in sync["stopped"] and sync["bound_rps"] < best["ci"][0]
        assert sync["points"] == []
    else:
        assert sync["capacity_rps"] is None or sync["capacity_rps"] <= 20 * 1.1
    assert doc["search"]["candidates"] == 2


def test_a_rate_that_misses_over_more_rounds_is_no_capacity() -> None:
    """Met once, missed over its rounds, nothing lower measured: no capacity claimed."""

    def measure(candidate: Candidate, rate: float) -> Point:
        met = rate <= 50
        return Point(rate, [rate], [50.0 if met else 900.0], [0.0], met,
                     estimate=window_estimate([_window([rate * f for f in (0.5, 1.5, 1)])]))

    def refine(candidate: Candidate, point: Point) -> Point | None:
        return Point(point.rate, [point.rate] * 2, [50.0, 900.0], [0.0] * 2, False)

    out = capacity(Candidate(Branch("sync"), 2), measure, SLO, 40, 5000, 3, refine=refine)
    assert out.capacity is None and out.rate_met is None
    assert "missed the target over 2 rounds, and no lower rate was measured" in out.stopped


def test_the_recommendation_counts_the_pruned() -> None:
    known = Knowledge()
    best = _known_outcome(2, 310.0, (300.0, 320.0))
    known.learn(best)
    pruned = known.prune(Candidate(Branch("sync"), 1))
    assert pruned is not None
    rec = recommend([best, pruned], SLO, 2)
    assert rec.best is best and rec.runner_up is None
    assert "no other configuration measured met the target (1 pruned)" in rec.sentence
