"""Arguments of run / matrix / report / claims, and the one place their errors become exit 2.

Kept light (argparse only) because ``loadlab --help`` builds every parser.
"""

from __future__ import annotations

import argparse
import sys


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", default="native", help="native (default), compose or swarm")
    p.add_argument("--target", default="both", help="fastapi, flask or both")
    p.add_argument("--scenario", required=True,
                   help="json, io, cpu, cpu-blocking, cpu-process, mixed, upstream, echo, "
                        "request, all")
    p.add_argument("--users", default="10")
    p.add_argument("--spawn-rate", default=None, help="users started per second (default: all)")
    p.add_argument("--duration", default="30s", help="measured time after the warm-up")
    p.add_argument("--warmup", default="5s", help="time left out of the figures")
    p.add_argument("--arrival-rate", default=None, help="open model: requests per second")
    p.add_argument("--io-ms", default=None, help="the wait of io/mixed/upstream requests")
    p.add_argument("--cpu-work", default=None, help="the work units of cpu requests")
    p.add_argument("--cpus", default="0", help="CPU quota of the service in cores (0: none)")
    p.add_argument("--workers", default="1")
    p.add_argument("--worker-class", default=None)
    p.add_argument("--threads", default="1")
    p.add_argument("--port", default=None, help="the service's port (default: a free one)")
    p.add_argument("--max-p95-ms", default=None)
    p.add_argument("--max-p99-ms", default=None)
    p.add_argument("--max-error-rate", default=None)
    p.add_argument("--min-rps", default=None)
    p.add_argument("--out", default="results/run")


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    if command == "run":
        add_run_arguments(p)
    elif command == "matrix":
        p.add_argument("file", help="the matrix file (TOML)")
        p.add_argument("--resume", action="store_true", help="skip cells already in the results")
        p.add_argument("--out", default=None, help="results directory (default: results/NAME)")
        p.add_argument("--runtime", default="native", help="native (default), compose or swarm")
    elif command == "report":
        p.add_argument("results_dir", help="a results directory with summary.json")
    elif command == "claims":
        p.add_argument("--quick", action="store_true", help="short runs (about 4 minutes)")
        p.add_argument("--out", default="results/claims")
        p.add_argument("--runtime", default="native", help="native (default), compose or swarm")


def dispatch(command: str, args: argparse.Namespace) -> int:
    from loadlab.report.results import ResultsError
    from loadlab.runner.options import OptionError

    try:
        if command == "run":
            from loadlab.runner.commands import run_command

            return run_command(args)
        if command == "matrix":
            from loadlab.runner.commands import matrix_command

            return matrix_command(args)
        if command == "report":
            from loadlab.report.html import report_command

            return report_command(args.results_dir)
        if command == "claims":
            from loadlab.runner.claims import claims_command

            return claims_command(args)
    except (OptionError, ResultsError) as exc:
        print(f"loadlab {command}: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(command)
