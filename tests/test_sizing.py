"""``loadlab size``: the target, the candidates, the search on known capacity curves, the
recommendation; bad input one line and exit 2 with nothing started; for real on a small
candidate set, and a target no configuration can meet (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _runner_util import assert_nothing_left, kill_tagged, loadlab, tagged_env

from loadlab.sizing.candidates import (
    Branch,
    Candidate,
    CandidateError,
    cores_of,
    parse_candidates,
    serving_classes,
    textbook,
)
from loadlab.sizing.search import Point, capacity, recommend, walk_branch
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
    assert wsgi[Branch("gthread", 4)] == [2, 5]  # threads for I/O
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
    outs = [capacity(Candidate(Branch("gthread", 8), w), measure, SLO, 50, 5000, 8)
            for w in (2, 3, 5)]
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
    (["--target", "flask", "--scenario", "io", "--cpus", "2"], "--slo"),
    (["--app", "no_such_dir/app.py:app", "--request", "GET /", "--cpus", "2", "--slo",
      "p95<9ms"], "no such file"),
    (["--app", f"{EXAMPLE}:app", "--target", "flask", "--request", "GET /",
      "--cpus", "2", "--slo", "p95<9ms"], "leave out --target"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], words: str, tmp_path: Path) -> None:
    env, tag = tagged_env()
    done = loadlab(["size", *args, "--out", str(tmp_path / "o")], env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "o").exists()
    assert_nothing_left(tag)


SMALL = ["--target", "flask", "--scenario", "io", "--io-ms", "20", "--cpus", "2",
         "--rounds", "2", "--duration", "2s", "--warmup", "1s", "--steps", "1"]


@pytest.mark.slow
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
    assert 0 < caps["sync ×1"] <= 50 and 0 < caps["sync ×2"] <= 100
    rec = doc["recommendation"]
    assert rec["met"] and rec["best"] in caps and rec["sentence"] in done.stdout
    assert rec["runner_up"] in caps and rec["runner_up"] != rec["best"]
    for c in doc["candidates"]:
        assert c["points"] and c["stopped"]
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
