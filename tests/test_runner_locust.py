"""Reading Locust's JSON report: percentiles by Locust's rule, the warm-up cut, the argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadlab.launch import free_port
from loadlab.runner.locust_driver import (
    LocustProcess,
    build_argv,
    locustfile_options,
    percentile,
    summarise,
    waits_ready,
)
from loadlab.runner.options import RunSpec


def entry(per_sec: dict[int, int], times: dict[str, int], failures: int = 0) -> dict[str, object]:
    total = sum(times.values())
    return {"name": "/io", "method": "GET", "num_requests": total, "num_failures": failures,
            "start_time": float(min(per_sec)), "last_request_timestamp": float(max(per_sec)),
            "total_response_time": sum(float(k) * v for k, v in times.items()),
            "max_response_time": max(float(k) for k in times), "response_times": times,
            "num_reqs_per_sec": {str(k): v for k, v in per_sec.items()},
            "num_fail_per_sec": {}}


def test_percentile_follows_locust() -> None:
    times = {10.0: 90, 100.0: 9, 1000.0: 1}
    assert percentile(times, 100, 0.5) == 10.0
    assert percentile(times, 100, 0.95) == 100.0
    assert percentile(times, 100, 0.999) == 1000.0


def test_without_the_locustfile_reset_the_runner_cuts_the_warm_up_from_throughput() -> None:
    # 2 s of warm-up at 10 req/s, then 4 s at 100 req/s, then a partial last second.
    per_sec = {1000: 10, 1001: 10, 1002: 100, 1003: 100, 1004: 100, 1005: 100, 1006: 7}
    figures = summarise([entry(per_sec, {"50": 427})], warmup_s=2, duration_s=4,
                        own_warmup=False)
    assert figures.rps == pytest.approx(100.0)
    assert figures.requests == 400 and figures.warmup_excluded == "rps only"


def test_with_the_locustfile_reset_every_figure_is_the_window() -> None:
    figures = summarise([entry({2000: 50, 2001: 50, 2002: 50, 2003: 50}, {"20": 200})],
                        warmup_s=2, duration_s=4, own_warmup=True)
    assert figures.warmup_excluded == "all" and figures.requests == 200
    assert figures.rps == pytest.approx(200 / 3)  # first to last request
    assert figures.latency_ms["mean"] == pytest.approx(20.0)


def test_argv_uses_the_lab_options_the_locustfile_declares(tmp_path: Path) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text('parser.add_argument("--warmup-s", type=float)\n'
                  'parser.add_argument("--loadlab-report", default="")\n')
    spec = RunSpec(target="flask", scenario="io", users=5, duration_s=10, warmup_s=3,
                   io_ms=20)
    argv, own = build_argv(spec, "http://127.0.0.1:1", tmp_path / "out", lf)
    assert own
    joined = " ".join(argv)
    assert "-u 5 -r 5 -t 13s" in joined and "--scenario io --io-ms 20" in joined
    assert "--warmup-s 3" in joined and f"--loadlab-report {tmp_path}/out.loadlab.json" in joined
    plain = tmp_path / "plain" / "locustfile.py"
    plain.parent.mkdir()
    plain.write_text("# no lab options\n")
    argv, own = build_argv(spec, "http://127.0.0.1:1", tmp_path / "out", plain)
    assert not own and "--warmup-s" not in argv


def test_argv_asks_the_locustfile_to_wait_for_a_service_still_starting(tmp_path: Path) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text('parser.add_argument("--wait-ready-s", type=float)\n')
    spec = RunSpec(target="flask", scenario="io", users=5, duration_s=10)
    argv, _ = build_argv(spec, "http://127.0.0.1:1", tmp_path / "out", lf, wait_ready_s=60)
    assert " ".join(argv).endswith("--wait-ready-s 60")
    assert waits_ready(lf) and not waits_ready(lf, workers=3)  # cannot count the workers
    with pytest.raises(ValueError, match="cannot wait"):
        build_argv(RunSpec(target="flask", scenario="io", workers=3), "http://127.0.0.1:1",
                   tmp_path / "out", lf, wait_ready_s=60)
    lf.write_text('parser.add_argument("--wait-ready-s", type=float)\n'
                  'parser.add_argument("--wait-workers", type=int)\n')
    locustfile_options.cache_clear()
    argv, _ = build_argv(RunSpec(target="flask", scenario="io", workers=3), "http://127.0.0.1:1",
                         tmp_path / "out", lf, wait_ready_s=60)
    assert " ".join(argv).endswith("--wait-ready-s 60 --wait-workers 3")
    plain = tmp_path / "plain" / "locustfile.py"
    plain.parent.mkdir()
    plain.write_text("# no lab options\n")
    assert not waits_ready(plain)
    with pytest.raises(ValueError, match="cannot wait"):
        build_argv(spec, "http://127.0.0.1:1", tmp_path / "out", plain, wait_ready_s=60)


def test_a_service_that_never_answers_ends_the_waiting_locust_in_one_line(
        tmp_path: Path) -> None:
    # A real Locust, told to wait for a port where nothing listens: exit 2, one line, no load.
    spec = RunSpec(target="flask", scenario="json", users=1, duration_s=2)
    locust = LocustProcess(spec, f"http://127.0.0.1:{free_port('127.0.0.1')}",
                           tmp_path / "never", wait_ready_s=1.5)
    try:
        assert locust.start().wait(60) == 2
    finally:
        locust.stop()
    errors = [line for line in locust.log_path.read_text().splitlines() if "error" in line]
    assert errors == [errors[0]] and "--wait-ready-s" in errors[0]
    assert "not ready after 1.5s" in errors[0] and "Traceback" not in locust.log_path.read_text()
    assert locust.report() is None or all(e["num_requests"] == 0 for e in locust.report() or [])
