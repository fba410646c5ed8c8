"""Claim verdicts recomputed from recorded runs: each threshold decides, either way."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from support.claim_runs import good_runs, verdicts

from loadlab.claims import (
    CLAIM_IDS,
    CLAIMS,
    FAILS,
    HOLDS,
    QUICK,
    UNSURE,
    Cell,
    Claim,
    Reading,
    Verdict,
    judge,
    plan,
    runs_by_name,
)
from loadlab.claims.cpu import (
    CPU_LIMIT_CAPS_SCALING,
    CPU_SCALES_WITH_PROCESSES,
    THREADS_NOT_PARALLEL_CPU,
)
from loadlab.claims.db import (
    ASYNC_DB_POOL_CAPS_CONCURRENCY,
    CONNECTIONS_MULTIPLY_WITH_WORKERS,
    DB_BOUND_THROUGHPUT,
    SYNC_DRIVER_BLOCKS_LOOP,
)
from loadlab.claims.io import (
    ASYNC_IO_CONCURRENCY,
    EVENT_LOOP_BLOCKING,
    SYNC_MEMORY_PER_CONCURRENCY,
    SYNC_WORKER_PER_REQUEST,
)
from loadlab.claims.registry import FAMILIES
from loadlab.runner.options import RunSpec

DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


@pytest.fixture(autouse=True)
def _free_threaded_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-threaded cells count as runnable: any interpreter stands for it here (the
    judges read recorded runs; nothing is started)."""
    monkeypatch.setenv("LOADLAB_PYTHON_FT", sys.executable)


def test_the_registry_ids_are_the_ones_docs_design_lists() -> None:
    listed = re.search(r"Claim ids \(`claims\.json`\):(.*?);", DESIGN.read_text(), re.S)
    assert listed is not None, "docs/design.md lists the claim ids"
    assert tuple(re.findall(r"`([^`]+)`", listed.group(1))) == CLAIM_IDS
    assert [v.id for v in judge({}, 2)] == list(CLAIM_IDS)
    assert len(set(CLAIM_IDS)) == len(CLAIM_IDS) == 14


def test_every_claim_a_family_declares_is_in_its_list_in_order() -> None:
    for family in FAMILIES:
        declared = [v for v in vars(family).values() if isinstance(v, Claim)]
        assert declared == list(family.CLAIMS), family.__name__


def test_each_claims_cells_are_declared_beside_its_judge() -> None:
    """In the judge's module, just before it; a shared cell before its first reader's (in
    that reader's module, when a later family reads it too)."""
    first_reader: dict[Cell, Claim] = {}
    for claim in CLAIMS:
        for cell in claim.cells:
            first = first_reader.setdefault(cell, claim)
            assert cell.build.__module__ == first.judge.__module__, (claim.id, cell.name)
        assert claim in sys.modules[claim.judge.__module__].CLAIMS
    for cell, claim in first_reader.items():
        line = cell.build.__code__.co_firstlineno
        next_judge = min(c.judge.__code__.co_firstlineno for c in CLAIMS
                         if c.judge.__module__ == claim.judge.__module__
                         and c.judge.__code__.co_firstlineno > line)
        assert next_judge == claim.judge.__code__.co_firstlineno, (claim.id, cell.name)


def test_a_judge_reads_only_the_cells_its_claim_declares() -> None:
    mine = Cell("mine", lambda s, cores: RunSpec(target="fastapi", scenario="io"))
    other = Cell("other", lambda s, cores: RunSpec(target="flask", scenario="io"))

    def peeks(seen: Reading) -> Verdict:
        seen.rounds(other)
        raise AssertionError("read an undeclared cell")

    claim = Claim("peeks", "a judge that reads too much", (mine,), peeks, "-", "-")
    runs = good_runs()
    with pytest.raises(KeyError, match="other"):
        claim.judged({"mine": runs["async-io"], "other": runs["async-io"]}, 2)


def test_two_different_cells_cannot_share_a_name() -> None:
    a = Cell("same", lambda s, cores: RunSpec(target="fastapi", scenario="io"))
    b = Cell("same", lambda s, cores: RunSpec(target="flask", scenario="io"))
    claims = tuple(Claim(f"c{i}", "-", (cell,), lambda seen: seen.unsure("-", "-"), "-", "-")
                   for i, cell in enumerate((a, b)))
    with pytest.raises(ValueError, match="same"):
        plan(QUICK, 2, claims)


def test_good_evidence_makes_every_claim_hold() -> None:
    assert set(verdicts(good_runs()).values()) == {HOLDS}


def test_nothing_measured_is_inconclusive_with_the_reason() -> None:
    for v in judge({}, 2):
        assert v.verdict == UNSURE and "not measured" in v.evidence


def _change(runs: dict[str, dict[str, Any]], name: str, fields: dict[str, Any],
            only: int | None = None) -> None:
    for i, rnd in enumerate(runs[name]["rounds"]):
        if only is not None and i != only:
            continue
        for key, value in fields.items():
            rnd[key] = {**rnd.get(key, {}), **value} if isinstance(value, dict) else value


_quota_bound: dict[str, Any] = dict(bottleneck={"resource": "cpu_quota"},
                                    database={"cpu_cores_used": 0.1})


@pytest.mark.parametrize(("claim", "change", "expected"), [
    (ASYNC_IO_CONCURRENCY, {"async-io": dict(rps=300, mean=104)}, FAILS),
    (ASYNC_IO_CONCURRENCY, {"async-io": dict(rps=1300, mean=104)}, UNSURE),
    (ASYNC_IO_CONCURRENCY,
     {"async-io": dict(rps=300, mean=104, machine={"other_cores": 1.2})}, UNSURE),
    (EVENT_LOOP_BLOCKING, {"loop-blocking": dict(probe_ms={"p50": 3.1})}, FAILS),
    (EVENT_LOOP_BLOCKING, {"loop-blocking": dict(probe_ms={"p50": 4.5})}, UNSURE),
    (SYNC_WORKER_PER_REQUEST, {"sync-2": dict(rps=60)}, FAILS),
    (SYNC_WORKER_PER_REQUEST, {"sync-2": dict(rps=60, machine={"other_cores": 1.2})},
     UNSURE),
    (SYNC_MEMORY_PER_CONCURRENCY,
     {"sync-memory": dict(server={"memory_bytes": 4e6})}, FAILS),
    (CPU_SCALES_WITH_PROCESSES, {"procs-n": dict(rps=97)}, FAILS),
    (CPU_SCALES_WITH_PROCESSES,
     {"procs-n": dict(rps=97, machine={"other_cores": 1.2})}, UNSURE),
    (THREADS_NOT_PARALLEL_CPU, {"threads-2": dict(rps=175)}, FAILS),
    (THREADS_NOT_PARALLEL_CPU, {"threads-2": dict(server={"cpu_cores_used": 1.8})}, FAILS),
    (THREADS_NOT_PARALLEL_CPU, {"threads-1": dict(machine={"other_cores": 1.0})}, UNSURE),
    (CPU_LIMIT_CAPS_SCALING, {"limit-2": dict(rps=190)}, FAILS),
    (CPU_LIMIT_CAPS_SCALING, {"limit-2": dict(server={"cpu_limit": 0.0})}, UNSURE),
    (CPU_LIMIT_CAPS_SCALING, {"limit-2": dict(status="failed", error="service died")},
     UNSURE),
    (ASYNC_DB_POOL_CAPS_CONCURRENCY, {"db-pool": dict(rps=400)}, FAILS),
    (ASYNC_DB_POOL_CAPS_CONCURRENCY, {"db-pool": dict(users=10)}, UNSURE),
    (SYNC_DRIVER_BLOCKS_LOOP, {"db-blocking": dict(probe_ms={"p50": 2.0})}, FAILS),
    (SYNC_DRIVER_BLOCKS_LOOP, {"db-blocking": dict(probe_ms={"p50": 3.0})}, UNSURE),
    (CONNECTIONS_MULTIPLY_WITH_WORKERS,
     {"db-flask": dict(database={"connections_peak": 10})}, FAILS),
    (CONNECTIONS_MULTIPLY_WITH_WORKERS,
     {"db-flask": dict(database={"connections_peak": 19})}, UNSURE),
    (DB_BOUND_THROUGHPUT, {"db-flask": dict(rps=300)}, FAILS),
    (DB_BOUND_THROUGHPUT, {"db-flask": dict(rps=300, machine={"other_cores": 1.0})}, UNSURE),
    (DB_BOUND_THROUGHPUT, {"db-flask": dict(database={"cpu_cores_used": None})}, UNSURE),
    # Between the bands (1.38x) with the database at 10% of the CPU: the runs' own
    # bottleneck decides, the service's quota in every run says the database was not it.
    (DB_BOUND_THROUGHPUT, {"db-fastapi": dict(rps=1320, **_quota_bound),
                           "db-flask": _quota_bound}, FAILS),
    (DB_BOUND_THROUGHPUT, {"db-fastapi": dict(rps=1320, **_quota_bound),
                           "db-flask": dict(_quota_bound, bottleneck={"resource": "database_cpu"})},
     UNSURE),
], ids=lambda v: v.id if isinstance(v, Claim) else None)
def test_thresholds_decide(claim: Claim, change: dict[str, dict[str, Any]],
                           expected: str) -> None:
    runs = good_runs()
    for name, fields in change.items():
        _change(runs, name, fields)
        runs[name].update(runs[name]["rounds"][0])
    found = verdicts(runs)
    assert found[claim.id] == expected
    # Claims that read none of the changed cells are untouched (threads-2 is read by
    # threads-not-parallel-cpu and free-threading-parallel-cpu alike).
    untouched = {c.id for c in CLAIMS if not {cell.name for cell in c.cells} & set(change)}
    others = {k: v for k, v in found.items() if k != claim.id and k in untouched}
    assert set(others.values()) <= {HOLDS}


def test_every_verdict_states_its_effect_with_an_interval() -> None:
    for v in judge(good_runs(), 2):
        assert v.effect is not None, v.id
        assert v.effect["low"] <= v.effect["value"] <= v.effect["high"], v
        assert v.effect["rounds"] == 2 and "[95% " in v.evidence and v.reason


def test_a_straddling_interval_is_inconclusive_and_says_how_many_more_rounds() -> None:
    runs = good_runs()
    _change(runs, "procs-n", dict(rps=175), only=0)
    _change(runs, "procs-n", dict(rps=165), only=1)
    [v] = [v for v in judge(runs, 2) if v.id == CPU_SCALES_WITH_PROCESSES.id]
    assert v.verdict == UNSURE and "straddles 1.50" in v.reason, v
    assert v.more_rounds is not None and v.more_rounds >= 1
    assert v.effect is not None and v.effect["low"] < 1.5 < v.effect["high"]


def test_one_round_has_no_interval_and_decides_nothing() -> None:
    runs = {name: run["rounds"][0] for name, run in good_runs().items()}
    for v in judge(runs, 2):
        assert v.verdict == UNSURE and v.more_rounds in (1, None), v


def test_results_from_before_rounds_are_read_as_rounds() -> None:
    old: dict[str, dict[str, Any]] = {}
    for name, run in good_runs().items():
        for i, rnd in enumerate(run["rounds"]):
            old[f"{name}#{i}"] = rnd
    assert set(verdicts(old).values()) == {HOLDS}


def test_one_core_cannot_show_cpu_scaling() -> None:
    found = verdicts(good_runs(), cores=1)
    assert found[CPU_SCALES_WITH_PROCESSES.id] == UNSURE
    assert found[THREADS_NOT_PARALLEL_CPU.id] == UNSURE


def test_plan_maps_back_and_every_cell_is_distinct() -> None:
    cells = plan(QUICK, cores=2)
    assert list(cells) == list(good_runs())  # the claims' cells, in claim order
    assert len({c.key for c in cells.values()}) == len(cells) == 24
    recorded = [{"key": spec.key, "name": name} for name, spec in cells.items()]
    assert {n: r["name"] for n, r in runs_by_name(cells, recorded).items()} == {
        n: n for n in cells}
