"""The lab's load: FastHttpUser scenarios for every endpoint of the service contract.

    locust -f locust/locustfile.py --host http://127.0.0.1:8000 --scenario io --io-ms 100
    locust -f locust/locustfile.py,locust/shapes.py --class-picker      # web UI with shapes

Closed model by default (each user waits for its answer); ``--arrival-rate R`` switches
to the open model (see _openmodel.py). Gates (``--max-p95-ms`` ...) are checked when the
test stops. Locust's web app serves the swarm's Prometheus metrics at ``/metrics``.
Works headless, with the web UI, and as master or worker. docs/locust.md has the rest.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

import _options
import _scenarios
import _webguard
import gevent
from _cpuwatch import CpuWatch
from _exporter import SwarmState, registry_for, render
from _gates import Figures, evaluate, report, write_atomic
from _latency import Latency
from _openmodel import OpenModelStats, Pacer
from flask import Response, jsonify, request
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadlab.readiness import wait_ready
from loadlab.scenarios import REGISTRY, Scenario
from locust import FastHttpUser, events, tag

log = logging.getLogger("loadlab")


class Lab:
    """This process's share of the lab's state (one per Locust process)."""

    state = SwarmState()           # exporter: totals (master/local) or deltas (worker)
    open_model = OpenModelStats()  # open model: totals (master/local) or deltas (worker)
    latency = Latency()            # the measured window, in µs: totals or deltas (worker)
    pacer = Pacer()
    cpu = CpuWatch("locust")
    warmup: gevent.Greenlet | None = None
    window: ClassVar[list[float]] = [0.0, 0.0]  # measured window (perf_counter), post warm-up
    spawned = itertools.count()    # users started here: "both" alternates services by it


def users_target(environment: Environment) -> int:
    """The swarm's target user count; workers learn it from the master's spawn messages."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return int(getattr(environment.parsed_options, "loadlab_total_users", 0) or 0)
    return int(getattr(runner, "target_user_count", 0) or 0)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    _options.add_arguments(parser)
    # Locust's web UI listens on every interface by default, without a login. Outside the
    # lab's images (where compose decides what is published) it listens on loopback
    # unless --web-host or LOCUST_WEB_HOST says otherwise.
    if os.environ.get("LOADLAB_IN_CONTAINER") != "1":
        parser.set_defaults(web_host="127.0.0.1")


@events.request.add_listener
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


def _in_mix(task: object) -> bool:
    """The "all" mix: every endpoint that needs no database (MIX_WEIGHTS)."""
    return bool(set(getattr(task, "locust_tag_set", ())) & set(_scenarios.MIX_WEIGHTS))


def _idle(user: object) -> None:
    gevent.sleep(1)


def _task(scenario: Scenario) -> Callable[[LabUser], None]:
    """The task of one scenario: its checked request, paced by the user's load model."""
    request = _scenarios.SINGLE[scenario.name]

    def run(user: LabUser) -> None:
        user._call(request)

    run.__name__ = run.__qualname__ = scenario.function
    return tag(scenario.name)(run)


class LabUser(FastHttpUser):
    """One scenario per user, read from the options when the user starts (so values entered
    in the web UI reach new users). Tasks are tagged by scenario; ``all`` runs the mix."""

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        chosen = _options.services(getattr(options, "target", "host"))
        # "both": users alternate between the services; a worker starts from its index, so
        # the odd users of successive workers land on alternate services too.
        offset = max(int(getattr(environment.runner, "worker_index", 0) or 0), 0)
        service = chosen[(next(Lab.spawned) + offset) % len(chosen)] if chosen else "host"
        url = _options.known_urls(options).get(service) if chosen else None
        if url:
            self.host = url
        self.label = {"target": service}
        super().__init__(environment)
        self.knobs = _options.Knobs.from_options(options)

    def context(self) -> dict[str, Any]:
        """Every request's event carries the service it went to (the exporter's label)."""
        return self.label

    def on_start(self) -> None:
        # The web form's values are checked when Start is pressed; a shape or an API call
        # that got bad ones past that sends nothing (the master logs them and stops).
        options = self.environment.parsed_options
        if _options.problems(options, None, host=self.host or self.environment.host):
            self.tasks = [_idle]
            return
        scenario = self.knobs.scenario
        cls_tasks = type(self).tasks
        self.tasks = [t for t in cls_tasks if scenario in getattr(t, "locust_tag_set", ())
                      or (scenario == "all" and _in_mix(t))]
        if not self.tasks:
            log.error("loadlab: no task left for scenario %s (check --tags)", scenario)
            self.tasks = [_idle]

    def _call(self, request: _scenarios.Request) -> None:
        knobs = self.knobs
        if knobs.arrival_rate <= 0:
            request(self.client, knobs)
            return
        env = self.environment
        intended = Lab.pacer.take(knobs.arrival_rate, env.runner.user_count, users_target(env))
        delay = intended - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        started = time.perf_counter()
        # Warm-up slots sent late after it are not part of the measurement.
        measured = intended >= Lab.window[0]
        if measured:
            Lab.open_model.sent += 1  # counted when sent: in-flight sends at the stop count
            if started - intended > knobs.late_s:
                Lab.open_model.late += 1
                Lab.state.late_sends += 1
        request(self.client, knobs)
        done = time.perf_counter()
        if not measured or intended < Lab.window[0]:  # a reset may fall during the request
            return
        Lab.open_model.intended.add((done - intended) * 1000)

    # One task per scenario of the registry, tagged with its name (--tags works on them).
    # Locust takes a dict of weights too (its annotation says list only).
    tasks: Any = {_task(s): max(s.mix_weight, 1) for s in REGISTRY}  # noqa: RUF012


# --- process roles ------------------------------------------------------------------------

@events.init.add_listener
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
    Lab.cpu.reset()


@events.test_start.add_listener
def _test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    options = environment.parsed_options
    Lab.pacer.reset()
    Lab.open_model = OpenModelStats()
    Lab.latency = Latency()
    Lab.spawned = itertools.count()
    Lab.window[:] = [time.perf_counter(), 0.0]
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


@events.test_stopping.add_listener
def _test_stopping(environment: Environment, **_: Any) -> None:
    # The window ends when the stop is asked for: a master waits for its workers' users to
    # stop (polling every second) before test_stop fires.
    Lab.window[1] = time.perf_counter()


@events.test_stop.add_listener
def _test_stop(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if Lab.window[1] <= Lab.window[0]:  # no test_stopping seen
        Lab.window[1] = time.perf_counter()
    if options is not None and options.arrival_rate > 0:
        # The users are stopped by now: the pacer counts at the pace of its last slot. On a
        # worker, these drops reach the master with the report that follows the stop.
        Lab.open_model.dropped += Lab.pacer.backlog(since=Lab.window[0], now=Lab.window[1])
    Lab.pacer.reset()
    if Lab.warmup is not None:  # a test stopped inside its warm-up must not reset the next
        Lab.warmup.kill(block=False)
        Lab.warmup = None


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["loadlab"] = {
        "rows": Lab.state.table.dump_and_clear(),
        "open": Lab.open_model.dump(),
        "latency": Lab.latency.dump(),
        "cpu": Lab.cpu.last_percent,
        "cpu_peak": Lab.cpu.peak_percent,
    }
    Lab.open_model = OpenModelStats()
    Lab.latency = Latency()


@events.worker_report.add_listener
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


@events.quitting.add_listener
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
        write_atomic(options.loadlab_report,
                     report(options, figures, gates, open_model, peaks, warned))
