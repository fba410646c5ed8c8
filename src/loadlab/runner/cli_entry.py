"""Arguments of run / matrix / report / compare / claims, and the dispatch of run and matrix.

Kept light (argparse only) because ``loadlab --help`` builds every parser.
"""

from __future__ import annotations

import argparse

from loadlab.runner.own_load_arguments import add_app_arguments, add_load_arguments
from loadlab.scenarios import SCENARIOS


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", default="native", help="native (default), compose or swarm")
    p.add_argument("--target", default="both", help="fastapi, flask or both")
    p.add_argument("--scenario", default=None, help=", ".join(SCENARIOS))
    add_app_arguments(p)
    add_load_arguments(p)
    p.add_argument("--users", default="10")
    p.add_argument("--spawn-rate", default=None, help="users started per second (default: all)")
    p.add_argument("--duration", default="30s", help="measured time after the warm-up")
    p.add_argument("--warmup", default="5s", help="time left out of the figures")
    p.add_argument("--arrival-rate", default=None, help="open model: requests per second")
    p.add_argument("--io-ms", default=None, help="the wait of io/mixed/upstream requests")
    p.add_argument("--cpu-work", default=None, help="the work units of cpu requests")
    p.add_argument("--db-pool-size", default=None,
                   help="database connections per service process (default: by worker class)")
    p.add_argument("--cpus", default="0", help="CPU quota of the service in cores (0: none)")
    p.add_argument("--workers", default="1")
    p.add_argument("--worker-class", default=None)
    add_server_arguments(p)
    p.add_argument("--threads", default="1",
                   help="threads per worker: gthread's, or Granian's blocking threads (flask)")
    p.add_argument("--port", default=None, help="the service's port (default: a free one)")
    p.add_argument("--max-p95-ms", default=None)
    p.add_argument("--max-p99-ms", default=None)
    p.add_argument("--max-error-rate", default=None)
    p.add_argument("--min-rps", default=None)
    add_round_arguments(p)
    p.add_argument("--out", default="results/run",
                   help="results directory; one holding results is refused unless --replace")
    p.add_argument("--replace", action="store_true",
                   help="start over in an --out that holds results (they are removed)")


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    """What serves the cells: the server (its default worker class per app), Granian's
    backpressure and the interpreter."""
    p.add_argument("--server", default=None,
                   help="uvicorn, gunicorn or granian: the server's default worker class for "
                        "each app (with --worker-class, the class must be that server's)")
    p.add_argument("--backpressure", default=None, metavar="N",
                   help="Granian: requests a worker takes at once (default: Granian's)")
    p.add_argument("--python", default=None, metavar="default|ft",
                   help="the service's interpreter: ft is the free-threaded CPython 3.13t "
                        "that .ci/build-python-ft builds (native runtime only)")


def add_round_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", default=None,
                   help="rounds per cell, alternated across cells, each on a fresh server")
    p.add_argument("--until-ci", default=None, metavar="PCT",
                   help="add rounds (up to --rounds, default 10) until every rps interval "
                        "is within ±PCT%%")


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    if command == "run":
        add_run_arguments(p)
    elif command == "matrix":
        p.add_argument("file", help="the matrix file (TOML)")
        p.add_argument("--resume", action="store_true", help="skip cells already in the results")
        p.add_argument("--replace", action="store_true",
                       help="start over in an --out that holds results (they are removed)")
        p.add_argument("--out", default=None, help="results directory (default: results/NAME)")
        p.add_argument("--runtime", default="native", help="native (default), compose or swarm")
        add_server_arguments(p)
        add_round_arguments(p)
    elif command == "report":
        p.add_argument("results_dir", help="a results directory with summary.json")
        p.add_argument("--baseline", default=None,
                       help="a results directory to compare with (adds a comparison section)")
        p.add_argument("--match", default=None,
                       help="with --baseline: the fields runs are matched on (as compare)")
    elif command == "compare":
        p.add_argument("baseline", help="the baseline results directory")
        p.add_argument("current", help="the results directory to judge")
        p.add_argument("--max-regression", default="5%",
                       help="exit 1 when a figure is significantly worse by more (default 5%%)")
        p.add_argument("--match", default=None,
                       help="comma-separated fields runs are matched on (default: target, "
                            "scenario, cpus, workers, worker_class, threads, users, "
                            "arrival_rate, io_ms, cpu_work, backpressure, python)")
        p.add_argument("--out", default=None, help="where to write compare.json "
                                                   "(default: CURRENT/compare.json)")
    elif command == "claims":
        p.add_argument("--quick", action="store_true", help="short runs (about 6 minutes)")
        p.add_argument("--out", default="results/claims")
        p.add_argument("--claim", action="append", default=None, metavar="ID",
                       help="measure only this claim (its cells, its verdict); repeat for "
                            "several (default: every claim)")
        p.add_argument("--runtime", default="native", help="native (default), compose or swarm")
        add_round_arguments(p)
        p.add_argument("--until-decided", action="store_true",
                       help="add rounds of the undecided claims' cells until each is decided "
                            "or --budget is spent")
        p.add_argument("--budget", default=None, metavar="SECONDS",
                       help="wall time for the whole command with --until-decided "
                            "(default: 600 s quick, 3600 s full)")


def dispatch(command: str, args: argparse.Namespace) -> int:
    """run and matrix (``loadlab.cli`` dispatches report, compare and claims: they sit above
    or beside the runner, which imports neither). Bad input raises a
    ``loadlab.errors.UserError``: ``loadlab.cli.main`` makes it one line."""
    if command == "run":
        from loadlab.runner.commands import run_command

        return run_command(args)
    if command == "matrix":
        from loadlab.runner.commands import matrix_command

        return matrix_command(args)
    raise AssertionError(command)
