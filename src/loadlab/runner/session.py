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
from loadlab.runner.database import RunDatabase, needs_database
from loadlab.runner.execute import execute, run_id_for
from loadlab.runner.leftovers import Leftovers
from loadlab.runner.manifest import manifest
from loadlab.runner.options import Gates, RunSpec
from loadlab.runner.progress import Progress
from loadlab.runner.rounds import combine, precise_enough
from loadlab.runner.runtime import ManifestNotes, Runtime, RuntimeError_, StopsBehind


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
            f"{'cpus=' + format(run['cpus'], 'g') if run['cpus'] else 'no CPU limit'} "
            f"{run['scenario']} u{run['users']}")
    if run["status"] != "ok":
        return f"{head}: FAILED - {run.get('error')}"
    lat = run["latency_ms"]
    text = (f"{head}: {run['rps']:,.1f} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
            f"p99 {lat['p99']} ms, {run['failures']} failures of {run['requests']}")
    load = run.get("load") or {}
    if load and not load.get("separated", True):
        text += f" (Locust shared cores {load.get('load_cores')} with the server)"
    return text


MIN_ROUNDS_FOR_CI = 3  # --until-ci judges from this many rounds on (2 give a 50% interval)


def run_cells(specs: Sequence[RunSpec], out: Path, runtime: Runtime, *, resume: bool = False,
              progress: Progress | None = None, write_report: bool = True, rounds: int = 1,
              until_ci: float | None = None) -> Outcome:
    """Run every cell ``rounds`` times, alternating (A B A B ...), each on a fresh server.

    With ``until_ci``, stops adding rounds once every cell's rps interval is within
    ±until_ci % of its median (from MIN_ROUNDS_FOR_CI rounds on), or at ``rounds``.
    """
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
    # A cell is done when it has all its rounds (or its precision); fewer start again.
    done = {r["key"] for r in results.runs if r.get("key") in results.done_keys() and (
        len(r.get("rounds") or [r]) >= rounds
        or (until_ci is not None and precise_enough(r, until_ci, MIN_ROUNDS_FOR_CI)))
    } if resume else set()
    todo = [s for s in specs if s.key not in done]
    if resume and len(todo) < len(specs):
        progress.note(f"resuming: {len(specs) - len(todo)} of {len(specs)} cells already done")
    by_key: dict[str, list[dict[str, Any]]] = {s.key: [] for s in todo}
    ids = {s.key: run_id_for(s, len(results.runs) + i) for i, s in enumerate(todo)}
    interrupted = False
    database: RunDatabase | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    progress.begin(len(todo) * rounds)
    index = 0
    try:
        if runtime.name == "native" and needs_database(todo):
            cores = runtime.placement(todo[0].server_config(port=0)).server_cores
            database = RunDatabase().start(cores)
            results.data["manifest"]["database"] = database.info
            progress.note(f"database: PostgreSQL {database.info.get('version', '?')} "
                          f"({database.info.get('source')})")
        for round_no in range(1, rounds + 1):
            for spec in todo:
                index += 1
                label = (f"{spec.target}/{spec.worker_class} w{spec.workers} {spec.scenario} "
                         f"u{spec.users}" + (f" round {round_no}" if rounds > 1 else ""))

                def tick(elapsed: float, planned: float, rps: float | None,
                         p95: float | None, phase: str, index: int = index,
                         label: str = label) -> None:
                    progress.update(index, label, elapsed, planned, rps, p95, phase)

                run_id = ids[spec.key] + (f"-r{round_no}" if rounds > 1 else "")
                try:
                    # Each service finishes exiting while the next one starts.
                    run = execute(spec, runtime, out / "raw", run_id, tick=tick,
                                  leftovers=leftovers, database=database, stop_behind=True)
                except RuntimeError_ as exc:
                    raise StartError(str(exc)) from None
                by_key[spec.key].append(run)
                results.add(combine(by_key[spec.key], until_ci if rounds > 1 else None))
                progress.done(index, describe(run))
                for line in run.get("notes", ()):
                    progress.note(f"    note: {line}")
            if until_ci is not None and round_no < rounds and all(
                precise_enough(r, until_ci, MIN_ROUNDS_FOR_CI)
                for r in results.runs if r.get("key") in by_key
            ):
                progress.note(f"every interval within ±{until_ci:g}% after {round_no} rounds")
                break
        else:
            if until_ci is not None:
                widest = max((float((r.get("precision") or {}).get("half_width_pct") or 0)
                              for r in results.runs if r.get("key") in by_key), default=0.0)
                progress.note(f"--until-ci {until_ci:g}%: stopped at {rounds} rounds, widest "
                              f"rps interval ±{widest:.1f}%")
    except KeyboardInterrupt:
        interrupted = True
        progress.end()
        progress.note(f"interrupted: kept {sum(map(len, by_key.values()))} finished round(s) "
                      f"in {out}")
    finally:
        progress.end()
        if isinstance(runtime, StopsBehind):
            runtime.settle()
        signal.signal(signal.SIGTERM, previous)
        if database is not None:
            database.stop()
    finished = [r for r in results.runs if r.get("key") in by_key and by_key[r["key"]]]
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
