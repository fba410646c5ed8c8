"""``loadlab claims``: run the plan in rounds, judge every claim, write ``claims.json``, print
the table and write the report."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from loadlab.claims.plan import FULL, QUICK, plan, runs_by_name
from loadlab.claims.registry import judge
from loadlab.claims.table import print_table


def claims_command(args: argparse.Namespace) -> int:
    from loadlab.fileio import atomic_write
    from loadlab.report.html import write_report
    from loadlab.runner.options import OptionError, parse_rounds
    from loadlab.runner.runtime import available_cores, runtime_for
    from loadlab.runner.session import StartError, run_cells

    cores = len(available_cores()) or (os.cpu_count() or 1)
    sizes = QUICK if args.quick else FULL
    cells = plan(sizes, cores)
    rounds, until_ci = parse_rounds(
        args.rounds if args.rounds is not None else (
            None if args.until_ci is not None else sizes.repeats), args.until_ci)
    out = Path(args.out)
    runtime = runtime_for(args.runtime)
    try:
        # Claims start over each time (their verdicts judge errors themselves).
        outcome = run_cells(list(cells.values()), out, runtime, resume=None, replace=True,
                            write_report=False, rounds=rounds, until_ci=until_ci)
    except StartError as exc:
        raise OptionError(str(exc)) from None
    verdicts = judge(runs_by_name(cells, outcome.results.runs), cores)
    atomic_write(out / "claims.json",
                 json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    print_table(verdicts)
    print(f"claims: {out / 'claims.json'}")
    print(f"report: {write_report(out)}")
    return 130 if outcome.interrupted else 0
