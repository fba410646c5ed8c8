"""One cell: start the variant, load it with Locust, sample the server, stop, summarise.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from loadlab.db import default_pool_size
from loadlab.names import DB_SCENARIOS
from loadlab.runner.database import DatabaseWatch, RunDatabase
from loadlab.runner.leftovers import Leftovers
from loadlab.runner.locust_driver import LocustProcess, locustfile, waits_ready
from loadlab.runner.options import RunSpec
from loadlab.runner.runtime import EarlyLoad, RemoteLoad, RunNotes, Runtime, StopsBehind
from loadlab.runner.sampler import ServerSampler
from loadlab.runs import bottleneck
from loadlab.runs.record import Run

Tick = Callable[[float, float, float | None, float | None, str], None]
GRACE_S = 30.0  # Locust start-up and shutdown on a busy machine
READY_WAIT_S = 60.0  # Locust started beside its service waits this long for it (> its own)
LATENCY_DIGITS = 3  # ms to the microsecond: what the locustfile's histogram resolves


def run_id_for(spec: RunSpec, index: int) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{index:03d}-{spec.target}-{spec.scenario}-{stamp}"


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def base_record(spec: RunSpec, run_id: str, server_name: str) -> Run:
    return {
        "run_id": run_id, "key": spec.key, "status": "ok", "target": spec.target,
        "framework": spec.target, "scenario": spec.scenario, "cpus": spec.cpus,
        "workers": spec.workers, "worker_class": spec.worker_class, "threads": spec.threads,
        "users": spec.users, "spawn_rate": spec.spawn_rate or spec.users,
        "arrival_rate": spec.arrival_rate, "io_ms": spec.io_ms, "cpu_work": spec.cpu_work,
        "db_pool_size": spec.db_pool_size or default_pool_size(spec.worker_class, spec.threads),
        "duration_s": spec.duration_s, "warmup_s": spec.warmup_s,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "requests": 0, "failures": 0, "error_rate": None, "rps": 0.0,
        "latency_ms": {"p50": None, "p95": None, "p99": None, "max": None},
        "server": {"name": server_name},
        **({"app": spec.app.target} if spec.app is not None else {}),
        **({"locustfile": spec.locustfile} if spec.locustfile else {}),
        **({"request_templates": list(spec.request_templates)}
           if spec.request_templates else {}),
    }


def _loadavg() -> float | None:
    """The machine's 1-minute load average at the end of the run (other tenants included)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ramp_seen(locust: LocustProcess) -> bool:
    try:
        return "Ramping to" in locust.log_path.read_text(errors="replace")
    except OSError:
        return False


def service_env(spec: RunSpec, database: RunDatabase | None) -> dict[str, str]:
    """What a natively started service needs besides its ServerConfig."""
    # Only the database scenarios' services get it: the others run as they would alone.
    env = database.env() if database is not None and spec.scenario in DB_SCENARIOS else {}
    if spec.db_pool_size is not None:
        env["LOADLAB_DB_POOL_SIZE"] = str(spec.db_pool_size)
    return env


def saturation_warning(lab: dict[str, Any] | None) -> str | None:
    """The locustfile's load-generator CPU warning (it samples every second in the measured
    window; Locust's own never fires in short runs), as one line for the run, or None."""
    if not lab or not lab.get("locust_cpu_warning"):
        return None
    peaks = lab.get("locust_cpu_peak_percent") or {}
    peak = max((float(v) for v in peaks.values()), default=0.0)
    return (f"warning: the load generator reached {peak:.0f}% CPU: it may be what limits "
            "this measurement (fewer users per process, or more cores for Locust)")


def machine_figures(busy_cores: float, server_cores: float, load_cores: float,
                    ) -> dict[str, float | None]:
    """The machine in the window: ``other_cores`` is the work that is neither the service
    nor Locust (other tenants, which spoil CPU-bound comparisons; the claims read it)."""
    return {
        "busy_cores": round(busy_cores, 3),
        "other_cores": round(max(busy_cores - server_cores - load_cores, 0.0), 3),
        "load_generator_cores": round(load_cores, 3),
        "loadavg_1m": _loadavg(),
    }


def _track(locust: LocustProcess, leftovers: Leftovers | None) -> None:
    if leftovers is not None and locust.proc is not None:
        leftovers.add("locust", locust.proc.pid)


def execute(spec: RunSpec, runtime: Runtime, raw_dir: Path, run_id: str,
            tick: Tick | None = None, leftovers: Leftovers | None = None,
            database: RunDatabase | None = None, stop_behind: bool = False) -> Run:
    cfg = spec.server_config(port=0)
    # Built by mutation (untyped here, typed when returned): see base_record for its start.
    record = cast(dict[str, Any], base_record(spec, run_id, cfg.server))
    placement = runtime.placement(cfg)
    if hasattr(runtime, "service_env"):
        runtime.service_env = service_env(spec, database)
    # Locust's start-up (about a second) overlaps the service's when both can wait: the
    # locustfile waits until /healthz answers and every worker is up (loadlab.readiness).
    # Not where connections are kept alive across workers: users that connect the moment
    # the last worker is up are mostly accepted by the workers already polling, and stay
    # there (seen: gthread 2x4 served 58-68 req/s of 80 this way, 77-78 a second later).
    # Gunicorn's sync workers close each connection, so every request is placed anew.
    early = (runtime if isinstance(runtime, EarlyLoad) and not isinstance(runtime, RemoteLoad)
             and (spec.workers == 1 or spec.worker_class == "sync")
             and spec.app is None  # a user's app may have no /healthz to wait on
             and waits_ready(locustfile(), spec.workers) else None)
    endpoint = early.launch(cfg) if early is not None else runtime.start(cfg)
    sampler: ServerSampler | None = None
    locust: LocustProcess | None = None
    watch: DatabaseWatch | None = None
    try:
        if leftovers is not None and endpoint.pid is not None:
            leftovers.add("service", endpoint.pid)
        if early is not None:
            locust = LocustProcess(spec, endpoint.base_url, raw_dir / run_id,
                                   cores=placement.load_cores, wait_ready_s=READY_WAIT_S)
            _track(locust.start(), leftovers)
            early.wait_ready()
        if database is not None and spec.scenario in DB_SCENARIOS:
            watch = database.watch()
        sampler = ServerSampler(endpoint.metrics_url, endpoint.pid, endpoint.base_url).start()
        if locust is None:
            if isinstance(runtime, RemoteLoad):  # the load comes from the runtime's own Locust
                locust = runtime.load_generator(spec, raw_dir / run_id)
            else:
                locust = LocustProcess(spec, endpoint.base_url, raw_dir / run_id,
                                       cores=placement.load_cores)
            _track(locust.start(), leftovers)
        planned = spec.warmup_s + spec.duration_s
        began = time.monotonic()
        load_began: float | None = None
        marked = False
        died = False
        locust_cpu_at_mark: float | None = None
        locust_cpu_last: float | None = None
        while locust.poll() is None:
            locust.pause(0.25)
            now = time.monotonic()
            if load_began is not None:  # Locust's own start-up would dominate the peak
                locust.sample_cpu()
            # Read while Locust lives: once it has exited its CPU time cannot be read.
            locust_cpu_last = locust.cpu_seconds() or locust_cpu_last
            if load_began is None and (_ramp_seen(locust) or now - began > 10):
                load_began = now
            phase_t = now - load_began if load_began is not None else 0.0
            warm = locust.warmup_over() if locust.own_warmup else phase_t >= spec.warmup_s
            if not marked and load_began is not None and (warm or phase_t > planned):
                sampler.mark()
                if watch is not None:
                    watch.mark()
                locust_cpu_at_mark = locust_cpu_last
                marked = True
            if not runtime.alive():
                died = True
                break
            if now - began > planned + GRACE_S:
                break
            if tick is not None:
                rps, p95 = sampler.live()
                tick(phase_t, planned, rps if rps is not None else locust.live_rps(), p95,
                     "measuring" if marked else "warm-up")
        if not marked:
            sampler.mark()
            if watch is not None:
                watch.mark()
            locust_cpu_at_mark = locust_cpu_last
        locust_cpu_at_end = locust.cpu_seconds() or locust_cpu_last
        window = sampler.window()
        sampler.stop()
        samples = raw_dir / f"{run_id}.samples.json"
        sampler.dump(samples, load_began)
        record["samples"] = f"{raw_dir.name}/{samples.name}"
        alive_at_end = runtime.alive()
        locust.stop()
        if died or not alive_at_end:
            record.update(status="failed", error=(
                "the service exited during the run: " + runtime.log_tail()
            ))
        figures = locust.figures()
        if figures is None and record["status"] == "ok":
            proc = getattr(locust, "proc", None)
            code = proc.returncode if proc is not None else None
            how = (f"Locust ended by signal {-code}" if code is not None and code < 0
                   else "Locust wrote no report")
            record.update(status="failed", error=f"{how}: {locust.log_tail()}")
        if figures is not None:
            lat = {k: _rounded(v) for k, v in figures.latency_ms.items()}
            record.update(
                requests=figures.requests, failures=figures.failures,
                error_rate=(_rounded(figures.failures / figures.requests, 5)
                            if figures.requests else None),
                rps=round(figures.rps, 2), latency_ms=lat, measured_s=figures.window_s,
                warmup_excluded=figures.warmup_excluded,
            )
            lab = locust.lab_report()
            record["latency_source"] = "locust"
            if lab is not None:
                record["model"] = lab.get("model", "closed")
                inside = lab.get("window") or {}
                if inside.get("requests") and float(inside.get("seconds") or 0) > 0:
                    # What completed inside the measured window: Locust's totals also count
                    # the requests a server finished after the stop, from its queue.
                    served, seconds = int(inside["requests"]), float(inside["seconds"])
                    record.update(
                        requests=served, failures=int(inside["failures"]),
                        error_rate=_rounded(int(inside["failures"]) / served, 5),
                        rps=round(served / seconds, 2), measured_s=round(seconds, 3))
                if lab.get("latency_source") == "hdr" and lab.get("latency_ms"):
                    # The locustfile's HDR histogram: µs resolution, merged over workers.
                    record["latency_ms"] = {
                        k: _rounded(v, LATENCY_DIGITS) for k, v in lab["latency_ms"].items()}
                    record["latency_source"] = "hdr"
                if lab.get("intended_latency_ms"):
                    record["intended_latency_ms"] = {
                        k: _rounded(v, LATENCY_DIGITS)
                        for k, v in lab["intended_latency_ms"].items()}
                if lab.get("open_model"):
                    record["open_model"] = lab["open_model"]
            if figures.requests == 0 and record["status"] == "ok":
                record.update(status="failed", error="no request completed in the window")
        record["locust_json"] = str(locust.json_path.relative_to(raw_dir.parent.resolve()))
        window_s = float(record.get("measured_s") or spec.duration_s)
        record["server"].update(
            cpu_seconds=_rounded(window.cpu_seconds, 3),
            cpu_cores_used=_rounded(window.cpu_seconds / window_s, 3)
            if window.cpu_seconds is not None else None,
            cpu_limit=window.cpu_limit,
            throttled_seconds=_rounded(window.throttled_seconds, 3),
            throttled_share=_rounded(window.throttled_share, 4),
            memory_bytes=int(window.memory_bytes) if window.memory_bytes else None,
            requests_in_progress=_rounded(window.in_progress_mean, 2),
            in_progress_samples=window.in_progress_samples,
            source=window.source, scrape_errors=sampler.scrape_errors,
            scrape=sampler.scrape_kind,
        )
        # CPU per request: the figure a change in the code moves, whatever the load.
        record["server"]["cpu_per_request_ms"] = (
            _rounded(window.cpu_seconds * 1000.0 / record["requests"], 4)
            if window.cpu_seconds is not None and record["requests"] else None)
        if watch is not None and database is not None:
            record["database"] = {**database.info, **watch.finish(window_s)}
            watch = None
        probes = sampler.probe_ms()
        record["probe_ms"] = {
            "count": len(probes),
            "p50": _rounded(statistics.median(probes)) if probes else None,
            "max": _rounded(max(probes)) if probes else None,
        }
        load_cores = (
            (locust_cpu_at_end - locust_cpu_at_mark) / window.seconds
            if locust_cpu_at_end is not None and locust_cpu_at_mark is not None else 0.0
        )
        server_cores = (window.cpu_seconds or 0.0) / window.seconds
        record["machine"] = machine_figures(window.machine_busy_cores, server_cores, load_cores)
        record["load"] = {
            "peak_cpu_percent": round(locust.peak_cpu_percent, 1),
            "server_cores": list(placement.server_cores),
            "load_cores": list(placement.load_cores),
            "separated": placement.separated,
        }
        if isinstance(runtime, RunNotes):
            record.update(runtime.run_notes())
        warning = saturation_warning(locust.lab_report())
        record["load"]["saturated"] = warning is not None
        if warning is not None:
            record["notes"] = [*record.get("notes", ()), warning]
        record["bottleneck"] = bottleneck.for_run(record, sampler.measured())
        return cast(Run, record)
    finally:
        if watch is not None:
            watch.finish(1.0)
        if sampler is not None:
            sampler.stop()
        if locust is not None:
            locust.stop()
        if stop_behind and isinstance(runtime, StopsBehind):
            runtime.stop_behind()  # the caller settles (the next start does too)
        else:
            runtime.stop()
        if leftovers is not None:
            leftovers.clear()
