"""A list of cells run one after another into one results directory.

Shared by ``loadlab run`` and ``loadlab matrix``: the directory is locked for the session
(one runner per directory) and never emptied unless asked (``replace``), the results are
saved after every run, Ctrl-C (or SIGTERM) stops the load and the service and keeps what
finished, and the report is rebuilt at the end.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loadlab.errors import UserError
from loadlab.report.results import ResultsDir, ResultsError, clear_results, held_runs
from loadlab.runner.database import RunDatabase, needs_database
from loadlab.runner.execute import execute, run_id_for
from loadlab.runner.leftovers import DirectoryLock, Leftovers
from loadlab.runner.manifest import manifest
from loadlab.runner.options import Gates, RunSpec
from loadlab.runner.progress import Progress
from loadlab.runner.rounds import combine, half_width_pct, precise_enough
from loadlab.runner.runtime import ManifestNotes, Runtime, RuntimeError_, StopsBehind
from loadlab.runs.bottleneck import words
from loadlab.runs.record import BROKEN, ERRORS, OK, Run, variant_label


class StartError(UserError, RuntimeError):
    """A service that would not start; the command exits 2 with this one line."""


# Without --max-error-rate, a run with more failed requests than this is not a figure.
DEFAULT_MAX_ERROR_RATE = 0.01
# A measured window shorter than this share of the planned duration is broken.
MIN_WINDOW_SHARE = 0.5


def judge(run: Run, max_error_rate: float | None) -> Run:
    """Mark an ``ok`` run whose error rate exceeds the limit (``errors``) or whose measured
    window is much shorter than planned (``broken``): such figures describe a failure, not
    the variant (a database lost mid-run served 49.8 req/s of ~700, 9% of them failures)."""
    if run.get("status") != OK:
        return run
    requests, failures = int(run.get("requests") or 0), int(run.get("failures") or 0)
    rate = failures / requests if requests else 0.0
    if max_error_rate is not None and rate > max_error_rate:
        return {**run, "status": ERRORS, "error": (
            f"error rate {rate:.2%} above the limit {max_error_rate:.2%} "
            f"({failures:,} of {requests:,} requests failed)")}
    planned = float(run.get("duration_s") or 0)
    measured = run.get("measured_s")
    if isinstance(measured, int | float) and planned > 0 and measured < MIN_WINDOW_SHARE * planned:
        return {**run, "status": BROKEN, "error": (
            f"measured window {measured:g} s of the planned {planned:g} s")}
    return run


class Interrupted:
    """SIGINT and SIGTERM for the session: each raises KeyboardInterrupt and is remembered.

    Remembered, because an exception raised by a signal handler can land where it is lost
    (a finaliser, a library's clean-up): the session checks ``seen`` between runs and at
    the end, so a ^C always ends the runner with 130. Installed explicitly, because a
    runner started in the background by a shell inherits SIGINT *ignored*, and Python
    then leaves it ignored (seen in CI: ^C during the last run, exit 0, both runs kept).
    """

    def __init__(self) -> None:
        self.seen = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> Interrupted:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came, even if its exception was lost."""
        if self.seen:
            raise KeyboardInterrupt


def prepare(out: Path, progress: Progress, *, resume: bool | None,
            replace: bool) -> DirectoryLock:
    """Make and lock the results directory, end what a dead runner left there, and refuse
    one that holds results unless resuming or replacing them (nothing is emptied)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(out).acquire()
    except OSError as exc:
        raise ResultsError(f"--out {out}: cannot use it as a results directory: "
                           f"{exc.strerror or exc}") from None
    try:
        for ended in Leftovers(out).reap():
            progress.note(f"ended {ended} left running by an earlier runner")
        held = held_runs(out)
        if held and not (resume or replace):
            raise ResultsError(
                f"{out} already holds results ({held}); choose another --out, or "
                + ("--resume to finish them or --replace to start over"
                   if resume is not None else "--replace to start over"))
        if replace:
            clear_results(out)
    except OSError as exc:
        lock.release()
        raise ResultsError(f"--out {out}: {exc.strerror or exc}") from None
    except BaseException:
        lock.release()
        raise
    return lock


@dataclass
class Outcome:
    results: ResultsDir
    runs: list[Run]
    interrupted: bool
    report: Path | None


def describe(run: Run) -> str:
    head = variant_label(run)
    if run["status"] != OK:
        return f"{head}: {str(run['status']).upper()} - {run.get('error')}"
    lat = run["latency_ms"]
    text = (f"{head}: {run['rps']:,.1f} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
            f"p99 {lat['p99']} ms, {run['failures']} failures of {run['requests']}")
    load = run.get("load") or {}
    if load and not load.get("separated", True):
        text += f" (Locust shared cores {load.get('load_cores')} with the server)"
    if run.get("bottleneck"):
        text += f"; {words(run.get('bottleneck'))}"
    return text


MIN_ROUNDS_FOR_CI = 3  # --until-ci judges from this many rounds on (2 give a 50% interval)


def run_cells(specs: Sequence[RunSpec], out: Path, runtime: Runtime, *,
              resume: bool | None = False, replace: bool = False,
              progress: Progress | None = None, write_report: bool = True, rounds: int = 1,
              until_ci: float | None = None, max_error_rate: float | None = None) -> Outcome:
    """Run every cell ``rounds`` times, alternating (A B A B ...), each on a fresh server.

    With ``until_ci``, stops adding rounds once every cell's rps interval is within
    ±until_ci % of its median (from MIN_ROUNDS_FOR_CI rounds on), or at ``rounds``.
    ``resume`` None: the command cannot resume (the refusal does not offer it).
    ``max_error_rate``: a run above it is recorded ``errors`` (None: not judged here).
    """
    progress = progress or Progress()
    lock = prepare(out, progress, resume=resume, replace=replace)
    try:
        with Interrupted() as signals:
            return _run_locked(specs, out, runtime, signals, resume=bool(resume),
                               progress=progress, write_report=write_report, rounds=rounds,
                               until_ci=until_ci, max_error_rate=max_error_rate)
    finally:
        lock.release()


def _run_locked(specs: Sequence[RunSpec], out: Path, runtime: Runtime, signals: Interrupted,
                *, resume: bool, progress: Progress, write_report: bool, rounds: int,
                until_ci: float | None, max_error_rate: float | None) -> Outcome:
    leftovers = Leftovers(out)
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
    by_key: dict[str, list[Run]] = {s.key: [] for s in todo}
    ids = {s.key: run_id_for(s, len(results.runs) + i) for i, s in enumerate(todo)}
    interrupted = False
    database: RunDatabase | None = None
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
                label = (variant_label(spec.fields(), "progress")
                         + (f" round {round_no}" if rounds > 1 else ""))

                def tick(elapsed: float, planned: float, rps: float | None,
                         p95: float | None, phase: str, index: int = index,
                         label: str = label) -> None:
                    progress.update(index, label, elapsed, planned, rps, p95, phase)

                run_id = ids[spec.key] + (f"-r{round_no}" if rounds > 1 else "")
                signals.check()
                try:
                    # Each service finishes exiting while the next one starts.
                    run = execute(spec, runtime, out / "raw", run_id, tick=tick,
                                  leftovers=leftovers, database=database, stop_behind=True)
                except RuntimeError_ as exc:
                    raise StartError(str(exc)) from None
                # A run a ^C arrived in is not kept, even if the signal's exception was lost.
                signals.check()
                run = judge(run, max_error_rate)
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
                widest = max((float(half_width_pct(r) or 0)
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
        if database is not None:
            database.stop()
    if signals.seen and not interrupted:  # its exception was lost: the flag still counts
        interrupted = True
        progress.note(f"interrupted: kept {sum(map(len, by_key.values()))} finished round(s) "
                      f"in {out}")
    finished = [r for r in results.runs if r.get("key") in by_key and by_key[r["key"]]]
    report = None
    if write_report and results.runs:
        from loadlab.report.html import write_report as build

        try:
            report = build(out)
        except OSError as exc:
            raise ResultsError(f"cannot write the report in {out}: {exc.strerror or exc}") from None
    interrupted = interrupted or signals.seen
    return Outcome(results, finished, interrupted, report)


def gate_failures(gates: Gates, runs: Sequence[Run]) -> list[str]:
    missed: list[str] = []
    for run in runs:
        missed += gates.check(run)
    return missed
