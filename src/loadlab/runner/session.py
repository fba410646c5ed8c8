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
from loadlab.runner.execute import RunContext, execute, run_id_for
from loadlab.runner.leftovers import DirectoryLock, Leftovers
from loadlab.runner.manifest import manifest
from loadlab.runner.options import Gates, RunSpec
from loadlab.runner.progress import Progress
from loadlab.runner.rounds import combine, half_width_pct, precise_enough
from loadlab.runner.run_database import RunDatabase, needs_database
from loadlab.runner.runtime_base import Runtime, RuntimeError_
from loadlab.runs.bottleneck import words
from loadlab.runs.record import BROKEN, ERRORS, OK, Manifest, Run, variant_label
from loadlab.runs.store import ResultsDir, ResultsError, clear_results, held_runs


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


@dataclass(frozen=True)
class Plan:
    """How a session runs its cells: ``rounds`` times each (fewer with ``until_ci``: once
    every cell's rps interval is within ±until_ci % of its median, from MIN_ROUNDS_FOR_CI
    rounds on); a run above ``max_error_rate`` is recorded ``errors`` (None: not judged
    here); the HTML report written at the end or not."""

    rounds: int = 1
    until_ci: float | None = None
    max_error_rate: float | None = None
    write_report: bool = True


def run_cells(specs: Sequence[RunSpec], out: Path, runtime: Runtime, plan: Plan = Plan(),
              *, resume: bool | None = False, replace: bool = False,
              progress: Progress | None = None) -> Outcome:
    """Run every cell ``plan.rounds`` times, alternating (A B A B ...), each on a fresh
    server. ``resume`` None: the command cannot resume (the refusal does not offer it)."""
    progress = progress or Progress()
    lock = prepare(out, progress, resume=resume, replace=replace)
    try:
        with Interrupted() as signals:
            return _run_locked(specs, out, runtime, signals, plan, resume=bool(resume),
                               progress=progress)
    finally:
        lock.release()


def _run_locked(specs: Sequence[RunSpec], out: Path, runtime: Runtime, signals: Interrupted,
                plan: Plan, *, resume: bool, progress: Progress) -> Outcome:
    rounds, until_ci = plan.rounds, plan.until_ci
    placement = runtime.placement(specs[0].server_config(port=0)).describe() if specs else ""
    about: Manifest = {**manifest(runtime.name, placement), **runtime.manifest_notes()}
    results = ResultsDir(out, about, resume=resume)
    # A cell is done when it has all its rounds (or its precision); fewer start again.
    done = {r["key"] for r in results.runs if r.get("key") in results.done_keys() and (
        len(r.get("rounds") or [r]) >= rounds
        or (until_ci is not None and precise_enough(r, until_ci, MIN_ROUNDS_FOR_CI)))
    } if resume else set()
    todo = [s for s in specs if s.key not in done]
    if resume and len(todo) < len(specs):
        progress.note(f"resuming: {len(specs) - len(todo)} of {len(specs)} cells already done")
    cells = _Cells(out, runtime, results, progress, signals, Leftovers(out), plan,
                   by_key={s.key: [] for s in todo},
                   ids={s.key: run_id_for(s, len(results.runs) + i) for i, s in enumerate(todo)})
    interrupted = False
    progress.begin(len(todo) * rounds)
    try:
        if runtime.name == "native" and needs_database(todo):
            cells.database = _start_database(runtime, todo, results, progress)
        cells.run(todo)
    except KeyboardInterrupt:
        interrupted = True
        progress.end()
        cells.note_kept()
    finally:
        progress.end()
        runtime.settle()
        if cells.database is not None:
            cells.database.stop()
    if signals.seen and not interrupted:  # its exception was lost: the flag still counts
        interrupted = True
        cells.note_kept()
    by_key = cells.by_key
    finished = [r for r in results.runs if r.get("key") in by_key and by_key[r["key"]]]
    report = _report(out) if plan.write_report and results.runs else None
    interrupted = interrupted or signals.seen
    return Outcome(results, finished, interrupted, report)


def _start_database(runtime: Runtime, todo: Sequence[RunSpec], results: ResultsDir,
                    progress: Progress) -> RunDatabase:
    cores = runtime.placement(todo[0].server_config(port=0)).server_cores
    database = RunDatabase().start(cores)
    results.data["manifest"]["database"] = database.info
    progress.note(f"database: PostgreSQL {database.info.get('version', '?')} "
                  f"({database.info.get('source')})")
    return database


def _report(out: Path) -> Path:
    from loadlab.report.html import write_report as build

    try:
        return build(out)
    except OSError as exc:
        raise ResultsError(f"cannot write the report in {out}: {exc.strerror or exc}") from None


@dataclass
class _Cells:
    """The cells' rounds, run one after another into one results directory."""

    out: Path
    runtime: Runtime
    results: ResultsDir
    progress: Progress
    signals: Interrupted
    leftovers: Leftovers
    plan: Plan
    by_key: dict[str, list[Run]]  # each cell's finished rounds
    ids: dict[str, str]  # each cell's run id (rounds add -rN)
    database: RunDatabase | None = None
    index: int = 0

    def run(self, todo: Sequence[RunSpec]) -> None:
        """Round after round (A B A B ...); with until_ci, until every interval is tight."""
        until_ci, rounds = self.plan.until_ci, self.plan.rounds
        for round_no in range(1, rounds + 1):
            for spec in todo:
                self.run_one(spec, round_no)
            if until_ci is not None and round_no < rounds and all(
                precise_enough(r, until_ci, MIN_ROUNDS_FOR_CI) for r in self.mine()
            ):
                self.progress.note(f"every interval within ±{until_ci:g}% after {round_no} "
                                   "rounds")
                return
        if until_ci is not None:
            widest = max((float(half_width_pct(r) or 0) for r in self.mine()), default=0.0)
            self.progress.note(f"--until-ci {until_ci:g}%: stopped at {rounds} rounds, "
                               f"widest rps interval ±{widest:.1f}%")

    def mine(self) -> list[Run]:
        return [r for r in self.results.runs if r.get("key") in self.by_key]

    def run_one(self, spec: RunSpec, round_no: int) -> None:
        self.index += 1
        index, progress = self.index, self.progress
        label = (variant_label(spec.fields(), "progress")
                 + (f" round {round_no}" if self.plan.rounds > 1 else ""))

        def tick(elapsed: float, planned: float, rps: float | None,
                 p95: float | None, phase: str) -> None:
            progress.update(index, label, elapsed, planned, rps, p95, phase)

        run_id = self.ids[spec.key] + (f"-r{round_no}" if self.plan.rounds > 1 else "")
        self.signals.check()
        try:
            # Each service finishes exiting while the next one starts.
            run = execute(spec, self.runtime, self.out / "raw", run_id, RunContext(
                tick=tick, leftovers=self.leftovers, database=self.database, stop_behind=True))
        except RuntimeError_ as exc:
            raise StartError(str(exc)) from None
        # A run a ^C arrived in is not kept, even if the signal's exception was lost.
        self.signals.check()
        run = judge(run, self.plan.max_error_rate)
        self.by_key[spec.key].append(run)
        self.results.add(combine(self.by_key[spec.key],
                                 self.plan.until_ci if self.plan.rounds > 1 else None))
        progress.done(index, describe(run))
        for line in run.get("notes", ()):
            progress.note(f"    note: {line}")

    def note_kept(self) -> None:
        self.progress.note(f"interrupted: kept {sum(map(len, self.by_key.values()))} "
                           f"finished round(s) in {self.out}")


def gate_failures(gates: Gates, runs: Sequence[Run]) -> list[str]:
    missed: list[str] = []
    for run in runs:
        missed += gates.check(run)
    return missed
