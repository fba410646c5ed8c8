"""Run the lab's locustfile as real Locust subprocesses (never imported: gevent patching)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadlab.launch import free_port
from support import polling

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locust" / "locustfile.py"
SHAPES = ROOT / "locust" / "shapes.py"
LOCUST = str(Path(sys.executable).with_name("locust"))


@dataclass
class Run:
    returncode: int
    output: str
    stats: list[dict[str, Any]]
    report: dict[str, Any] | None
    # Locust's failures table (method, name, error, occurrences): the --json-file stats
    # count failures but do not say what they were.
    errors: list[dict[str, str]] = field(default_factory=list)

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {entry["name"]: entry for entry in self.stats}

    @property
    def requests(self) -> int:
        return sum(int(e["num_requests"]) for e in self.stats)

    @property
    def failures(self) -> int:
        return sum(int(e["num_failures"]) for e in self.stats)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _read_failures(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as rows:
        return list(csv.DictReader(rows))


@dataclass
class Locust:
    """One Locust process in its own process group; ``finish`` collects its results."""

    args: list[str]
    locustfile: str = str(LOCUSTFILE)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="loadlab-lo-")))
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    @property
    def json_prefix(self) -> Path:
        return self.workdir / "stats"

    @property
    def report_path(self) -> Path:
        return self.workdir / "report.json"

    @property
    def csv_prefix(self) -> Path:
        return self.workdir / "csv"

    def command(self) -> list[str]:
        return [LOCUST, "-f", self.locustfile, *self.args]

    def start(self) -> Locust:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=self.workdir, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        return self

    def finish(self, timeout_s: float = 60) -> Run:
        assert self.proc is not None
        try:
            output, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            output, _ = self.proc.communicate()
            tail = output[-3000:]
            raise AssertionError(f"locust did not finish in {timeout_s}s:\n{tail}") from None
        stats = _read_json(self.json_prefix.with_suffix(".json")) or []
        report = _read_json(self.report_path)
        errors = _read_failures(self.csv_prefix.with_name(f"{self.csv_prefix.name}_failures.csv"))
        shutil.rmtree(self.workdir, ignore_errors=True)
        return Run(self.proc.returncode, output, stats, report, errors)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def headless(host: str, *extra: str, users: int = 4, run_time: str = "3s") -> Locust:
    """A headless single-process run writing stats JSON and the lab's report."""
    lo = Locust([])
    lo.args = [
        "--headless", "--host", host, "-u", str(users), "-r", str(max(users, 1) * 10),
        "-t", run_time, "--only-summary", "--json-file", str(lo.json_prefix),
        "--loadlab-report", str(lo.report_path), "--csv", str(lo.csv_prefix), *extra,
    ]
    return lo


def run_headless(host: str, *extra: str, users: int = 4, run_time: str = "3s",
                 timeout_s: float = 60) -> Run:
    return headless(host, *extra, users=users, run_time=run_time).start().finish(timeout_s)


def get(url: str, timeout_s: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return str(reply.read().decode())


def wait_for(predicate: Any, timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    """Polled, a connection refused or reset (Locust still starting) asked again."""
    return polling.wait_for(predicate, timeout_s, what, every_s, retry=(OSError,))


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text -> {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def exporter_totals(text: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """{(name, method): (requests, failures, histogram count)} from the exporter, summed
    over its targets."""
    samples = metrics(text)
    out: dict[tuple[str, str], list[int]] = {}
    for (sample, labels), value in samples.items():
        lab = dict(labels)
        if "name" not in lab:
            continue
        key = (lab["name"], lab["method"])
        row = out.setdefault(key, [0, 0, 0])
        if sample == "locust_requests_total":
            row[0] += int(value)
        elif sample == "locust_failures_total":
            row[1] += int(value)
        elif sample == "locust_response_time_seconds_count":
            row[2] += int(value)
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def stats_totals(stats: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {(e["name"], e["method"]): (e["num_requests"], e["num_failures"], e["num_requests"])
            for e in stats}


def aggregated_requests(web: str) -> int:
    stats = json.loads(get(f"{web}/stats/requests"))
    return int(next(s["num_requests"] for s in stats["stats"] if s["name"] == "Aggregated"))


def settled_metrics(web: str, quiet_s: float = 3.5) -> str:
    """Wait for the swarm to stop, then until /metrics agrees with Locust's statistics and
    has not changed for ``quiet_s`` (workers report every 3 s, so the last one is in)."""
    wait_for(lambda: json.loads(get(f"{web}/stats/requests"))["state"] == "stopped",
             60, "the swarm to stop")
    seen: dict[str, float] = {}

    def settled() -> str | None:
        text = get(f"{web}/metrics")
        total = sum(v[0] for v in exporter_totals(text).values())
        if total == 0 or total != aggregated_requests(web):
            return None
        key = str(sorted(exporter_totals(text).items()))
        first = seen.setdefault(key, time.monotonic())
        return text if time.monotonic() - first >= quiet_s else None

    return str(wait_for(settled, 30, "/metrics to settle on Locust's statistics", every_s=0.5))


def stop_and_collect(master: Locust, *workers: Locust) -> Run:
    master.terminate()  # SIGTERM: Locust shuts down and writes --json-file
    run = master.finish(timeout_s=60)
    for worker in workers:
        worker.finish(timeout_s=30)
    return run


__all__ = ["Locust", "Run", "aggregated_requests", "exporter_totals", "free_port", "get",
           "headless", "metrics", "run_headless", "settled_metrics", "stats_totals",
           "stop_and_collect", "wait_for"]
