"""The open model holds its rate where the closed model falls short, and its latency from
the intended send time exposes a server stall that latency from the actual send hides.

The figures (send rate, late and dropped sends, latency from the intended time) are held
to known answers on a simulated clock: the real schedule (`_openmodel.Pacer`) and the
real tallies (`OpenModelStats`, `Latency`) driven by the locustfile's sending rule, with a
server model whose answers are known. The real runs then check the plumbing only: how
closely a busy host keeps a schedule is not a correctness question."""

from __future__ import annotations

import contextlib
import heapq
import importlib.util
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from support.locust_process import ROOT, Locust, Run, free_port, headless
from support.services import start_service

from loadlab.launch import ServiceProcess

RATE = 100.0
USERS = 2
STALL_WORK = 4000  # ~0.4 s of CPU on the event loop of the only Uvicorn worker
STALL_GAP_S = 0.6
RUN_S = 7
WARMUP_S = 1


@pytest.fixture()
def openmodel(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """locust/_openmodel.py, a fresh copy on a simulated clock (``module.clock.now``). It
    imports nothing from Locust (the locustfile itself is never imported here: gevent)."""
    if str(ROOT / "locust") not in sys.path:  # its helper _latency.py sits beside it
        monkeypatch.syspath_prepend(str(ROOT / "locust"))
    name = "_openmodel_simulated"
    spec = importlib.util.spec_from_file_location(name, ROOT / "locust" / "_openmodel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    module.__dict__["clock"] = clock
    yield module


Server = Callable[[float], float]  # send time -> answer time (seconds)


def simulate(om: ModuleType, rate: float, users: int, server: Server, run_s: float,
             warmup_s: float, late_s: float = 0.010, total_users: int | None = None
             ) -> tuple[Any, Any]:
    """One Locust process's users sending on the open model's schedule, as the locustfile's
    `_call` does: take the next slot, sleep until it, send; late when the send leaves more
    than ``late_s`` after its slot; slots due by the end but never taken, or taken and
    not sent by the end, are dropped.
    Returns (OpenModelStats, latency from the actual send)."""
    pacer, stats, plain = om.Pacer(), om.OpenModelStats(), om.Latency()
    window_start, end = warmup_s, warmup_s + run_s
    free = [(0.0, u) for u in range(users)]  # (time the user is free, user)
    heapq.heapify(free)
    while free:
        t, user = heapq.heappop(free)
        if t >= end:
            continue
        om.clock.now = t
        intended = pacer.take(rate, users, total_users or users)
        started = max(t, intended)
        if started >= end:  # woke after the stop: not sent; dropped if the window owed it
            stats.dropped += window_start <= intended <= end
            continue
        measured = intended >= window_start
        if measured:
            stats.sent += 1
            stats.late += started - intended > late_s
        done = server(started)
        if measured:
            stats.intended.add((done - intended) * 1000)
            plain.add((done - started) * 1000)
        heapq.heappush(free, (done, user))
    stats.dropped += pacer.backlog(since=window_start, now=end)
    stats.window_s = run_s
    return stats, plain


def closed_rate(rate: float, users: int, server: Server, run_s: float, warmup_s: float
                ) -> float:
    """Sends per second in the window of closed-model users paced at ``rate / users`` each
    (Locust's constant_pacing): a user sends, waits for the answer, then for its next tick."""
    window_start, end, sent = warmup_s, warmup_s + run_s, 0
    for _ in range(users):
        t = 0.0
        while t < end:
            sent += t >= window_start
            t = max(server(t), t + users / rate)
    return sent / run_s


def fixed(seconds: float) -> Server:
    """A server answering every request after ``seconds``, however many at once (async I/O)."""
    return lambda sent: sent + seconds


def workers(n: int, seconds: float) -> Server:
    """``n`` sync workers, ``seconds`` a request: requests queue for a free worker."""
    busy = [0.0] * n

    def serve(sent: float) -> float:
        start = max(sent, heapq.heappop(busy))
        heapq.heappush(busy, start + seconds)
        return start + seconds
    return serve


def stalling(every_s: float, stall_s: float, seconds: float) -> Server:
    """An event loop blocked for ``stall_s`` at the start of every ``every_s``: a request
    sent during a stall is answered when it ends."""
    def serve(sent: float) -> float:
        phase = sent % every_s
        return sent + (stall_s - phase if phase < stall_s else 0.0) + seconds
    return serve


def test_schedule_with_users_to_spare_sends_at_the_rate_and_on_time(
        openmodel: ModuleType) -> None:
    # 50/s of 300 ms requests need 15 users; 30 carry them: every slot leaves on time.
    stats, plain = simulate(openmodel, 50.0, 30, fixed(0.300), run_s=5.0, warmup_s=1.005)
    assert stats.sent == 250 and stats.send_rate == 50.0
    assert stats.late == 0 and stats.dropped == 0
    assert stats.intended.percentile(0.5) == pytest.approx(300, rel=1e-3)
    assert plain.percentile(0.99) == pytest.approx(300, rel=1e-3)


def test_schedule_through_stalls_keeps_the_rate_and_shows_the_wait(
        openmodel: ModuleType) -> None:
    # 2 users at 100/s, 1 ms answers, a 400 ms stall every second: the sends due during a
    # stall go out late, in a burst after it, and answer fast from their actual send.
    stats, plain = simulate(openmodel, 100.0, 2, stalling(1.0, 0.4, 0.001), run_s=5.0,
                            warmup_s=1.005)
    assert abs(stats.sent - 500) <= 2 and stats.dropped <= 2
    assert stats.send_rate == pytest.approx(100.0, abs=0.5)
    # ~40 slots a stall wait for its end: 200 late of 500, counted, none lost.
    assert 180 <= stats.late <= 210, stats.late
    intended = stats.intended.figures()
    assert plain.percentile(0.95) < 5  # the burst after a stall looks fast...
    assert intended["p95"] >= 300  # ...measured from when it should have left, it waited
    assert intended["max"] == pytest.approx(401, abs=2)
    # Closed-model users paced at 50/s each wait out every stall with their request in
    # flight: the sends a stall holds up are never made (~0.6 s of every second is left).
    closed = closed_rate(100.0, 2, stalling(1.0, 0.4, 0.001), run_s=5.0, warmup_s=1.005)
    assert closed == pytest.approx(0.62 * 100.0, abs=3)


def test_schedule_beyond_the_users_drops_what_they_cannot_carry(
        openmodel: ModuleType) -> None:
    # 2 sync workers, 100 ms a request: at most 20/s whatever the users; 60/s are asked.
    stats, _ = simulate(openmodel, 60.0, 8, workers(2, 0.100), run_s=5.0, warmup_s=1.005)
    slots = 60.0 * stats.window_s
    # The schedule is not skipped: the users take its slots in order, 8 at once and then
    # 20/s from the start, so by the end 8 + 20 x 6.005 slots are taken; those intended
    # inside the window (from slot 60.3 on) were sent, the rest of the window's are dropped.
    assert stats.sent == pytest.approx(8 + 20 * 6.005 - 60 * 1.005, abs=2)
    assert stats.sent + stats.dropped == pytest.approx(slots, abs=1)
    assert stats.late == stats.sent  # every one of them left behind its time


# The plugin's own sending rule, run for real (in a child: Locust patches the process with
# gevent on import). The stop has been asked for (the window ends at 1 s) while two users
# slept: one wakes for a slot after the window, one for a slot the window owed.
_AFTER_THE_STOP = """
import sys, time
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
import loadlab_plugin as plugin
env = SimpleNamespace(runner=None, parsed_options=SimpleNamespace(late_ms=10.0,
                                                                  arrival_rate=40.0))
sends = []
t0 = time.perf_counter() - 2.0
plugin.Lab.window[:] = [t0, t0 + 1.0]
for slot in (t0 + 1.5, t0 + 0.5):
    plugin.Lab.pacer.next_t = slot
    plugin.paced(env, lambda: sends.append(slot))
print(len(sends), plugin.Lab.open_model.sent, plugin.Lab.open_model.dropped)
plugin.Lab.window[:] = [t0, 0.0]  # running again: the next slot is sent and counted
plugin.Lab.pacer.next_t = None
plugin.paced(env, lambda: sends.append(0))
print(len(sends), plugin.Lab.open_model.sent, plugin.Lab.open_model.dropped)
"""


def test_a_user_waking_after_the_stop_sends_nothing_and_the_window_keeps_its_slots() -> None:
    done = subprocess.run([sys.executable, "-c", _AFTER_THE_STOP, str(ROOT / "locust")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # Neither late wake-up sent; the slot inside the window is dropped, the later one is
    # not the window's. Then a send while running counts as sent.
    assert done.stdout.split("\n")[:2] == ["0 0 1", "1 1 1"], done.stdout


def test_processes_share_the_rate_and_the_master_adds_up_their_figures(
        openmodel: ModuleType) -> None:
    """A master with two workers of 6 users each: each keeps half of 60/s, the sum is 60/s."""
    total = openmodel.OpenModelStats()
    for _ in range(2):
        part, _ = simulate(openmodel, 60.0, 6, fixed(0.050), run_s=5.0, warmup_s=1.005,
                           total_users=12)
        assert part.sent == 150
        total.merge(part.dump())
    total.window_s = 5.0
    assert total.sent == 300 and total.send_rate == 60.0 and total.late == 0
    assert total.intended.total == 300


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


def _open_model_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The open model's figures in a run's report, consistent with one another."""
    model = report["open_model"]
    assert model["window_s"] > 0 and model["sent"] > 0, model
    assert model["send_rate"] == pytest.approx(model["sent"] / model["window_s"], rel=1e-6)
    assert 0 <= model["late_sends"] <= model["sent"] and model["dropped_sends"] >= 0, model
    return dict(model)


@pytest.mark.slow
def test_open_model_runs_for_real_against_a_slow_endpoint(uvicorn_one: ServiceProcess) -> None:
    """The plumbing: a real open-model run reports its schedule's figures; how closely a busy
    host keeps 50/s is not judged (the simulated schedule above holds the rule)."""
    rate, io_ms = 50.0, 300
    run = headless(uvicorn_one.url, "--scenario", "io", "--io-ms", str(io_ms),
                   "--arrival-rate", str(rate), "--warmup-s", "1", users=30, run_time="5s"
                   ).start().finish(timeout_s=60)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None
    model = _open_model_figures(run.report)
    # The schedule holds no more slots than the rate gives over the window.
    assert model["send_rate"] <= rate * 1.1, run.report
    assert run.report["latency_ms"]["p50"] >= io_ms  # the server sleeps that long


@pytest.mark.slow
def test_stall_open_model_keeps_rate_and_shows_the_wait(uvicorn_one: ServiceProcess) -> None:
    url = uvicorn_one.url
    with stalls(url) as closed_stalls:
        closed = closed_run(url)
    with stalls(url) as open_stalls:
        opened = open_run(url)
    stall_ms = 1000 * min(closed_stalls + open_stalls)
    assert stall_ms > 150, "the stall request did not block the server"

    assert closed.returncode == 0 and opened.returncode == 0, opened.output[-2000:]
    assert 0 < achieved_rps(closed) <= 1.1 * RATE  # paced: never above its rate

    report = opened.report
    assert report is not None, opened.output[-2000:]
    _open_model_figures(report)
    assert report["open_model"]["late_sends"] > 0  # sends that waited out a stall
    plain, intended = report["latency_ms"], report["intended_latency_ms"]
    # Measured from when it should have left, a request sent during a stall waited for its
    # end (each request's intended time is at or before its actual send).
    assert intended["max"] >= stall_ms / 2, report
    # Both histograms are filled (their order per request is held on a simulated clock
    # above: the two sets differ at the window's edges in a real run, so no order here).
    assert plain["p50"] is not None and intended["p50"] is not None, report


@pytest.mark.slow
def test_open_model_rate_is_shared_across_workers(uvicorn_one: ServiceProcess) -> None:
    """Headless master + 2 forked workers: together they send the total rate, not 2x."""
    rate = 60.0
    run = headless(uvicorn_one.url, "--processes", "2", "--scenario", "io", "--io-ms", "50",
                   "--arrival-rate", str(rate), "--warmup-s", "1", users=12, run_time="5s"
                   ).start().finish(timeout_s=60)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None
    model = _open_model_figures(run.report)
    assert model["send_rate"] <= rate * 1.1, run.report  # each worker sent its share only
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


def rate_run(url: str, mode: str, rate: float, io_ms: int, users: int,
             also_load: Path | None = None) -> Run:
    """Headless, or the web UI with --autostart (its stop waits for the workers' users);
    with mode "distributed*", a master and 2 forked workers; ``also_load``, a locustfile
    loaded beside the lab's."""
    load = ["--scenario", "io", "--io-ms", str(io_ms), "--arrival-rate", str(rate),
            "--warmup-s", "1"]
    if mode.startswith("distributed"):
        load += ["--processes", "2"]
    if not mode.endswith("ui"):
        lo = headless(url, *load, users=users, run_time="5s")
    else:
        lo = Locust([])
        lo.args = ["--autostart", "--autoquit", "1", "--web-host", "127.0.0.1", "--web-port",
                   str(free_port()), "--host", url, "-u", str(users), "-r", str(10 * users),
                   "-t", "5s", "--loadlab-report", str(lo.report_path), *load]
    if also_load is not None:
        lo.locustfile = f"{lo.locustfile},{also_load}"
    run = lo.start().finish(timeout_s=60)
    assert run.returncode == 0, run.output[-2000:]
    assert run.report is not None, run.output[-2000:]
    return run


def assert_every_slot_sent_or_dropped(run: Run, rate: float) -> None:
    """The users carried at most a little over half of ``rate``; each slot of the measured
    window was either sent or dropped."""
    assert run.report is not None
    model = run.report["open_model"]
    slots = rate * model["window_s"]
    assert model["sent"] < 0.6 * slots, model
    assert model["dropped_sends"] > 0.25 * slots, model
    assert abs(model["sent"] + model["dropped_sends"] - slots) <= 0.15 * slots, model


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["standalone", "distributed", "distributed-ui"])
def test_dropped_sends_make_up_the_rate_the_users_cannot_carry(
        sync_two: ServiceProcess, mode: str) -> None:
    """2 sync workers answer at most 2 / 100 ms = 20 req/s; 60/s is asked. Every slot of the
    measured window is either sent or dropped, also when workers report the drops."""
    rate = 60.0
    run = rate_run(sync_two.url, mode, rate, io_ms=100, users=8)
    assert_every_slot_sent_or_dropped(run, rate)


SLOW_STOP = '''"""A worker slow to stop, as on a busy machine: its last report leaves late."""
import time

from locust import events
from locust.runners import WorkerRunner


@events.test_stop.add_listener
def _slow_stop(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        time.sleep(1.5)  # past the 0.5 s Locust's quit gives the workers' last reports
'''


@pytest.mark.slow
def test_a_worker_slow_to_stop_still_delivers_its_drops_and_sends(
        sync_two: ServiceProcess, tmp_path: Any) -> None:
    """The end of a headless distributed run: the master waits for each worker's last
    report, with the drops it counted at its stop, however long the worker takes."""
    slow = tmp_path / "slow_stop.py"
    slow.write_text(SLOW_STOP)
    rate = 60.0
    run = rate_run(sync_two.url, "distributed", rate, io_ms=100, users=8, also_load=slow)
    assert_every_slot_sent_or_dropped(run, rate)
    assert "no last report" not in run.output


LATE_STOP = '''"""A worker that hears its master's stop late, as on a busy machine."""
import gevent

from locust import events
from locust.runners import WorkerRunner


@events.init.add_listener
def _hear_the_stop_late(environment, runner, **_):
    if isinstance(runner, WorkerRunner):
        listener, concurrent = runner.custom_messages["loadlab_stop"]

        def late(*args, **kwargs):
            gevent.sleep(1.5)  # the users keep sending meanwhile
            listener(*args, **kwargs)

        runner.custom_messages["loadlab_stop"] = (late, concurrent)
'''


@pytest.mark.slow
@pytest.mark.parametrize("load", ["overloaded", "carried"])
def test_a_worker_that_hears_the_stop_late_counts_only_the_masters_window(
        load: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    """Each worker counts its sends and drops up to its master's window, not up to when the
    stop reached it: 1.5 s late at 30/s would add 45 slots a worker (a third more)."""
    late = tmp_path / "late_stop.py"
    late.write_text(LATE_STOP)
    rate = 60.0
    # 2 Gunicorn sync workers carry 20 of the 60/s at 100 ms; one Uvicorn worker carries all.
    service, io_ms, users = (("sync_two", 100, 8) if load == "overloaded"
                             else ("uvicorn_one", 50, 12))
    url = request.getfixturevalue(service).url
    run = rate_run(url, "distributed", rate, io_ms, users, also_load=late)
    if load == "overloaded":
        assert_every_slot_sent_or_dropped(run, rate)
    else:
        assert run.report is not None
        model = run.report["open_model"]
        slots = rate * model["window_s"]
        assert model["dropped_sends"] <= 0.05 * slots, model
        assert abs(model["sent"] - slots) <= 0.1 * slots, model
