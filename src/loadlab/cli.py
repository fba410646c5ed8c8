"""The ``loadlab`` command: parses arguments, hands a typed config to the module that acts.

Usage errors exit 2 with a one-line reason (argparse's convention), gates that fail exit 1.
Every error meant for the user is a ``loadlab.errors.UserError``, caught once in ``main``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from loadlab import __version__
from loadlab.errors import UserError
from loadlab.paths import REPO_ENV
from loadlab.serve import ServerConfig, serve
from loadlab.servers import WORKER_CLASSES


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (no usage dump), exit 2; subcommands inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of CPUs: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a positive number: {text!r}")
    return value


def _serve(args: argparse.Namespace) -> int:
    app = None
    if args.app is not None:
        from loadlab.apps.serving import app_from_args

        app = app_from_args(args.framework, args.app, args.app_dir, args.interface,
                            args.worker_class, args.python)
    elif args.framework is None:
        raise UserError("name the service: fastapi, flask, or --app MODULE:ATTR")
    elif args.app_dir is not None or args.interface is not None:
        raise UserError("--app-dir and --interface apply to --app only")
    cfg = ServerConfig(
        framework="app" if app is not None else args.framework, app=app, host=args.host,
        port=args.port, workers=args.workers,
        worker_class=args.worker_class or "", threads=args.threads, cpus=args.cpus,
        loop=args.loop, http=args.http, metrics_port=args.metrics_port, python=args.python,
        backpressure=args.backpressure,
    )
    return serve(cfg)


def _register_doctor(sub: argparse._SubParsersAction[_Parser]) -> None:
    def run(_args: argparse.Namespace) -> int:
        from loadlab.doctor import main as doctor

        return doctor()

    p = sub.add_parser("doctor", help="what this machine can do, and how to get the rest")
    p.set_defaults(func=run)


def _register_dashboards(sub: argparse._SubParsersAction[_Parser]) -> None:
    def run(args: argparse.Namespace) -> int:
        from loadlab.dashboards.cli import main as dashboards

        return dashboards(args.out, check=args.check)

    p = sub.add_parser("dashboards", help="regenerate grafana/dashboards/*.json and the "
                       "Kubernetes ConfigMaps from code")
    p.add_argument("--out", default=None, help="directory (default: grafana/dashboards)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when the files differ from the code")
    p.set_defaults(func=run)


def _connections(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..10000: {text!r}")
    return int(text)


def _register_db(sub: argparse._SubParsersAction[_Parser]) -> None:
    def run(args: argparse.Namespace) -> int:
        from loadlab.pgcluster.command import main as db

        return db(args.action, max_connections=getattr(args, "max_connections", 100))

    p = sub.add_parser("db", help="a throwaway PostgreSQL for the lab (up, down, status)")
    actions = p.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start one in the background; prints DATABASE_URL=...")
    up.add_argument("--max-connections", type=_connections, default=100)
    actions.add_parser("down", help="stop it and remove its files")
    actions.add_parser("status", help="print DATABASE_URL and its settings; exit 1 if none")
    p.set_defaults(func=run)


def _register_stack(sub: argparse._SubParsersAction[_Parser]) -> None:
    def run(args: argparse.Namespace) -> int:
        from loadlab.stack import main as stack

        return stack(args.action, args.name, args.services, args.placement)

    p = sub.add_parser("stack", help="the lab as a Docker Swarm stack (docs/swarm.md)")
    p.add_argument("action", choices=["deploy", "rm", "render"])
    p.add_argument("services", nargs="*", help="services to deploy (default: all but "
                   "the compose profiles')")
    p.add_argument("--name", default="loadlab", help="stack name (default: loadlab)")
    p.add_argument("--placement", default="auto", choices=["auto", "labels", "any"],
                   help="auto: by the loadlab.role node labels where a node carries them; "
                   "labels: demand them; any: ignore them")
    p.set_defaults(func=run)


def _guarded(command: str) -> Callable[[argparse.Namespace], int]:
    """A runner subcommand, imported only when used; bad input -> one line, exit 2."""

    def call(args: argparse.Namespace) -> int:
        return _dispatch(command, args)

    return call


def _dispatch(command: str, args: argparse.Namespace) -> int:
    """Here, not in the runner: report and compare read results, claims and size run the
    runner; the runner imports none of them."""
    if command == "report":
        if args.baseline is not None:
            from loadlab.report.compare_html import report_with_baseline

            return report_with_baseline(args.results_dir, args.baseline, args.match)
        from loadlab.report.html import report_command

        return report_command(args.results_dir)
    if command == "compare":
        from loadlab.report.compare import compare_command

        return compare_command(args)
    if command == "claims":
        from loadlab.claims.command import claims_command

        return claims_command(args)
    if command == "size":
        from loadlab.sizing.command import size_command

        return size_command(args)
    from loadlab.runner.cli_entry import dispatch

    return dispatch(command, args)


def _register_runner(sub: argparse._SubParsersAction[_Parser]) -> None:
    from loadlab.runner.cli_entry import add_arguments

    for name, help_text in (
        ("run", "load one or both services headless with Locust; results and a report"),
        ("matrix", "run a sweep described in a TOML file"),
        ("size", "search server configurations within a CPU budget and a latency target; "
                 "recommend one (size.json)"),
        ("report", "(re)build report.html from a results directory"),
        ("claims", "measure the textbook claims and print verdicts"),
        ("compare", "current / baseline per matched run with intervals; exit 1 on a "
                    "significant regression"),
    ):
        p = sub.add_parser(name, help=help_text)
        if name == "size":  # sizing runs the runner: its arguments live there, not here
            from loadlab.sizing.arguments import add_arguments as add_size_arguments

            add_size_arguments(p)
        else:
            add_arguments(name, p)
        p.set_defaults(func=_guarded(name))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loadlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"loadlab {__version__}")
    parser.add_argument("--repo", default=None, metavar="DIR",
                        help="the lab's checkout (services/, locust/, grafana/, compose file); "
                             f"default: ${REPO_ENV}, else the checkout loadlab is installed "
                             "from (never any other current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start a service (FastAPI, Flask, or your own app with "
                                     "--app) natively")
    p.add_argument("framework", choices=["fastapi", "flask"], nargs="?", default=None)
    p.add_argument("--app", default=None, metavar="MODULE:ATTR",
                   help="serve your own ASGI or WSGI app (or path/to/file.py:ATTR) instead; "
                        "see docs/your-app.md")
    p.add_argument("--app-dir", default=None, metavar="DIR",
                   help="--app: the directory its module is imported from (default: here)")
    p.add_argument("--interface", default=None, choices=["asgi", "wsgi"],
                   help="--app: force the interface instead of detecting it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--worker-class", default=None,
                   help="; ".join(f"{fw}: {' | '.join(classes)}"
                                  for fw, classes in WORKER_CLASSES.items()))
    p.add_argument("--threads", type=int, default=1,
                   help="threads per worker: gthread's, or Granian's blocking threads (flask)")
    p.add_argument("--backpressure", type=int, default=0,
                   help="granian only: requests a worker takes at once (0: its default)")
    p.add_argument("--cpus", type=_cpus, default=0.0,
                   help="CPU quota in cores, fractions allowed (0: none); see docs/serve.md")
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                   help="uvicorn only")
    p.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"],
                   help="uvicorn only")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="port of the supervisor's /metrics, outside the worker pool "
                        "(default: $LOADLAB_METRICS_PORT, 9000 in containers, else a free one)")
    p.add_argument("--python", default="default", choices=["default", "ft"],
                   help="the interpreter: this one, or free-threaded CPython 3.13t "
                        "(.ci/build-python-ft; $LOADLAB_PYTHON_FT); see docs/serve.md")
    p.set_defaults(func=_serve)
    _register_doctor(sub)
    _register_runner(sub)
    _register_dashboards(sub)
    _register_db(sub)
    _register_stack(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repo is not None:  # in the environment, so the processes it starts agree
        os.environ[REPO_ENV] = os.path.abspath(args.repo)
    try:
        return int(args.func(args))
    except UserError as exc:  # every "one line for the user" error, caught here only
        print(f"loadlab {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
