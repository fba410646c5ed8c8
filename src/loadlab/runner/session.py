"""A list of cells run one after another into one results directory.

Shared by ``loadlab run`` and ``loadlab matrix``: the results are saved after every run,
Ctrl-C (or SIGTERM) stops the load and the service and keeps what finished, and the
report is rebuilt at the end.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loadlab.report.results import ResultsDir
from loadlab.runner.execute import execute, run_id_for
from loadlab.runner.leftovers import Leftovers
from loadlab.runner.manifest import manifest
from loadlab.runner.options import Gates, RunSpec
from loadlab.runner.progress import Progress
from loadlab.runner.runtime import ManifestNotes, Runtime, RuntimeError_


class StartError(RuntimeError):
    """A service that would not start; the command exits 2 with this one line."""


@dataclass
class Outcome:
    results: ResultsDir
    runs: list[dict[str, Any]]
    interrupted: bool
    report: Path | None


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def describe(run: dict[str, Any]) -> str:
    head = (f"{run['target']} {run['worker_class']} w{run['workers']} t{run['threads']} "
            f"cpus={run['cpus'] or '-'} {run['scenario']} u{run['users']}")
    if run["status"] != "ok":
        return f"{head}: FAILED - {run.get('error')}"
    lat = run["latency_ms"]
    text = (f"{head}: {run['rps']:,.1f} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
            f"p99 {lat['p99']} ms, {run['failures']} failures of {run['requests']}")
    load = run.get("load") or {}
    if load and not load.get("separated", True):
        text += f" (Locust shared cores {load.get('load_cores')} with the server)"
    return text


def run_cells(specs: Sequence[RunSpec], out: Path, runtime: Runtime, *, resume: bool = False,
              progress: Progress | None = None, write_report: bool = True) -> Outcome:
    progress = progress or Progress()
    leftovers = Leftovers(out)
    out.mkdir(parents=True, exist_ok=True)
    for ended in leftovers.reap():
        progress.note(f"ended {ended} left running by an earlier runner")
    placement = runtime.placement(specs[0].server_config(port=0)).describe() if specs else ""
    about = manifest(runtime.name, placement)
    if isinstance(runtime, ManifestNotes):
        about.update(runtime.manifest_notes())
    results = ResultsDir(out, about, resume=resume)
    done = results.done_keys() if resume else set()
    todo = [s for s in specs if s.key not in done]
    if resume and len(todo) < len(specs):
        progress.note(f"resuming: {len(specs) - len(todo)} of {len(specs)} cells already done")
    finished: list[dict[str, Any]] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    progress.begin(len(todo))
    try:
        for index, spec in enumerate(todo, start=1):
            label = (f"{spec.target}/{spec.worker_class} w{spec.workers} {spec.scenario} "
                     f"u{spec.users}")

            def tick(elapsed: float, planned: float, rps: float | None, p95: float | None,
                     phase: str, index: int = index, label: str = label) -> None:
                progress.update(index, label, elapsed, planned, rps, p95, phase)

            try:
                run = execute(spec, runtime, out / "raw", run_id_for(spec, len(results.runs)),
                              tick=tick, leftovers=leftovers)
            except RuntimeError_ as exc:
                raise StartError(str(exc)) from None
            results.add(run)
            finished.append(run)
            progress.done(index, describe(run))
            for line in run.get("notes", ()):
                progress.note(f"    note: {line}")
    except KeyboardInterrupt:
        interrupted = True
        progress.end()
        progress.note(f"interrupted: kept {len(finished)} finished run(s) in {out}")
    finally:
        progress.end()
        signal.signal(signal.SIGTERM, previous)
    report = None
    if write_report and results.runs:
        from loadlab.report.html import write_report as build

        report = build(out)
    return Outcome(results, finished, interrupted, report)


def gate_failures(gates: Gates, runs: Sequence[dict[str, Any]]) -> list[str]:
    missed: list[str] = []
    for run in runs:
        missed += gates.check(run)
    return missed
