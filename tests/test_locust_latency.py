"""Latency at microsecond resolution: the HDR histogram on its own, then through real Locust
(standalone and master + worker) and the runner, against a sub-millisecond endpoint."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from support.locust_process import ROOT, Locust, free_port, headless
from support.runner_cli import SHORT, kill_tagged, loadlab, tagged_env

from loadlab.launch import ServiceProcess

sys.path.insert(0, str(ROOT / "locust"))
from _latency import Latency  # imports nothing from Locust


def test_percentiles_keep_three_significant_digits() -> None:
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-1.5, 0.6) for _ in range(20_000))  # ~0.2 ms
    lat = Latency()
    for v in values:
        lat.add(v)
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert lat.percentile(q) == pytest.approx(exact, rel=2e-3, abs=1.5e-3)
    assert lat.percentile(0.95) > 0 and lat.max_ms == pytest.approx(values[-1], rel=1e-3)
    assert lat.mean_ms == pytest.approx(sum(values) / len(values))


def test_merged_histograms_equal_one_histogram_of_everything() -> None:
    rng = random.Random(3)
    parts = [[rng.uniform(0.05, 40.0) for _ in range(3000)] for _ in range(3)]
    whole, merged = Latency(), Latency()
    for part in parts:
        one = Latency()
        for v in part:
            one.add(v)
            whole.add(v)
        merged.merge(json.loads(json.dumps(one.dump())))  # as it travels to the master
    assert merged.total == whole.total == 9000
    for q in (0.5, 0.9, 0.99):
        assert merged.percentile(q) == whole.percentile(q)
    bounds = (0.0001, 0.001, 0.01, 0.1)
    assert merged.count_at_or_below(bounds) == whole.count_at_or_below(bounds)
    everything = [v for part in parts for v in part]
    assert merged.count_at_or_below((0.01,))[0] == pytest.approx(
        sum(v <= 10.0 for v in everything), abs=5)


def _assert_sub_ms_gate_fails(returncode: int, output: str, report: dict | None) -> None:
    assert report is not None, output[-2000:]
    lat = report["latency_ms"]
    assert report["latency_source"] == "hdr"
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], lat
    assert returncode == 1, output[-2000:]
    assert "gate FAILED: --max-p95-ms 0.001, measured" in output
    failed = {g["option"]: g for g in report["gates"] if not g["passed"]}
    assert failed["--max-p95-ms"]["value"] == lat["p95"] > 0.001


@pytest.mark.slow
def test_sub_millisecond_json_fails_a_gate_below_it_standalone(fastapi: ServiceProcess) -> None:
    run = headless(fastapi.url, "--scenario", "json", "--max-p95-ms", "0.001", users=2,
                   run_time="2s").start().finish(timeout_s=60)
    _assert_sub_ms_gate_fails(run.returncode, run.output, run.report)


@pytest.mark.slow
def test_sub_millisecond_json_fails_a_gate_below_it_distributed(
        fastapi: ServiceProcess) -> None:
    master_port = free_port()
    master = headless(fastapi.url, "--scenario", "json", "--max-p95-ms", "0.001",
                      "--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
                      "--master-bind-port", str(master_port), users=2, run_time="3s")
    worker = Locust(["--worker", "--master-host", "127.0.0.1", "--master-port",
                     str(master_port)])
    master.start()
    worker.start()
    try:
        run = master.finish(timeout_s=90)
    finally:
        worker.kill()
        worker.finish(timeout_s=30)
    _assert_sub_ms_gate_fails(run.returncode, run.output, run.report)
    assert run.report is not None
    assert run.report["requests"] > 0  # counted by the worker, merged at the master


@pytest.mark.slow
def test_runner_reports_microseconds_and_gates_on_them(tmp_path: Path) -> None:
    env, tag = tagged_env()
    try:
        done = loadlab(["run", "--target", "fastapi", "--scenario", "json", "--users", "2",
                        *SHORT, "--max-p95-ms", "0.001", "--out", str(tmp_path)], env)
    finally:
        kill_tagged(tag)
    run = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
    assert run["latency_source"] == "hdr", run
    assert 0 < run["latency_ms"]["p95"] < 1000, run["latency_ms"]
    assert done.returncode == 1, done.stderr
    assert "--max-p95-ms 0.001: fastapi/json p95 =" in done.stderr


def test_exporter_buckets_reach_below_a_millisecond() -> None:
    from _exporter import BUCKETS_S, Series

    series = Series()
    for ms in (0.08, 0.2, 0.3, 0.45, 0.9, 3.0):
        series.add(ms / 1000, failed=False)
    buckets = dict(series.cumulative())
    assert BUCKETS_S[:3] == (0.0001, 0.00025, 0.0005)
    assert (buckets["0.0001"], buckets["0.00025"], buckets["0.0005"], buckets["0.001"]) == (
        1, 2, 4, 5)
    assert buckets["+Inf"] == series.count == 6
    assert series.sum_s == pytest.approx(4.93 / 1000)


def test_prometheus_buckets_count_every_value_at_or_below_each_bound() -> None:
    """The exporter's buckets, read from the histogram in one pass, against a count of the
    recorded values themselves (each at its HDR range's top, as the bucket reading takes)."""
    rng = random.Random(7)
    latency = Latency()
    for _ in range(5000):
        latency.add(rng.lognormvariate(1.0, 1.5), failed=False)  # ms, 0.01 ms .. seconds
    bounds_s = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
    values = [(item.value_iterated_to, item.count_added_in_this_iter_step)
              for item in latency.hist.get_recorded_iterator()]
    want = [sum(n for v, n in values if v <= round(b * 1_000_000)) for b in bounds_s]
    got = latency.count_at_or_below(bounds_s)
    assert got == want
    assert got == sorted(got) and 0 < got[-1] <= latency.total
