"""``loadlab claims``: run the plan in rounds, judge every claim (with ``--until-decided``,
add rounds of the undecided claims' cells within ``--budget``), write ``claims.json``,
print the table and write the report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from loadlab.claims.deciding import Measure, until_decided
from loadlab.claims.plan import FULL, QUICK, plan, runs_by_name
from loadlab.claims.registry import judge, selected
from loadlab.claims.table import print_table

if TYPE_CHECKING:
    from loadlab.runner.options import RunSpec
    from loadlab.runner.runtime_base import Runtime

# --until-decided without --budget: the whole command's wall time, quick and full.
DEFAULT_BUDGET_S = {"quick": 600.0, "full": 3600.0}


def parse_budget(text: str | None, quick: bool) -> float:
    from loadlab.runner.options import OptionError, parse_duration

    if text is None:
        return DEFAULT_BUDGET_S["quick" if quick else "full"]
    seconds = parse_duration(text, "budget")
    if seconds <= 0:
        raise OptionError(f"--budget: {text!r} must be above 0")
    return seconds


def relocated(run: dict[str, Any], sub: str) -> dict[str, Any]:
    """A round measured in ``out/sub``: its file paths made relative to ``out``."""
    moved = dict(run)
    for key in ("locust_json", "samples"):
        if isinstance(moved.get(key), str):
            moved[key] = f"{sub}/{moved[key]}"
    return moved


def measuring(out: Path, cells: Mapping[str, RunSpec], runtime: Runtime) -> Measure:
    """The real ``Measure``: one round of the named cells, run into ``out/more-N`` (a
    results directory of its own), each round's record with its paths made relative to
    ``out``. A service that will not start is one line (exit 2); ^C ends the loop."""
    from loadlab.runner.options import OptionError
    from loadlab.runner.session import Plan, StartError, run_cells
    from loadlab.runs.record import run_rounds

    def measure(names: Sequence[str], extra: int) -> dict[str, dict[str, Any]]:
        sub = f"more-{extra}"
        try:
            more = run_cells([cells[n] for n in names], out / sub, runtime,
                             Plan(write_report=False), resume=None, replace=True)
        except StartError as exc:
            raise OptionError(str(exc)) from None
        if more.interrupted:
            raise KeyboardInterrupt
        found = runs_by_name({n: cells[n] for n in names}, more.results.runs)
        return {n: relocated(run_rounds(r)[-1], sub) for n, r in found.items()}

    return measure


def claims_command(args: argparse.Namespace) -> int:
    from loadlab.fileio import atomic_write
    from loadlab.report.html import write_report
    from loadlab.runner.options import OptionError, parse_rounds
    from loadlab.runner.rounds import combine
    from loadlab.runner.runtime_base import available_cores
    from loadlab.runner.runtimes import runtime_for
    from loadlab.runner.session import Plan, StartError, run_cells
    from loadlab.runs.record import Run, run_rounds

    began = time.monotonic()
    claims = selected(getattr(args, "claim", None))
    cores = len(available_cores()) or (os.cpu_count() or 1)
    sizes = QUICK if args.quick else FULL
    deciding = bool(getattr(args, "until_decided", False))
    budget = parse_budget(getattr(args, "budget", None), args.quick)
    if getattr(args, "budget", None) is not None and not deciding:
        raise OptionError("--budget applies to --until-decided")
    cells = plan(sizes, cores, claims)
    rounds, until_ci = parse_rounds(
        args.rounds if args.rounds is not None else (
            None if args.until_ci is not None else sizes.repeats), args.until_ci)
    out = Path(args.out)
    runtime = runtime_for(args.runtime)
    for stale in sorted(out.glob("more-*")):
        # An earlier --until-decided's extra rounds (each a results directory of its own).
        if (stale / "summary.json").is_file():
            shutil.rmtree(stale, ignore_errors=True)
    try:
        # Claims start over each time (their verdicts judge errors themselves).
        outcome = run_cells(list(cells.values()), out, runtime,
                            Plan(rounds, until_ci, write_report=False), resume=None, replace=True)
    except StartError as exc:
        raise OptionError(str(exc)) from None
    runs = runs_by_name(cells, outcome.results.runs)
    interrupted = outcome.interrupted
    if deciding and not interrupted and runs:
        measured = {name: run_rounds(run) for name, run in runs.items()}
        per_round = (time.monotonic() - began) / max(sum(map(len, measured.values())), 1)

        measure = measuring(out, cells, runtime)
        print(f"--until-decided: judged after {rounds} round(s); adding rounds of the "
              f"undecided claims' cells within --budget {budget:g} s")
        try:
            decided = until_decided(measured, cores, measure, budget,
                                    spent_s=time.monotonic() - began, claims=claims,
                                    round_s={n: per_round for n in measured})
        except KeyboardInterrupt:
            interrupted = True
            verdicts = judge(runs, cores, claims)
        else:
            for name, rs in decided.rounds.items():
                if len(rs) > len(measured[name]):
                    # The first run's own fields (its samples file, ...) kept under the
                    # figures of all its rounds.
                    folded = {**runs[name], **combine([cast(Run, r) for r in rs])}
                    outcome.results.add(cast(Run, folded))
            runs = decided.runs()
            verdicts = decided.verdicts
            print(f"--until-decided: {decided.stopped} after {decided.extra_rounds} more "
                  f"round(s), {decided.spent_s:.0f} s in all")
            for note in decided.notes:
                print(f"  undecided: {note}")
    else:
        verdicts = judge(runs, cores, claims)
    atomic_write(out / "claims.json",
                 json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    print_table(verdicts)
    print(f"claims: {out / 'claims.json'}")
    print(f"report: {write_report(out)}")
    return 130 if interrupted else 0
