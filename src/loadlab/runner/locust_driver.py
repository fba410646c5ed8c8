"""Locust as a headless subprocess (never imported here: it monkey-patches with gevent).

The driver builds the command line, keeps the load generator on its own cores, follows its
output for a live figure, stops it by process group, and reads its ``--json-file`` report.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from loadlab import requestlist
from loadlab.jsontypes import JsonObject
from loadlab.paths import lab_path
from loadlab.procs import kill_group, tie_to_parent
from loadlab.runner.loadgen import LoadFigures, log_tail
from loadlab.runner.options import RunSpec

_AGGREGATED = re.compile(r"^\s+Aggregated\s+(\d+)\s+\d+\([\d.]+%\)\s*\|.*\|\s*([\d.]+)\s+[\d.]+")


def locustfile() -> Path:
    configured = os.environ.get("LOADLAB_LOCUSTFILE")
    if configured:
        return Path(configured)
    return lab_path("locust", "locustfile.py") / "locustfile.py"


def plugin() -> Path:
    """The lab's measurement as a Locust plugin, loaded beside a user's own locustfile."""
    return lab_path("locust", "loadlab_plugin.py") / "loadlab_plugin.py"


def load_files(spec: RunSpec) -> list[Path]:
    """The files Locust loads (``-f a.py,b.py``): the lab's locustfile (which imports the
    plugin), or the user's own load beside the plugin."""
    if spec.locustfile:
        return [Path(spec.locustfile).resolve(), plugin()]
    if spec.request_templates:
        return [plugin().with_name("loadlab_requests.py"), plugin()]
    return [locustfile()]


def load_env(spec: RunSpec) -> dict[str, str] | None:
    """Locust's environment: with --request, the parsed templates (None: the runner's)."""
    if not spec.request_templates:
        return None
    templates = requestlist.parse_all(spec.request_templates, Path.cwd())
    return {**os.environ, requestlist.ENV: requestlist.to_json(templates)}


def locust_bin() -> str:
    beside = Path(sys.executable).with_name("locust")
    return str(beside) if beside.exists() else (shutil.which("locust") or "locust")


@functools.cache
def locustfile_options(path: str) -> frozenset[str]:
    """The options the locustfile (and its helper modules beside it) declare.

    ``locust --help`` does not list a locustfile's own options, so they are read from the
    source: the runner never imports Locust.
    """
    found: set[str] = set()
    for source in Path(path).parent.glob("*.py"):
        with contextlib.suppress(OSError):
            found.update(re.findall(r"add_argument\(\s*[\"'](--[a-z][a-z0-9-]+)",
                                    source.read_text(errors="replace")))
    return frozenset(found)


def lab_report_path(json_prefix: Path) -> Path:
    return json_prefix.parent / f"{json_prefix.name}.loadlab.json"


def waits_ready(path: Path, workers: int = 1) -> bool:
    """Whether the locustfile can wait for its target to be ready (``--wait-ready-s``), and
    for all of its ``workers`` (``--wait-workers``)."""
    known = locustfile_options(str(path))
    return "--wait-ready-s" in known and (workers <= 1 or "--wait-workers" in known)


def build_argv(spec: RunSpec, host: str, json_prefix: Path, path: Path,
               wait_ready_s: float = 0.0, files: list[Path] | None = None,
               ) -> tuple[list[str], bool]:
    """The Locust command; the flag says whether the locustfile drops the warm-up itself.

    ``wait_ready_s`` > 0: the service is still starting; the locustfile waits for it.
    ``files``: what Locust loads when not ``path`` alone (the user's load and the plugin;
    ``path`` is then the plugin, whose options the command may use).
    """
    known = locustfile_options(str(path))
    spawn_rate = spec.spawn_rate or float(spec.users)
    argv = [
        locust_bin(), "-f", ",".join(str(f) for f in files or [path]), "--headless",
        "--host", host, "-u", str(spec.users), "-r", f"{spawn_rate:g}",
        "-t", f"{math.ceil(spec.warmup_s + spec.duration_s)}s",
        "--json-file", str(json_prefix), "--stop-timeout", "2",
    ]
    if not spec.own_load:  # the lab's scenarios; a user's load has its own requests
        argv += ["--scenario", spec.scenario]
        if spec.io_ms is not None:
            argv += ["--io-ms", str(spec.io_ms)]
        if spec.cpu_work is not None:
            argv += ["--cpu-work", str(spec.cpu_work)]
    if spec.arrival_rate:
        argv += ["--arrival-rate", f"{spec.arrival_rate:g}"]
    for key, value in sorted(spec.extra.items()):
        argv += [f"--{key}", str(value)]
    # The lab's locustfile resets its statistics after --warmup-s (docs/locust.md), so its
    # report covers the measured window only; with a plain locustfile the runner cuts it.
    own_warmup = "--warmup-s" in known and spec.warmup_s > 0
    if own_warmup:
        argv += ["--warmup-s", f"{spec.warmup_s:g}"]
    if "--loadlab-report" in known:
        argv += ["--loadlab-report", str(lab_report_path(json_prefix))]
    if wait_ready_s > 0:
        if not waits_ready(path, spec.workers):
            raise ValueError(f"{path} cannot wait for its target (no --wait-ready-s, or no "
                             "--wait-workers for a service of several workers)")
        argv += ["--wait-ready-s", f"{wait_ready_s:g}"]
        if spec.workers > 1:
            argv += ["--wait-workers", str(spec.workers)]
    return argv, own_warmup


def percentile(response_times: Mapping[float, int], total: int, q: float) -> float:
    """Locust's own rule over its rounded response-time buckets (ms)."""
    if total <= 0:
        return math.nan
    wanted = int(total * q)
    processed = 0
    for rt in sorted(response_times, reverse=True):
        processed += response_times[rt]
        if total - processed <= wanted:
            return rt
    return 0.0


def summarise(entries: list[JsonObject], warmup_s: float, duration_s: float,
              own_warmup: bool) -> LoadFigures:
    """Figures over all endpoints of Locust's JSON report, the warm-up left out."""
    merged: dict[float, int] = {}
    per_sec: dict[int, int] = {}
    fails_per_sec: dict[int, int] = {}
    requests = failures = 0
    max_rt = 0.0
    total_rt = 0.0
    start = math.inf
    end = 0.0
    for entry in entries:
        requests += int(entry["num_requests"])
        failures += int(entry["num_failures"])
        max_rt = max(max_rt, float(entry.get("max_response_time") or 0.0))
        total_rt += float(entry.get("total_response_time") or 0.0)
        for key, count in entry.get("response_times", {}).items():
            merged[float(key)] = merged.get(float(key), 0) + int(count)
        for sec, count in entry.get("num_reqs_per_sec", {}).items():
            per_sec[int(sec)] = per_sec.get(int(sec), 0) + int(count)
        for sec, count in entry.get("num_fail_per_sec", {}).items():
            fails_per_sec[int(sec)] = fails_per_sec.get(int(sec), 0) + int(count)
        if entry.get("num_requests"):
            start = min(start, float(entry["start_time"]))
            end = max(end, float(entry.get("last_request_timestamp") or 0.0))
    lat = {
        "p50": percentile(merged, requests, 0.50), "p95": percentile(merged, requests, 0.95),
        "p99": percentile(merged, requests, 0.99), "max": round(max_rt, 1),
        "mean": total_rt / requests if requests else math.nan,
    }
    if own_warmup or warmup_s <= 0 or not per_sec:
        window = max(min(duration_s, end - start if end > start else duration_s), 1e-3)
        return LoadFigures(requests, failures, requests / window, lat, window,
                           "all" if own_warmup else "none")
    # Locust reports whole-run latencies only: the warm-up is cut from throughput and counts.
    first = min(per_sec)
    cut = first + math.ceil(warmup_s)
    last = max(per_sec)
    kept = {s: c for s, c in per_sec.items() if cut <= s < last}  # last second is partial
    secs = max(len(range(cut, last)), 1)
    kept_requests = sum(kept.values())
    kept_failures = sum(c for s, c in fails_per_sec.items() if cut <= s < last)
    if not kept:
        return LoadFigures(requests, failures, requests / max(duration_s, 1e-3), lat,
                           duration_s, "none")
    return LoadFigures(kept_requests, kept_failures, kept_requests / secs, lat, float(secs),
                       "rps only")


class LocustProcess:
    """One headless Locust run in its own process group (a ``loadgen.LoadGenerator``)."""

    def __init__(self, spec: RunSpec, host: str, out_prefix: Path,
                 cores: tuple[int, ...] | None = None, wait_ready_s: float = 0.0) -> None:
        self.spec = spec
        out_prefix = out_prefix.resolve()  # Locust runs in the locustfile's directory
        self.json_prefix = out_prefix
        self.log_path = out_prefix.with_suffix(".locust.log")
        self.files = load_files(spec)
        self.argv, self.own_warmup = build_argv(spec, host, out_prefix, self.files[-1],
                                                wait_ready_s, self.files)
        self.env = load_env(spec)
        self.cores = cores
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_cpu_percent = 0.0
        self._ps: psutil.Process | None = None
        self.started = 0.0

    def start(self) -> LocustProcess:
        self.json_prefix.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # SIGTERM (Locust writes its report and exits) when the runner dies, even by
            # SIGKILL: no load outlives its runner.
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=str(self.files[0].parent), preexec_fn=tie_to_parent(signal.SIGTERM),
                env=self.env,
            )
        self.started = time.monotonic()
        with contextlib.suppress(psutil.Error, OSError):
            self._ps = psutil.Process(self.proc.pid)
            if self.cores:
                self._ps.cpu_affinity(list(self.cores))
            self._ps.cpu_percent(None)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def exit_code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def ramp_seen(self) -> bool:
        """Locust has begun starting its users (its log says so)."""
        try:
            return "Ramping to" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less if Locust exits meanwhile (its end is not waited on
        for up to a poll interval)."""
        if self.proc is None:
            time.sleep(seconds)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=seconds)

    def sample_cpu(self) -> None:
        """Track the generator's peak CPU (Locust's own warning comes too late in short runs)."""
        if self._ps is not None:
            with contextlib.suppress(psutil.Error):
                self.peak_cpu_percent = max(self.peak_cpu_percent, self._ps.cpu_percent(None))

    def cpu_seconds(self) -> float | None:
        if self._ps is None:
            return None
        try:
            times = self._ps.cpu_times()
        except psutil.Error:
            return None
        return float(times.user + times.system)

    def live_rps(self) -> float | None:
        """The last 'Aggregated' req/s figure Locust printed."""
        try:
            tail = self.log_path.read_bytes()[-8192:].decode("utf-8", "replace")
        except OSError:
            return None
        found = _AGGREGATED.findall(tail)
        return float(found[-1][1]) if found else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM lets Locust write its report; SIGKILL whatever is left after that."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_group(self.proc.pid, timeout_s, proc=self.proc)
        else:  # the leader is gone: whatever it left in its group goes too
            kill_group(self.proc.pid, 0.0, sig=signal.SIGKILL, proc=self.proc)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return self.proc.wait()

    @property
    def json_path(self) -> Path:
        return self.json_prefix.parent / f"{self.json_prefix.name}.json"

    def lab_report(self) -> JsonObject | None:
        """The locustfile's extra figures (open-model latency, its own CPU peaks), if any."""
        try:
            data = json.loads(lab_report_path(self.json_prefix).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def warmup_over(self) -> bool:
        try:
            return "warm-up over" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def figures(self) -> LoadFigures | None:
        """The run's figures from Locust's JSON report, the warm-up left out; None without one."""
        entries = self.report()
        if entries is None:
            return None
        return summarise(entries, self.spec.warmup_s, self.spec.duration_s, self.own_warmup)

    def report(self) -> list[JsonObject] | None:
        try:
            data = json.loads(self.json_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None

    def log_tail(self, lines: int = 3) -> str:
        return log_tail(self.log_path, lines)
