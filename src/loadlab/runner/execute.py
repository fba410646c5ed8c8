"""One cell: start the variant, load it and sample the server, stop, summarise.

In three parts: ``start`` (the service, and the load generator beside it when both can
wait), ``measure`` (the load, the server's samples, everything read while the processes
live, as one ``Measurement``) and ``record_from`` (a pure function from the spec and the
measurement to the run record). ``execute`` runs the three and stops everything; what it
takes from the session around it (the live line, the leftovers register, the run database,
whether the service may finish exiting behind the next start) is one ``RunContext``.

A run whose service dies, or whose Locust writes no report, comes back as ``failed`` with
the reason; a service that will not start raises (the command exits 2). Whatever happens,
the service and Locust are stopped before this returns or raises (with ``stop_behind``,
the service is signalled and the caller's next start or ``settle`` waits for its end).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from loadlab.jsontypes import JsonObject
from loadlab.runner.interpreter import gil_note, read_interpreter
from loadlab.runner.leftovers import Leftovers
from loadlab.runner.loadgen import LoadFigures, LoadGenerator
from loadlab.runner.locust_driver import locustfile, waits_ready
from loadlab.runner.options import RunSpec
from loadlab.runner.run_database import DatabaseWatch, RunDatabase
from loadlab.runner.runtime_base import Endpoint, Placement, Runtime
from loadlab.runner.sampler import ServerSampler, Window
from loadlab.runs import bottleneck
from loadlab.runs.bottleneck import Gauges
from loadlab.runs.record import (
    Database,
    LatencyMs,
    Machine,
    ProbeMs,
    PythonFigures,
    Run,
    Series,
    ServerFigures,
)
from loadlab.scenarios import DB_SCENARIOS
from loadlab.service_db import default_pool_size

Tick = Callable[[float, float, float | None, float | None, str], None]
GRACE_S = 30.0  # Locust start-up and shutdown on a busy machine
READY_WAIT_S = 60.0  # Locust started beside its service waits this long for it (> its own)
LATENCY_DIGITS = 3  # ms to the microsecond: what the locustfile's histogram resolves
RAMP_WAIT_S = 10.0  # no sign of the users starting after this: the load is taken as begun
POLL_S = 0.25  # the load's state is read this often...
EDGE_POLL_S = 0.05  # ...and this often until the mark and near the window's end


def run_id_for(spec: RunSpec, index: int) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{index:03d}-{spec.target}-{spec.scenario}-{stamp}"


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def _loadavg() -> float | None:
    """The machine's 1-minute load average at the end of the run (other tenants included)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def service_env(spec: RunSpec, database: RunDatabase | None) -> dict[str, str]:
    """What a service needs besides its ServerConfig."""
    # Only the database scenarios' services get it: the others run as they would alone.
    env = database.env() if database is not None and spec.scenario in DB_SCENARIOS else {}
    if spec.db_pool_size is not None:
        env["LOADLAB_DB_POOL_SIZE"] = str(spec.db_pool_size)
    return env


@dataclass(frozen=True)
class RunContext:
    """What a run takes from the session around it rather than from its variant (the
    RunSpec): the live line, where its processes are registered, the run database, and
    whether its service may finish exiting while the session goes on."""

    tick: Tick | None = None  # the live line, called about 4 times a second
    leftovers: Leftovers | None = None  # where the run's processes are registered
    database: RunDatabase | None = None  # the database scenarios' server
    stop_behind: bool = False  # the service finishes exiting while the caller goes on


# --- the measurement ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Everything a run's record is made of, read while the service and the load generator
    lived; JSON both ways (``as_json``/``from_json``), so records can be rebuilt from it."""

    started_at: str  # ISO, UTC, seconds
    server_name: str  # the server software (uvicorn, gunicorn, granian)
    placement: Placement
    samples: str  # the server samples' file, relative to the results directory
    locust_json: str  # Locust's report, relative to the results directory
    service_died: bool  # during the run, or found dead at its end
    service_log: str  # the service's last lines when it died, else ""
    figures: LoadFigures | None  # None: the load generator wrote no report
    lab: JsonObject | None  # the locustfile's own report (HDR latency, window, CPU)
    load_exit: int | None  # the local Locust's exit code (negative: a signal)
    load_log: str  # the load generator's last lines
    load_peak_cpu_percent: float
    load_cpu_seconds: float | None  # the generator's CPU over the measured window
    window: Window  # the server's figures over the measured window
    scrape_errors: int
    scrape_kind: str  # "side-port" or "service-port"
    probes_ms: list[float]  # the sampler's /healthz probes in the window
    database: Database | None  # the run database's description and figures
    runtime_notes: Run = field(default_factory=Run)  # Runtime.run_notes()
    loadavg_1m: float | None = None
    # The interpreter and the GIL's state inside a request, from /info while it served
    # (None: /info did not answer, or a measurement from before these were read).
    python: PythonFigures | None = None
    gil_enabled: bool | None = None
    # The window second by second (ServerSampler.series); None in measurements recorded
    # before the claims read it.
    series: Series | None = None
    # The window's scrapes as the bottleneck verdict reads them (``ServerSampler.measured``);
    # None in measurements recorded before the verdict: their records have no bottleneck.
    gauges: list[Gauges] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        found = dict(data)
        cores = found["placement"]
        found["placement"] = Placement(tuple(cores["server_cores"]), tuple(cores["load_cores"]))
        found["window"] = Window(**found["window"])
        if found.get("figures") is not None:
            found["figures"] = LoadFigures(**found["figures"])
        if found.get("gauges") is not None:
            found["gauges"] = [Gauges.of(g) for g in found["gauges"]]
        return cls(**found)


# --- the record: a pure function of the spec and the measurement ---------------------------


def _latency_ms(found: Mapping[str, float | None], digits: int = 1) -> LatencyMs:
    """Latency percentiles as the load generator reported them, rounded (its keys are
    LatencyMs's: p50, p95, p99, max, mean)."""
    return cast(LatencyMs, {k: _rounded(v, digits) for k, v in found.items()})


def _load_fields(spec: RunSpec, m: Measurement) -> Run:
    """The client's figures, the run record's fields from the load generator: Locust's,
    then the locustfile's window and HDR latency when it reports them (each replacing the
    coarser one)."""
    figures, lab = m.figures, m.lab
    if figures is None:
        return {}
    found: Run = {
        "requests": figures.requests, "failures": figures.failures,
        "error_rate": (_rounded(figures.failures / figures.requests, 5)
                       if figures.requests else None),
        "rps": round(figures.rps, 2),
        "latency_ms": _latency_ms(figures.latency_ms),
        "measured_s": figures.window_s, "warmup_excluded": figures.warmup_excluded,
        "latency_source": "locust",
    }
    if lab is None:
        return found
    found["model"] = lab.get("model", "closed")
    inside = lab.get("window") or {}
    if inside.get("requests") and float(inside.get("seconds") or 0) > 0:
        # What completed inside the measured window: Locust's totals also count the
        # requests a server finished after the stop, from its queue.
        served, seconds = int(inside["requests"]), float(inside["seconds"])
        found["requests"], found["failures"] = served, int(inside["failures"])
        found["error_rate"] = _rounded(int(inside["failures"]) / served, 5)
        found["rps"], found["measured_s"] = round(served / seconds, 2), round(seconds, 3)
    if lab.get("latency_source") == "hdr" and lab.get("latency_ms"):
        # The locustfile's HDR histogram: µs resolution, merged over workers.
        found["latency_ms"] = _latency_ms(lab["latency_ms"], LATENCY_DIGITS)
        found["latency_source"] = "hdr"
    if lab.get("intended_latency_ms"):
        found["intended_latency_ms"] = _latency_ms(lab["intended_latency_ms"], LATENCY_DIGITS)
    if lab.get("open_model"):
        found["open_model"] = lab["open_model"]
    # The users' declared wait_time.
    if lab.get("think_time_ms") is not None:
        found["think_time_ms"] = lab["think_time_ms"]
    if lab.get("pacing_ms") is not None:
        found["pacing_ms"] = lab["pacing_ms"]
    return found


def window_seconds(spec: RunSpec, m: Measurement) -> float:
    """The measured window's length: the client's, else the planned duration."""
    return float(_load_fields(spec, m).get("measured_s") or spec.duration_s)


def _status(m: Measurement) -> tuple[str, str | None]:
    """``ok``, or ``failed`` with the first reason (a dead service before a missing report)."""
    if m.service_died:
        return "failed", "the service exited during the run: " + m.service_log
    if m.figures is None:
        code = m.load_exit
        how = (f"Locust ended by signal {-code}" if code is not None and code < 0
               else "Locust wrote no report")
        return "failed", f"{how}: {m.load_log}"
    if m.figures.requests == 0:
        return "failed", "no request completed in the window"
    return "ok", None


def _server_fields(m: Measurement, window_s: float, requests: int) -> ServerFigures:
    """The server's side of the window, with the CPU per request: the figure a change in
    the code moves, whatever the load."""
    w = m.window
    return {
        "name": m.server_name, "python": m.python, "gil_enabled": m.gil_enabled,
        "cpu_seconds": _rounded(w.cpu_seconds, 3),
        "cpu_cores_used": (_rounded(w.cpu_seconds / window_s, 3)
                           if w.cpu_seconds is not None else None),
        "cpu_limit": w.cpu_limit,
        "throttled_seconds": _rounded(w.throttled_seconds, 3),
        "throttled_share": _rounded(w.throttled_share, 4),
        "memory_bytes": int(w.memory_bytes) if w.memory_bytes else None,
        "requests_in_progress": _rounded(w.in_progress_mean, 2),
        "in_progress_samples": w.in_progress_samples,
        "source": w.source, "scrape_errors": m.scrape_errors, "scrape": m.scrape_kind,
        "cpu_per_request_ms": (_rounded(w.cpu_seconds * 1000.0 / requests, 4)
                               if w.cpu_seconds is not None and requests else None),
    }


def machine_figures(busy_cores: float, server_cores: float, load_cores: float,
                    loadavg_1m: float | None = None) -> Machine:
    """The machine in the window: ``other_cores`` is the work that is neither the service
    nor Locust (other tenants, which spoil CPU-bound comparisons; the claims read it)."""
    return {
        "busy_cores": round(busy_cores, 3),
        "other_cores": round(max(busy_cores - server_cores - load_cores, 0.0), 3),
        "load_generator_cores": round(load_cores, 3),
        "loadavg_1m": loadavg_1m,
    }


def saturation_warning(lab: Mapping[str, Any] | None) -> str | None:
    """The locustfile's load-generator CPU warning (it samples every second in the measured
    window; Locust's own never fires in short runs), as one line for the run, or None."""
    if not lab or not lab.get("locust_cpu_warning"):
        return None
    peaks = lab.get("locust_cpu_peak_percent") or {}
    peak = max((float(v) for v in peaks.values()), default=0.0)
    return (f"warning: the load generator reached {peak:.0f}% CPU: it may be what limits "
            "this measurement (fewer users per process, or more cores for Locust)")


def _probe_fields(probes: list[float]) -> ProbeMs:
    return {"count": len(probes),
            "p50": _rounded(statistics.median(probes)) if probes else None,
            "max": _rounded(max(probes)) if probes else None}


def record_from(spec: RunSpec, run_id: str, m: Measurement) -> Run:
    """The run record (docs/runner.md), every field assembled here, from the spec and what
    was measured; pure, so it is tested on recorded measurements."""
    load = _load_fields(spec, m)
    requests = int(load.get("requests", 0))
    window_s = float(load.get("measured_s") or spec.duration_s)
    status, error = _status(m)
    w = m.window
    warning = saturation_warning(m.lab)
    record: Run = {
        "run_id": run_id, "key": spec.key, "status": status, "target": spec.target,
        "framework": spec.target, "scenario": spec.scenario, "cpus": spec.cpus,
        "workers": spec.workers, "worker_class": spec.worker_class, "threads": spec.threads,
        "users": spec.users, "spawn_rate": spec.spawn_rate or spec.users,
        "arrival_rate": spec.arrival_rate, "io_ms": spec.io_ms, "cpu_work": spec.cpu_work,
        "db_pool_size": spec.db_pool_size or default_pool_size(spec.worker_class, spec.threads),
        "backpressure": spec.backpressure, "python": spec.python,
        "duration_s": spec.duration_s, "warmup_s": spec.warmup_s, "started_at": m.started_at,
        "requests": 0, "failures": 0, "error_rate": None, "rps": 0.0,
        "latency_ms": {"p50": None, "p95": None, "p99": None, "max": None},
        "server": _server_fields(m, window_s, requests),
        **({"app": spec.app.target} if spec.app is not None else {}),
        **({"locustfile": spec.locustfile} if spec.locustfile else {}),
        **({"request_templates": list(spec.request_templates)}
           if spec.request_templates else {}),
        "samples": m.samples,
        **({"series": m.series} if m.series is not None else {}),
        **({"error": error} if error is not None else {}),
        **load,  # the client's figures (requests ... latency_ms take their places above)
        "locust_json": m.locust_json,
        **({"database": m.database} if m.database is not None else {}),
        "probe_ms": _probe_fields(m.probes_ms),
        "machine": machine_figures(w.machine_busy_cores, (w.cpu_seconds or 0.0) / w.seconds,
                                   (m.load_cpu_seconds or 0.0) / w.seconds, m.loadavg_1m),
        "load": {"peak_cpu_percent": round(m.load_peak_cpu_percent, 1),
                 "server_cores": list(m.placement.server_cores),
                 "load_cores": list(m.placement.load_cores),
                 "separated": m.placement.separated, "saturated": warning is not None},
        **m.runtime_notes,
    }
    notes = [line for line in (warning, gil_note(spec.python, m.gil_enabled)) if line]
    if notes:
        record["notes"] = [*record.get("notes", ()), *notes]
    if m.gauges is not None:  # the verdict reads the record made so far
        record["bottleneck"] = bottleneck.for_run(record, m.gauges)
    return record


# --- start and measure ---------------------------------------------------------------------


@dataclass
class Started:
    """What ``start`` started (``execute`` stops each, whatever happens)."""

    endpoint: Endpoint
    placement: Placement
    started_at: str
    out_prefix: Path  # RAW_DIR/RUN_ID: where the run's files go (RUN_ID.samples.json, ...)
    load: LoadGenerator | None = None  # started beside the service, else by ``measure``
    sampler: ServerSampler | None = None
    watch: DatabaseWatch | None = None


def _track(load: LoadGenerator, leftovers: Leftovers | None) -> None:
    if leftovers is not None and load.pid is not None:
        leftovers.add("locust", load.pid)


def _starts_early(spec: RunSpec, runtime: Runtime) -> bool:
    """Locust's start-up (about a second) overlaps the service's when both can wait: the
    locustfile waits until /healthz answers and every worker is up (loadlab.readiness).
    Not where connections are kept alive across workers: users that connect the moment the
    last worker is up are mostly accepted by the workers already polling, and stay there
    (seen: gthread 2x4 served 58-68 req/s of 80 this way, 77-78 a second later). Gunicorn's
    sync workers close each connection, so every request is placed anew."""
    return (runtime.starts_early and (spec.workers == 1 or spec.worker_class == "sync")
            and spec.app is None  # a user's app may have no /healthz to wait on
            and waits_ready(locustfile(), spec.workers))


def start(spec: RunSpec, runtime: Runtime, out_prefix: Path, env: Mapping[str, str],
          leftovers: Leftovers | None = None) -> Started:
    """Start the service (and, when it can wait for it, the load generator beside it);
    return once the service is ready. Raises RuntimeError_ (nothing is left running)."""
    cfg = spec.server_config(port=0)
    placement = runtime.placement(cfg)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    early = _starts_early(spec, runtime)
    endpoint = runtime.launch(cfg, env) if early else runtime.start(cfg, env)
    started = Started(endpoint, placement, started_at, out_prefix)
    try:
        if leftovers is not None and endpoint.pid is not None:
            leftovers.add("service", endpoint.pid)
        if early:
            started.load = runtime.load_generator(spec, out_prefix, endpoint, placement,
                                                  wait_ready_s=READY_WAIT_S)
            _track(started.load.start(), leftovers)
            runtime.wait_ready()
    except BaseException:
        if started.load is not None:
            started.load.stop()
        runtime.stop()
        if leftovers is not None:
            leftovers.clear()
        raise
    return started


@dataclass
class _Loop:
    """What the polling loop saw."""

    load_began: float | None = None
    marked: bool = False
    died: bool = False
    cpu_at_mark: float | None = None
    cpu_last: float | None = None
    cut_at: float | None = None  # the measured window's end (the sampler's ``cut``)


def _mark(loop: _Loop, sampler: ServerSampler, watch: DatabaseWatch | None) -> None:
    """The warm-up is over: the measured window begins for every figure."""
    sampler.mark()
    if watch is not None:
        watch.mark()
    loop.cpu_at_mark = loop.cpu_last
    loop.marked = True


def _follow(spec: RunSpec, runtime: Runtime, run: Started, tick: Tick | None) -> _Loop:
    """Poll until the load ends, the service dies or the time is up (plus a grace)."""
    load, sampler = run.load, run.sampler
    assert load is not None and sampler is not None, "_follow() before the load started"
    loop = _Loop()
    planned = spec.warmup_s + spec.duration_s
    began = time.monotonic()
    while load.poll() is None:
        # Often at the window's edges: the mark late by a poll is a window late by as much.
        end = (sampler.marked_at + spec.duration_s if sampler.marked_at is not None
               and loop.cut_at is None else None)
        load.pause(EDGE_POLL_S if not loop.marked
                   else POLL_S if end is None else min(POLL_S, max(end - time.monotonic(), 0.0)))
        now = time.monotonic()
        if end is not None and now >= end:
            # The window is the whole --duration from the mark; Locust runs on (its run
            # time is rounded up to whole seconds) and stops after it.
            loop.cut_at = sampler.cut()
        if loop.load_began is not None:  # Locust's own start-up would dominate the peak
            load.sample_cpu()
        # Read while Locust lives: once it has exited its CPU time cannot be read.
        loop.cpu_last = load.cpu_seconds() or loop.cpu_last
        if loop.load_began is None and (load.ramp_seen() or now - began > RAMP_WAIT_S):
            loop.load_began = now
        phase_t = now - loop.load_began if loop.load_began is not None else 0.0
        warm = load.warmup_over() if load.own_warmup else phase_t >= spec.warmup_s
        if not loop.marked and loop.load_began is not None and (warm or phase_t > planned):
            _mark(loop, sampler, run.watch)
        if not runtime.alive():
            loop.died = True
            break
        if now - began > planned + GRACE_S:
            break
        if tick is not None:
            rps, p95 = sampler.live()
            tick(phase_t, planned, rps if rps is not None else load.live_rps(), p95,
                 "measuring" if loop.marked else "warm-up")
    if not loop.marked:
        _mark(loop, sampler, run.watch)
    return loop


def measure(spec: RunSpec, runtime: Runtime, run: Started,
            context: RunContext | None = None) -> Measurement:
    """Put the load on the started service, sample it, and read every figure."""
    context = context or RunContext()
    endpoint, database = run.endpoint, context.database
    raw_dir, run_id = run.out_prefix.parent, run.out_prefix.name
    if database is not None and spec.scenario in DB_SCENARIOS:
        run.watch = database.watch()
    sampler = run.sampler = ServerSampler(endpoint.metrics_url, endpoint.pid,
                                          endpoint.base_url).start()
    if run.load is None:
        run.load = runtime.load_generator(spec, run.out_prefix, endpoint, run.placement)
        _track(run.load.start(), context.leftovers)
    load = run.load
    loop = _follow(spec, runtime, run, context.tick)
    cpu_at_end = load.cpu_seconds() or loop.cpu_last
    window = sampler.window()
    gauges = [Gauges.of(s) for s in sampler.measured()]  # after window(): its scrapes
    sampler.stop()
    # The interpreter and the GIL's state inside a request, asked while it still serves.
    python, gil_enabled = read_interpreter(endpoint.base_url)
    samples = raw_dir / f"{run_id}.samples.json"
    sampler.dump(samples, loop.load_began)
    died = loop.died or not runtime.alive()
    load.stop()
    m = Measurement(
        started_at=run.started_at, server_name=spec.server_config(port=0).server,
        placement=run.placement, samples=f"{raw_dir.name}/{samples.name}",
        locust_json=str(load.json_path.relative_to(raw_dir.parent.resolve())),
        service_died=died, service_log=runtime.log_tail() if died else "",
        figures=load.figures(), lab=load.lab_report(), load_exit=load.exit_code(),
        load_log=load.log_tail(), load_peak_cpu_percent=load.peak_cpu_percent,
        load_cpu_seconds=(cpu_at_end - loop.cpu_at_mark if cpu_at_end is not None
                          and loop.cpu_at_mark is not None else None),
        window=window, scrape_errors=sampler.scrape_errors, scrape_kind=sampler.scrape_kind,
        probes_ms=sampler.probe_ms(), database=None, loadavg_1m=_loadavg(), python=python,
        gil_enabled=gil_enabled, gauges=gauges,
        # Per-second samples of the window: from the mark to the cut at the mark +
        # --duration; a load that ended before the cut: up to half a second before its
        # planned end (its last half second may hold Locust's stop).
        series=sampler.series(loop.cut_at if loop.cut_at is not None
                              else None if loop.load_began is None
                              else loop.load_began + spec.warmup_s + spec.duration_s - 0.5))
    if run.watch is not None and database is not None:
        watch, run.watch = run.watch, None
        m = replace(m, database={**database.info, **watch.finish(window_seconds(spec, m))})
    return replace(m, runtime_notes=runtime.run_notes())


def execute(spec: RunSpec, runtime: Runtime, raw_dir: Path, run_id: str,
            context: RunContext | None = None) -> Run:
    """Start, measure, stop everything, and make the record (its files under ``raw_dir``)."""
    context = context or RunContext()
    leftovers = context.leftovers
    run = start(spec, runtime, raw_dir / run_id, service_env(spec, context.database), leftovers)
    try:
        measured = measure(spec, runtime, run, context)
    finally:
        if run.watch is not None:
            run.watch.finish(1.0)
        if run.sampler is not None:
            run.sampler.stop()
        if run.load is not None:
            run.load.stop()
        if context.stop_behind:
            runtime.stop_behind()  # the caller settles (the next start does too)
        else:
            runtime.stop()
        if leftovers is not None:
            leftovers.clear()
    return record_from(spec, run_id, measured)
