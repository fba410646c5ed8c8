"""A results directory: summary.json (atomic), runs.csv, and each run's raw Locust JSON.

summary.json is rewritten through a temporary file and ``os.replace`` after every run, so a
reader (or a runner killed at any moment) only ever sees a complete file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, cast

from loadlab import __version__
from loadlab.errors import UserError
from loadlab.fileio import atomic_write
from loadlab.runs.record import Manifest, Run, ServerFigures, Summary

FORMAT = "loadlab-results/1"
SUMMARY = "summary.json"
CSV_FIELDS = (
    "run_id", "status", "target", "framework", "server", "scenario", "cpus", "workers",
    "worker_class", "threads", "users", "arrival_rate", "duration_s", "requests", "failures",
    "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "cpu_seconds", "throttled_seconds",
    "throttled_share", "memory_bytes", "load_peak_cpu_percent", "error",
)


class ResultsError(UserError, ValueError):
    """A results directory that cannot be used; one line for the user."""


def held_runs(directory: Path) -> str | None:
    """What the directory holds that a new session would replace, in words; None when it
    holds no results (no summary.json, or one with no runs)."""
    path = directory / SUMMARY
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"an unreadable {SUMMARY}"
    runs = data.get("runs") if isinstance(data, dict) else None
    if isinstance(runs, list):
        return f"{len(runs)} run(s) in {SUMMARY}" if runs else None
    return f"a {SUMMARY} that is not a loadlab summary"


# What a session writes in a results directory (``--replace`` removes these, nothing else).
WRITTEN = (SUMMARY, "runs.csv", "report.html", "compare.json", "compare.html", "claims.json")


def clear_results(directory: Path) -> None:
    """Remove the results a session wrote (summary, CSV, report and the raw/ files), and
    nothing else the directory holds."""
    for name in WRITTEN:
        (directory / name).unlink(missing_ok=True)
    raw = directory / "raw"
    if raw.is_dir() and not raw.is_symlink():
        for entry in raw.iterdir():
            if entry.is_file() or entry.is_symlink():
                entry.unlink(missing_ok=True)


def load_summary(directory: Path) -> Summary:
    path = directory / SUMMARY
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ResultsError(f"{path} is not a loadlab summary (no 'runs' list)")
    if not isinstance(data.get("manifest", {}), dict):
        raise ResultsError(f"{path} is not a loadlab summary ('manifest' is not a table)")
    for n, run in enumerate(data["runs"], start=1):
        problem = run_problem(run)
        if problem is not None:
            raise ResultsError(f"{path}: run {n} {problem}")
    return cast(Summary, data)


# The fields every run the lab has written carries, and their types: what the readers
# (report, compare, headline) rely on without checking again.
_TEXT_FIELDS = ("target", "scenario", "status", "worker_class")
_WHOLE_FIELDS = ("workers", "threads", "users")
_NUMBER_FIELDS = ("rps", "cpus")
_OPTIONAL_NUMBERS = ("io_ms", "cpu_work", "arrival_rate", "requests", "failures", "duration_s")
_OPTIONAL_TABLES = ("latency_ms", "server", "load", "machine")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_problem(run: Any) -> str | None:
    """Why a run record cannot be read (one phrase), or None when it can."""
    if not isinstance(run, dict):
        return f"is not a table: {str(run)[:40]!r}"
    for key in _TEXT_FIELDS:
        if not isinstance(run.get(key), str):
            return f"has no text {key!r}"
    for key in _WHOLE_FIELDS:
        if not isinstance(run.get(key), int) or isinstance(run.get(key), bool):
            return f"has no whole number {key!r}"
    for key in _NUMBER_FIELDS:
        if not _number(run.get(key)):
            return f"has no number {key!r}"
    for key in _OPTIONAL_NUMBERS:
        if run.get(key) is not None and not _number(run[key]):
            return f"has a {key!r} that is not a number: {str(run[key])[:40]!r}"
    for key in _OPTIONAL_TABLES:
        if run.get(key) is not None and not isinstance(run[key], dict):
            return f"has a {key!r} that is not a table"
    return None


def csv_row(run: Run) -> dict[str, Any]:
    lat = run.get("latency_ms") or {}
    # The results contract (docs/design.md) names both the server software and the server
    # figures ``server``: the figures are the dict, and it carries the software as ``name``.
    found = run.get("server")
    server: ServerFigures = found if isinstance(found, dict) else {}
    flat = {k: run.get(k) for k in CSV_FIELDS}
    flat.update(
        p50_ms=lat.get("p50"), p95_ms=lat.get("p95"), p99_ms=lat.get("p99"),
        max_ms=lat.get("max"), cpu_seconds=server.get("cpu_seconds"),
        throttled_seconds=server.get("throttled_seconds"),
        throttled_share=server.get("throttled_share"), memory_bytes=server.get("memory_bytes"),
        load_peak_cpu_percent=(run.get("load") or {}).get("peak_cpu_percent"),
        server=server.get("name"),
    )
    return flat


class ResultsDir:
    """summary.json with a manifest and a list of runs, rewritten after every run."""

    def __init__(self, directory: Path, manifest: Manifest, resume: bool = False) -> None:
        self.directory = directory
        self.path = directory / SUMMARY
        if resume and self.path.exists():
            data = load_summary(directory)
            found = (data.get("format"), data.get("loadlab_version"))
            if found != (FORMAT, __version__):
                raise ResultsError(
                    f"cannot resume {directory}: written by {found[0]} / loadlab {found[1]}, "
                    f"this is {FORMAT} / loadlab {__version__}; use a new --out directory"
                )
            self.data = data
            history = list(data["manifest"].get("command_lines", []))
            self.data["manifest"].update(manifest)
            self.data["manifest"]["command_lines"] = [*history, manifest.get("command_line")]
        else:
            self.data = {
                "format": FORMAT, "loadlab_version": __version__,
                "manifest": {**manifest, "command_lines": [manifest.get("command_line")]},
                "runs": [],
            }
        self.save()

    @property
    def runs(self) -> list[Run]:
        runs: list[Run] = self.data["runs"]
        return runs

    def done_keys(self) -> set[str]:
        """Cells that finished (failed runs are tried again on resume)."""
        return {r["key"] for r in self.runs if r.get("status") == "ok"}

    def add(self, run: Run) -> None:
        self.data["runs"] = [r for r in self.runs if r.get("key") != run.get("key")] + [run]
        peaks = [(r.get("load") or {}).get("peak_cpu_percent") or 0.0 for r in self.runs]
        self.data["manifest"]["load_generator_peak_cpu_percent"] = max(peaks, default=0.0)
        limits = sorted({float(r.get("cpus") or 0.0) for r in self.runs})
        self.data["manifest"]["limits_applied"] = {
            "cpus": limits,
            "cpu_limit_seen": sorted({
                float(limit) for r in self.runs
                if isinstance(r.get("server"), dict)
                and (limit := r["server"].get("cpu_limit")) is not None
            }),
        }
        self.save()

    def save(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for run in self.runs:
            writer.writerow(csv_row(run))
        try:
            atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
            atomic_write(self.directory / "runs.csv", buffer.getvalue())
        except OSError as exc:
            raise ResultsError(f"cannot write the results in {self.directory}: "
                               f"{exc.strerror or exc}") from None
