"""The open model holds its rate where the closed model falls short, and its latency from
the intended send time exposes a server stall that latency from the actual send hides."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from lab_services import start_service
from locustrun import ROOT, Locust, Run, free_port, headless

from loadlab.launch import ServiceProcess

RATE = 100.0
USERS = 2
STALL_WORK = 4000  # ~0.4 s of CPU on the event loop of the only Uvicorn worker
STALL_GAP_S = 0.6
RUN_S = 7
WARMUP_S = 1


@pytest.fixture(scope="module")
def uvicorn_one() -> Iterator[ServiceProcess]:
    proc = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def stalls(url: str) -> Iterator[list[float]]:
    """Block the server's event loop again and again (/cpu/blocking), for the run's length
    at most; yields the measured stall durations."""
    stop = threading.Event()
    durations: list[float] = []

    def loop() -> None:
        deadline = time.monotonic() + RUN_S + 10
        while not stop.is_set() and time.monotonic() < deadline and len(durations) < 50:
            started = time.monotonic()
            with contextlib.suppress(urllib.error.URLError, OSError):
                urllib.request.urlopen(f"{url}/cpu/blocking?work={STALL_WORK}", timeout=10).read()
            durations.append(time.monotonic() - started)
            stop.wait(STALL_GAP_S)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield durations
    finally:
        stop.set()
        thread.join(timeout=15)


def open_run(url: str) -> Run:
    return headless(url, "--scenario", "json", "--arrival-rate", str(RATE),
                    "--warmup-s", str(WARMUP_S), users=USERS, run_time=f"{RUN_S}s"
                    ).start().finish(timeout_s=60)


def closed_run(url: str) -> Run:
    lo = Locust([], locustfile=str(ROOT / "tests" / "locustfiles" / "paced_closed.py"))
    lo.args = ["--headless", "--host", url, "-u", str(USERS), "-r", "100", "-t", f"{RUN_S}s",
               "--only-summary", "--json-file", str(lo.json_prefix), "--reset-stats"]
    os.environ["PACED_USER_RPS"] = str(RATE / USERS)
    try:
        return lo.start().finish(timeout_s=60)
    finally:
        del os.environ["PACED_USER_RPS"]


def achieved_rps(run: Run) -> float:
    entry = next(e for e in run.stats if e["name"] == "/json")
    return float(entry["num_requests"]) / (entry["last_request_timestamp"] - entry["start_time"])


def test_open_model_holds_its_rate_against_a_slow_endpoint(uvicorn_one: ServiceProcess) -> None:
    rate, io_ms = 50.0, 300
    run = headless(uvicorn_one.url, "--scenario", "io", "--io-ms", str(io_ms),
                   "--arrival-rate", str(rate), "--warmup-s", "1", users=30, run_time="5s"
                   ).start().finish(timeout_s=60)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None
    assert abs(run.report["open_model"]["send_rate"] - rate) <= 0.1 * rate, run.report
    assert abs(run.report["rps"] - rate) <= 0.1 * rate, run.report
    # Users to spare: sends leave on time (a few may slip on a busy machine's scheduler).
    assert run.report["open_model"]["late_sends"] <= 0.05 * run.report["open_model"]["sent"]
    # A closed-model user completes at most one request per response time.
    assert run.report["latency_ms"]["p50"] >= io_ms


def test_stall_open_model_keeps_rate_and_shows_the_wait(uvicorn_one: ServiceProcess) -> None:
    url = uvicorn_one.url
    with stalls(url) as closed_stalls:
        closed = closed_run(url)
    with stalls(url) as open_stalls:
        opened = open_run(url)
    stall_ms = 1000 * min(closed_stalls + open_stalls)
    assert stall_ms > 150, "the stall request did not block the server"

    assert closed.returncode == 0 and opened.returncode == 0, opened.output[-2000:]
    closed_rps = achieved_rps(closed)
    assert closed_rps < 0.9 * RATE, f"closed model kept {closed_rps:.1f}/s through stalls"

    report = opened.report
    assert report is not None, opened.output[-2000:]
    # The rate of sends in the measured window (Locust's own rps also counts the catch-up
    # after a stall that began in the warm-up).
    assert abs(report["open_model"]["send_rate"] - RATE) <= 0.1 * RATE, report
    assert report["open_model"]["late_sends"] > 0  # sends that waited for a free user
    plain, intended = report["latency_ms"], report["intended_latency_ms"]
    # Every request sent during a stall waits for its end, measured from when it should
    # have left; from the actual send, the catch-up burst after the stall looks fast.
    assert intended["p95"] >= stall_ms / 4, report
    assert intended["p95"] >= 3 * plain["p95"], report
    assert intended["max"] >= stall_ms / 2, report


def test_open_model_rate_is_shared_across_workers(uvicorn_one: ServiceProcess) -> None:
    """Headless master + 2 forked workers: together they send the total rate, not 2x."""
    rate = 60.0
    run = headless(uvicorn_one.url, "--processes", "2", "--scenario", "io", "--io-ms", "50",
                   "--arrival-rate", str(rate), "--warmup-s", "1", users=12, run_time="5s"
                   ).start().finish(timeout_s=60)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None
    assert abs(run.report["open_model"]["send_rate"] - rate) <= 0.1 * rate, run.report
    assert len(run.report["locust_cpu_peak_percent"]) == 3  # master and both workers
    assert run.failures == 0 and run.by_name().keys() == {"/io"}


@pytest.fixture(scope="module")
def sync_two() -> Iterator[ServiceProcess]:
    """Two Gunicorn sync workers: at most two requests at a time, whatever the users."""
    proc = start_service(framework="flask", worker_class="sync", workers=2)
    try:
        yield proc
    finally:
        proc.stop()


def overloaded_run(url: str, mode: str, rate: float, io_ms: int, users: int) -> Run:
    """Headless, or the web UI with --autostart (its stop waits for the workers' users);
    with mode "distributed*", a master and 2 forked workers."""
    load = ["--scenario", "io", "--io-ms", str(io_ms), "--arrival-rate", str(rate),
            "--warmup-s", "1"]
    if mode.startswith("distributed"):
        load += ["--processes", "2"]
    if not mode.endswith("ui"):
        return headless(url, *load, users=users, run_time="5s").start().finish(timeout_s=60)
    lo = Locust([])
    lo.args = ["--autostart", "--autoquit", "1", "--web-host", "127.0.0.1", "--web-port",
               str(free_port()), "--host", url, "-u", str(users), "-r", str(10 * users),
               "-t", "5s", "--loadlab-report", str(lo.report_path), *load]
    return lo.start().finish(timeout_s=60)


@pytest.mark.parametrize("mode", ["standalone", "distributed", "distributed-ui"])
def test_dropped_sends_make_up_the_rate_the_users_cannot_carry(
        sync_two: ServiceProcess, mode: str) -> None:
    """2 sync workers answer at most 2 / 100 ms = 20 req/s; 60/s is asked. Every slot of the
    measured window is either sent or dropped, also when workers report the drops."""
    rate = 60.0
    run = overloaded_run(sync_two.url, mode, rate, io_ms=100, users=8)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None, run.output[-2000:]
    model = run.report["open_model"]
    slots = rate * model["window_s"]
    assert model["sent"] < 0.6 * slots, model  # the users could not carry the rate
    assert model["dropped_sends"] > 0.25 * slots, model
    assert abs(model["sent"] + model["dropped_sends"] - slots) <= 0.15 * slots, model
