"""The lab's measurement as a Locust plugin: load it beside any locustfile.

    locust -f my_locustfile.py,/path/to/loadlab/locust/loadlab_plugin.py --host URL \\
           --warmup-s 5 --max-p95-ms 200 --arrival-rate 300 --loadlab-report lab.json

Whatever user classes the other files define (no base class to inherit), this module
gives their requests the lab's measurement: latency in µs in an HDR histogram merged
across workers, the measured window (warm-up excluded, work finished after the stop
left out), gates checked at the end (exit 1 on a miss), the open model (``--arrival-rate``:
requests leave on a schedule, latency also from the intended send time, late and
dropped sends counted) and the swarm's Prometheus exporter at the web UI's ``/metrics``.
The lab's own locustfile imports it, so both run the same code. Registration happens
once per process however often the module is loaded (Locust loads each ``-f`` file
anew, and the lab's locustfile imports it as well).

In the open model each task of a user class is one arrival: the task waits for its slot
of the schedule and its latency is measured from that slot (a task making several
requests counts as one arrival); the users' own ``wait_time`` is set to zero then, since
the schedule, not think time, decides when requests leave.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from collections import deque
from typing import Any, ClassVar

import _options
import _thinktime
import _webguard
import gevent
from _cpuwatch import CpuWatch
from _exporter import SwarmState, registry_for, render
from _gates import Figures, evaluate, report, write_atomic
from _latency import Latency
from _openmodel import OpenModelStats, Pacer
from flask import Response, jsonify, request
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner
from locust.user.task import DefaultTaskSet, TaskSet

from loadlab.readiness import wait_ready
from locust import events

log = logging.getLogger("loadlab")
INSTALLED = "_loadlab_plugin_installed"  # marker on locust.events: listeners registered
FINAL_REPORT_WAIT_S = 10.0  # beyond --stop-timeout, for each worker's last report of a run
RECENT_SENDS_S = 15.0  # worker: how long a send can still be taken back (see _test_stopping)


class Lab:
    """This process's share of the lab's state (one per Locust process)."""

    state = SwarmState()           # exporter: totals (master/local) or deltas (worker)
    open_model = OpenModelStats()  # open model: totals (master/local) or deltas (worker)
    latency = Latency()            # the measured window, in µs: totals or deltas (worker)
    pacer = Pacer()
    cpu = CpuWatch("locust")
    warmup: gevent.Greenlet | None = None
    window: ClassVar[list[float]] = [0.0, 0.0]  # measured window (perf_counter), post warm-up
    spawned = itertools.count()    # users started here: the lab's "both" alternates by it
    finals: ClassVar[set[str]] = set()  # master: workers whose last report of the run came
    shipping_final = False         # worker: the report being shipped is its last of the run
    master_window_s: float | None = None  # worker: the master's window, told with its stop
    # worker: (intended time, late) of the sends counted lately, to take back those the
    # master's window did not hold once its length is known
    recent_sends: ClassVar[deque[tuple[float, bool]]] = deque()


def users_target(environment: Environment) -> int:
    """The swarm's target user count; workers learn it from the master's spawn messages."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return int(getattr(environment.parsed_options, "loadlab_total_users", 0) or 0)
    return int(getattr(runner, "target_user_count", 0) or 0)


def arrival_rate(environment: Environment) -> float:
    options = environment.parsed_options
    return float(getattr(options, "arrival_rate", 0.0) or 0.0) if options is not None else 0.0


def paced(environment: Environment, send: Any) -> Any:
    """Run ``send()`` as one arrival of the open model: wait for the next slot of this
    process's schedule, count it, and measure its latency from the slot too."""
    options = environment.parsed_options
    late_s = float(getattr(options, "late_ms", 10.0)) / 1000
    runner = environment.runner
    intended = Lab.pacer.take(arrival_rate(environment),
                              runner.user_count if runner is not None else 0,
                              users_target(environment))
    delay = intended - time.perf_counter()
    if delay > 0:
        gevent.sleep(delay)
    if Lab.window[1] > Lab.window[0]:
        # The stop was asked for while this user waited: Locust kills users at the hub's
        # next turn, so one whose slot came due first still wakes. A send now would be
        # load after the window, counted in its rate; a slot the window owed is dropped.
        if Lab.window[0] <= intended <= Lab.window[1]:
            Lab.open_model.dropped += 1
        return None
    started = time.perf_counter()
    # Warm-up slots sent late after it are not part of the measurement.
    measured = intended >= Lab.window[0]
    if measured:
        Lab.open_model.sent += 1  # counted when sent: in-flight sends at the stop count
        late = started - intended > late_s
        if late:
            Lab.open_model.late += 1
            Lab.state.late_sends += 1
        if isinstance(runner, WorkerRunner):
            Lab.recent_sends.append((intended, late))
    result = send()
    done = time.perf_counter()
    if measured and intended >= Lab.window[0]:  # a reset may fall during the request
        Lab.open_model.intended.add((done - intended) * 1000)
    return result


def _is_taskset(task: object) -> bool:
    return isinstance(task, type) and issubclass(task, TaskSet)


def _pace_tasks(task_set: type[TaskSet]) -> None:
    """Every leaf task of every user class becomes one open-model arrival (nested TaskSets
    pace their own tasks); with ``--arrival-rate 0`` tasks run as they are. Locust runs a
    user's ``tasks`` through DefaultTaskSet, which has its own ``execute_task``."""
    original = task_set.__dict__["execute_task"]

    def execute_task(self: TaskSet, task: Any) -> None:
        environment = self.user.environment
        if _is_taskset(task) or arrival_rate(environment) <= 0 or environment.runner is None:
            original(self, task)
            return
        paced(environment, lambda: original(self, task))

    task_set.execute_task = execute_task  # type: ignore[method-assign]


def _no_think_time(user: object) -> float:
    return 0.0


# --- listeners ----------------------------------------------------------------------------

def _add_options(parser: Any) -> None:
    _options.add_measurement_arguments(parser)
    # Locust's web UI listens on every interface by default, without a login. Outside the
    # lab's images (where compose decides what is published) it listens on loopback
    # unless --web-host or LOCUST_WEB_HOST says otherwise.
    if os.environ.get("LOADLAB_IN_CONTAINER") != "1":
        parser.set_defaults(web_host="127.0.0.1")


def _count(request_type: str, name: str, response_time: float, exception: Any,
           context: dict[str, Any] | None = None, **_: Any) -> None:
    # Locust hands over the unrounded time (ms, float): rounding happens in its statistics.
    ms = float(response_time or 0.0)
    failed = exception is not None
    target = (context or {}).get("target", "host")
    Lab.state.table.add(name, request_type, target, ms / 1000, failed)
    if Lab.window[1] <= Lab.window[0]:
        # The measured window ends when the stop is asked for. Requests still queued at the
        # server then finish during --stop-timeout: counting them would credit the window
        # with work it did not do (a sync worker's backlog read as 118% of its capacity).
        Lab.latency.add(ms, failed)


def _init(environment: Environment, runner: Any, web_ui: Any, **_: Any) -> None:
    options = environment.parsed_options
    worker = isinstance(runner, WorkerRunner)
    if options is not None and not worker:
        users = options.num_users if options.headless else None
        problems = _options.problems(options, users)
        if problems:
            _options.fail(problems[0])
        target = _options.target_url(options) or environment.host
        if options.wait_ready_s > 0 and target:
            not_ready = wait_ready(target, options.wait_ready_s, options.wait_workers)
            if not_ready:
                _options.fail(f"--wait-ready-s: {target} {not_ready}")
    # The hub's clock is cached: after a slow start-up (imports on a busy machine, or the
    # wait above) it lags, and Locust's --run-time timer, set from it next, would fire early.
    gevent.get_hub().loop.update_now()
    Lab.state.runner = runner
    Lab.cpu.label = "locust worker" if worker else "locust"
    if options is not None:
        Lab.cpu.warn_percent = options.cpu_warn_percent
    Lab.cpu.start()
    if worker:
        runner.register_message("loadlab_reset", lambda environment, msg, **kw: _reset(runner))
        runner.register_message("loadlab_stop",
                                lambda environment, msg, **kw: _stop_and_ship(runner, msg.data))
    elif options is not None:
        # Spawn messages carry the options: workers learn the URLs the master knows.
        setattr(options, _options.URLS_OPTION, _options.known_urls())
    if isinstance(runner, MasterRunner):
        _announce_total_users(runner)
    if web_ui is not None:
        _webguard.install(web_ui.app)
        _check_form(environment, web_ui.app)
        registry = registry_for(Lab.state)
        web_ui.app.add_url_rule(
            "/metrics", "loadlab_metrics",
            lambda: Response(render(registry), mimetype="text/plain; version=0.0.4"),
        )


def _check_form(environment: Environment, app: Any) -> None:
    """Refuse a /swarm whose form cannot run, before Locust applies any of it: the page
    shows the answer's message under the form (Locust's UI does that for success=false)."""

    @app.before_request
    def _swarm_form() -> Response | None:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
            return None
        options = environment.parsed_options
        if options is None:
            return None
        problems = _options.form_problems(options, request.form)
        if not problems:
            return None
        log.error("loadlab: swarm refused: %s", "; ".join(problems))
        return jsonify({"success": False, "message": "; ".join(problems),
                        "host": environment.host})


def _announce_total_users(runner: MasterRunner) -> None:
    """Put the swarm's target user count into the options every spawn message carries, so
    each worker knows its share of the arrival rate (shapes change it mid-run)."""
    start = runner.start

    def start_and_announce(user_count: int, spawn_rate: float, *args: Any, **kw: Any) -> None:
        if runner.environment.parsed_options is not None:
            runner.environment.parsed_options.loadlab_total_users = user_count
        start(user_count, spawn_rate, *args, **kw)

    runner.start = start_and_announce  # type: ignore[method-assign]


def _reset(runner: Any) -> None:
    Lab.window[0] = time.perf_counter()
    runner.stats.reset_all()
    Lab.open_model = OpenModelStats()
    Lab.latency = Latency()
    Lab.recent_sends.clear()
    Lab.cpu.reset()


def _test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    options = environment.parsed_options
    Lab.pacer.reset()
    Lab.open_model = OpenModelStats()
    Lab.latency = Latency()
    Lab.spawned = itertools.count()
    Lab.recent_sends.clear()
    Lab.window[:] = [time.perf_counter(), 0.0]
    if arrival_rate(environment) > 0:
        for user_class in environment.user_classes:
            user_class.wait_time = _no_think_time
    if options is None or runner is None or isinstance(runner, WorkerRunner):
        return
    if not options.headless:  # a swarm not started by the form (a shape, an API client)
        problems = _options.problems(options, getattr(runner, "target_user_count", None),
                                     host=environment.host)
        if problems:
            log.error("loadlab: %s; stopping", "; ".join(problems))
            gevent.spawn_later(0.1, runner.stop)
            return
    if options.warmup_s > 0:
        Lab.warmup = gevent.spawn_later(options.warmup_s, _end_warmup, runner)


def _end_warmup(runner: Any) -> None:
    _reset(runner)
    if isinstance(runner, MasterRunner):
        runner.send_message("loadlab_reset")
    log.info("loadlab: warm-up over, statistics reset")


def _test_stopping(environment: Environment, **_: Any) -> None:
    # The window ends when the stop is asked for: a master waits for its workers' users to
    # stop (polling every second) before test_stop fires.
    Lab.window[1] = time.perf_counter()
    if Lab.master_window_s is not None:
        _end_at_masters_window(Lab.master_window_s)
    if isinstance(environment.runner, MasterRunner):
        _collect_final_reports(environment.runner)


def _end_at_masters_window(window_s: float) -> None:
    """A worker's window is as long as its master's, not up to when the stop reached it.

    The stop travels to the worker (tens of ms here, a second on a busy machine) while its
    users go on: counting up to its arrival put that time's slots in a window the master
    reports without them (sent + dropped overshot the window's slots by a sixth). Lengths,
    not clock times: a worker may run on another host. The window began when the reset
    reached the worker, about as late as the stop, so the two ends line up. The sends
    counted after the end are taken back; the latency of requests that ended in between
    stays in the histograms, which cannot take a sample back."""
    end = min(Lab.window[1], Lab.window[0] + max(window_s, 1e-6))
    Lab.window[1] = end
    for intended, late in Lab.recent_sends:
        if intended > end:
            Lab.open_model.sent -= 1  # may go below 0 in this report: the master sums them
            Lab.open_model.late -= late
    Lab.recent_sends.clear()


def _collect_final_reports(runner: MasterRunner) -> None:
    """Have every worker with users stop now and ship its last report, and wait for each.

    A worker counts its drops when its users have stopped, and ships them with its next
    report. Locust's quit (the end of a headless run) gives those reports 0.5 s before it
    stops listening; a worker on a busy machine can take longer, and its lost report is
    its last sends and every drop it counted (sent + dropped fell to half the window's
    slots). The wait is bounded: a worker that dies meanwhile is named and left out."""
    active = {node.id for node in (*runner.clients.spawning, *runner.clients.running)}
    if not active:
        return
    Lab.finals = set()
    runner.send_message("loadlab_stop", {"window_s": Lab.window[1] - Lab.window[0]})
    deadline = time.monotonic() + runner.environment.stop_timeout + FINAL_REPORT_WAIT_S
    while True:
        listed = {node.id for node in runner.clients.all if node.state != STATE_MISSING}
        waiting = (active & listed) - Lab.finals
        if not waiting:
            return
        if time.monotonic() > deadline:
            log.warning("loadlab: no last report from %s; its last figures are left out",
                        ", ".join(sorted(waiting)))
            return
        gevent.sleep(0.05)


def _stop_and_ship(runner: WorkerRunner, data: Any) -> None:
    """A worker asked by its master: stop the users (test_stop counts the drops) within the
    master's window, then ship the last report at once, marked as the last, instead of at
    the next tick."""
    if runner.state in (STATE_SPAWNING, STATE_RUNNING):
        Lab.master_window_s = _window_length(data)
        try:
            runner.stop()
        finally:
            Lab.master_window_s = None
    Lab.shipping_final = True
    try:
        runner._send_stats()  # Locust's own report, with _ship's share: one message
    finally:
        Lab.shipping_final = False


def _window_length(data: Any) -> float | None:
    try:
        window_s = float(data["window_s"])
    except (KeyError, TypeError, ValueError):
        return None
    return window_s if math.isfinite(window_s) and window_s >= 0 else None


def _test_stop(environment: Environment, **_: Any) -> None:
    if Lab.window[1] <= Lab.window[0]:  # no test_stopping seen
        Lab.window[1] = time.perf_counter()
    if arrival_rate(environment) > 0:
        # The users are stopped by now: the pacer counts at the pace of its last slot. On a
        # worker, these drops reach the master with the report that follows the stop.
        Lab.open_model.dropped += Lab.pacer.backlog(since=Lab.window[0], now=Lab.window[1])
    Lab.pacer.reset()
    if Lab.warmup is not None:  # a test stopped inside its warm-up must not reset the next
        Lab.warmup.kill(block=False)
        Lab.warmup = None


def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["loadlab"] = {
        "rows": Lab.state.table.dump_and_clear(),
        "open": Lab.open_model.dump(),
        "latency": Lab.latency.dump(),
        "cpu": Lab.cpu.last_percent,
        "cpu_peak": Lab.cpu.peak_percent,
        "final": Lab.shipping_final,
    }
    Lab.open_model = OpenModelStats()
    Lab.latency = Latency()
    horizon = time.perf_counter() - RECENT_SENDS_S
    while Lab.recent_sends and Lab.recent_sends[0][0] < horizon:
        Lab.recent_sends.popleft()


def _gather(client_id: str, data: dict[str, Any], **_: Any) -> None:
    shipped = data.get("loadlab")
    if not isinstance(shipped, dict):
        return
    # Port 5557 has no login: only workers the master lists count, and only what looks
    # like the lab's own report (the exporter bounds the rows it takes).
    worker = Lab.state.worker(client_id)
    if worker is None:
        return
    requests, failures = Lab.state.table.merge(shipped.get("rows"))
    worker.requests += requests
    worker.failures += failures
    try:
        worker.cpu_percent = float(shipped.get("cpu", 0.0))
        worker.cpu_peak = max(worker.cpu_peak, float(shipped.get("cpu_peak", 0.0)))
        Lab.state.note_peak(client_id, worker.cpu_peak)
        Lab.open_model.merge(shipped["open"])
        if shipped.get("latency"):
            Lab.latency.merge(shipped["latency"])
        Lab.state.late_sends += int(shipped["open"].get("late", 0))
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("loadlab: a malformed report from %s left out", client_id)
        return
    if shipped.get("final") is True:
        Lab.finals.add(client_id)


def _quitting(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    options = environment.parsed_options
    if options is None or isinstance(runner, WorkerRunner) or runner is None:
        return
    open_model = Lab.open_model if options.arrival_rate > 0 else None
    end = Lab.window[1] if Lab.window[1] > Lab.window[0] else time.perf_counter()
    window_s = end - Lab.window[0]
    if open_model is not None:
        open_model.window_s = window_s
    figures = Figures.from_stats(runner.stats.total, open_model, Lab.latency, window_s)
    gates = evaluate(options, figures)
    for gate in gates:
        sys.stderr.write(gate.line() + "\n")
    if gates:
        environment.process_exit_code = 0 if all(g.passed for g in gates) else 1
    if open_model is not None:
        log.info("loadlab: open model sent %d (%d late, %d dropped); intended-time p99 %.3g ms",
                 open_model.sent, open_model.late, open_model.dropped,
                 figures.gate_latency()["p99"])
    peaks = {"master" if isinstance(runner, MasterRunner) else "local": Lab.cpu.peak_percent}
    peaks.update(Lab.state.peaks)
    warned = Lab.cpu.warned or any(p > options.cpu_warn_percent for p in peaks.values())
    if options.loadlab_report:
        data = report(options, figures, gates, open_model, peaks, warned)
        # The closed model's users think between tasks: that caps what they can ask for.
        data.update(_thinktime.declared(environment.user_classes) if open_model is None
                    else {"think_time_ms": 0.0, "pacing_ms": None})
        write_atomic(options.loadlab_report, data)


def install() -> None:
    """Register the listeners, once per process."""
    if getattr(events, INSTALLED, False):
        return
    setattr(events, INSTALLED, True)
    events.init_command_line_parser.add_listener(_add_options)
    events.request.add_listener(_count)
    events.init.add_listener(_init)
    events.test_start.add_listener(_test_start)
    events.test_stopping.add_listener(_test_stopping)
    events.test_stop.add_listener(_test_stop)
    events.report_to_master.add_listener(_ship)
    events.worker_report.add_listener(_gather)
    events.quitting.add_listener(_quitting)
    _pace_tasks(TaskSet)
    _pace_tasks(DefaultTaskSet)


install()
