"""CI gates, bad input and a dead target, through the real Locust command line."""

from __future__ import annotations

import pytest
from support.locust_process import LOCUSTFILE, ROOT, Locust, free_port, headless, run_headless

from loadlab.launch import ServiceProcess


@pytest.mark.slow
def test_gates_fail_a_run_that_misses_them(fastapi: ServiceProcess) -> None:
    # /io waits 20 ms, so p95 under 1 ms and 1e6 req/s cannot both hold; errors stay at 0.
    run = run_headless(fastapi.url, "--scenario", "io", "--io-ms", "20", "--max-p95-ms", "1",
                       "--min-rps", "1000000", "--max-error-rate", "0", run_time="2s")
    assert run.returncode == 1, run.output[-2000:]
    assert "gate FAILED: --max-p95-ms 1, measured" in run.output
    assert "gate FAILED: --min-rps 1e+06, measured" in run.output
    assert "gate passed: --max-error-rate 0" in run.output
    assert run.report is not None and run.report["gates_passed"] is False
    failed = {g["option"]: g for g in run.report["gates"] if not g["passed"]}
    assert set(failed) == {"--max-p95-ms", "--min-rps"}
    assert failed["--max-p95-ms"]["value"] >= 20  # the figure is the measured p95


@pytest.mark.slow
def test_gates_pass_a_run_that_meets_them(fastapi: ServiceProcess) -> None:
    run = run_headless(fastapi.url, "--scenario", "json", "--max-p99-ms", "5000",
                       "--max-error-rate", "0.01", "--min-rps", "1", run_time="2s")
    assert run.returncode == 0, run.output[-2000:]
    assert run.output.count("gate passed") == 3
    assert run.report is not None and run.report["gates_passed"] is True
    assert run.report["rps"] >= 1 and run.report["latency_ms"]["p99"] <= 5000


# Each case is a Locust process started (seconds each): the quick lane keeps one of each
# kind (a choice, a value Locust's parser cannot read, options that cannot run together);
# the rest of the bounds run in ``make test``.
_MORE = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--scenario", "nope"], "--scenario"),
        pytest.param(["--io-ms", "-5"], "--io-ms", marks=_MORE),
        (["--io-ms", "abc"], "--io-ms"),
        pytest.param(["--cpu-work", "1.5"], "--cpu-work", marks=_MORE),
        pytest.param(["--cpu-work", "999999999"], "--cpu-work", marks=_MORE),
        pytest.param(["--arrival-rate", "-1"], "--arrival-rate", marks=_MORE),
        (["--arrival-rate", "500", "--scenario", "io", "--io-ms", "100", "-u", "10"],
         "--arrival-rate"),
        pytest.param(["--max-error-rate", "1.5"], "--max-error-rate", marks=_MORE),
        pytest.param(["--warmup-s", "-1"], "--warmup-s", marks=_MORE),
    ],
)
def test_bad_input_is_one_line_naming_the_option(args: list[str], option: str) -> None:
    # The port is never listened on: had any load started, requests would show failures.
    lo = Locust(["--headless", "--host", f"http://127.0.0.1:{free_port()}", "-t", "2s",
                 "--json-file", "stats", *args])
    run = lo.start().finish(timeout_s=30)
    assert run.returncode == 2, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("locust: error:")]
    assert len(errors) == 1 and option in errors[0], run.output
    assert "Traceback" not in run.output and "Ramping" not in run.output
    assert run.stats == [] and run.report is None  # no statistics: nothing ran


@pytest.mark.slow
def test_target_option_picks_the_service_from_the_environment(fastapi: ServiceProcess) -> None:
    # --host points nowhere: every request succeeding shows --target chose the service.
    lo = headless(f"http://127.0.0.1:{free_port()}", "--scenario", "json",
                  "--target", "fastapi", users=2, run_time="2s")
    lo.env = {"LOADLAB_FASTAPI_URL": fastapi.url}
    run = lo.start().finish()
    assert run.returncode == 0, run.output[-2000:]
    assert run.requests > 0 and run.failures == 0


@pytest.mark.slow
def test_dead_target_counts_failures_and_ends_normally() -> None:
    run = run_headless(f"http://127.0.0.1:{free_port()}", "--scenario", "json",
                       "--max-error-rate", "0.5", run_time="2s")
    assert "Traceback" not in run.output
    assert run.requests > 0 and run.failures == run.requests
    assert run.report is not None and run.report["error_rate"] == 1.0
    assert run.returncode == 1 and "gate FAILED: --max-error-rate 0.5, measured 1" in run.output


@pytest.mark.slow
def test_busy_locust_process_warns_in_a_short_run() -> None:
    # A far lower threshold than the default 90%: other jobs may share this machine's
    # cores, and the burner cannot count on more than a slice of one. What is tested is
    # that the process samples itself within seconds and says so (Locust's own check
    # samples every 10 s and never fires in runs this short).
    burner = ROOT / "tests" / "locustfiles" / "cpu_burner.py"
    lo = headless(f"http://127.0.0.1:{free_port()}", "--scenario", "json",
                  "--cpu-warn-percent", "10", users=2, run_time="4s")
    lo.locustfile = f"{LOCUSTFILE},{burner}"
    run = lo.start().finish(timeout_s=60)
    assert "CPU: the load generator may be what limits this measurement" in run.output
    assert run.report is not None and run.report["locust_cpu_warning"] is True
    assert run.report["locust_cpu_peak_percent"]["local"] > 10
