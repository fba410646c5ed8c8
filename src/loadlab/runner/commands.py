"""``loadlab run`` and ``loadlab matrix``: options in, cells run, exit code out.

Exit codes: 0 all good; 1 a gate missed or a run not ``ok`` (failed, too many errors, a
broken window); 2 bad input, a results directory in use or holding results, or a service
that would not start (one line, nothing left running); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadlab import requestlist, servers
from loadlab.apps.spec import AppSpec
from loadlab.contract import (
    MAX_CPU_WORK,
    MAX_DB_POOL_SIZE,
    MAX_IO_MS,
    MAX_THREADS,
    MAX_USERS,
    MAX_WORKERS,
)
from loadlab.paths import LabFilesMissing, lab_path
from loadlab.runner.matrix import load_matrix
from loadlab.runner.options import (
    Gates,
    OptionError,
    RunSpec,
    class_of_server,
    expand_targets,
    parse_cpus,
    parse_duration,
    parse_int,
    parse_python,
    parse_rate,
    parse_rounds,
    parse_server,
)
from loadlab.runner.runtimes import runtime_for
from loadlab.runner.session import (
    DEFAULT_MAX_ERROR_RATE,
    Outcome,
    Plan,
    gate_failures,
    run_cells,
)
from loadlab.runs.record import read_runs
from loadlab.serve import MAX_BACKPRESSURE, WORKER_CLASSES, ServeError
from loadlab.servers import ft_python


def _float_or_none(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise OptionError(f"--{name}: cannot read {value!r} as a number") from None
    if not number >= 0:
        raise OptionError(f"--{name}: must be 0 or more, got {value!r}")
    if name == "max-error-rate" and number > 1:
        raise OptionError(f"--{name}: a share of the requests, 0..1 (0.01 is 1%), got {value!r}")
    return number


def _backpressure_servers() -> str:
    return " or ".join(servers.SERVERS[s].title for s in servers.BACKPRESSURE_SERVERS)


def gates_from(args: argparse.Namespace) -> Gates:
    return Gates(
        max_p95_ms=_float_or_none(args.max_p95_ms, "max-p95-ms"),
        max_p99_ms=_float_or_none(args.max_p99_ms, "max-p99-ms"),
        max_error_rate=_float_or_none(args.max_error_rate, "max-error-rate"),
        min_rps=_float_or_none(args.min_rps, "min-rps"),
    )


def own_load(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """``--locustfile`` / ``--request``, checked (a file that exists, templates that parse)."""
    locustfile = getattr(args, "locustfile", None) or ""
    requests = tuple(getattr(args, "request", None) or ())
    if locustfile and requests:
        raise OptionError("--locustfile and --request: choose one")
    if locustfile:
        path = Path(locustfile)
        if not path.is_file():
            raise OptionError(f"--locustfile {locustfile}: no such file")
        if path.suffix != ".py":
            raise OptionError(f"--locustfile {locustfile}: not a .py file")
        locustfile = str(path.resolve())
    if requests:
        requestlist.parse_all(requests, Path.cwd())
    return locustfile, requests


def _classes_for(args: argparse.Namespace, targets: list[str], server: str | None,
                 threads: int, backpressure: int | None) -> dict[str, str]:
    """Each target's worker class ("" for its default), checked against --threads and
    --backpressure."""
    if args.worker_class and not any(
        args.worker_class in WORKER_CLASSES[t] for t in targets
    ):
        every = sorted({k for t in targets for k in WORKER_CLASSES[t]})
        raise OptionError(
            f"unknown worker class {args.worker_class!r} for {args.target}: choose one of "
            f"{', '.join(every)}"
        )
    # With --target both, a worker class applies to the framework it belongs to.
    classes = {t: args.worker_class if args.worker_class in WORKER_CLASSES[t] else ""
               for t in targets}
    if server is not None:
        classes = {t: class_of_server(server, t, k) for t, k in classes.items()}
    threaded = servers.threaded_classes(targets)
    if threads > 1 and not set(classes.values()) & set(threaded):
        names = " or ".join(threaded or servers.threaded_classes(servers.INTERFACES))
        where = "" if threaded else f", which {args.target} has none of"
        raise OptionError(f"--threads {threads} needs --worker-class {names}{where} (threads "
                          "mean nothing to the other worker classes)")
    if backpressure is not None and any(
            not servers.takes_backpressure(k or servers.DEFAULT_WORKER_CLASS[t])
            for t, k in classes.items()):
        raise OptionError(f"--backpressure applies to {_backpressure_servers()} only: add "
                          f"--server {servers.BACKPRESSURE_SERVERS[0]}")
    return classes


def specs_from(args: argparse.Namespace) -> list[RunSpec]:
    locustfile, requests = own_load(args)
    if args.scenario is None and not (locustfile or requests):
        raise OptionError("--scenario, --locustfile or --request: say what load to put on")
    if args.scenario is not None and (locustfile or requests):
        raise OptionError("--scenario is the lab's load; --locustfile and --request are "
                          "yours: choose one")
    app = app_from(args)
    if app is not None:
        if not (locustfile or requests):
            raise OptionError("--app: load it with --locustfile or --request (the lab's "
                              "scenarios call the lab's own routes)")
        return [app_spec_from(args, app, locustfile, requests)]
    targets = expand_targets(args.target)
    duration = parse_duration(args.duration, "duration")
    warmup = parse_duration(args.warmup, "warmup")
    spawn = parse_rate(args.spawn_rate, "spawn-rate") if args.spawn_rate else 0.0
    arrival = parse_rate(args.arrival_rate, "arrival-rate") if args.arrival_rate else None
    cpus = parse_cpus(args.cpus, "cpus")
    users = parse_int(args.users, "users", 1, MAX_USERS)
    workers = parse_int(args.workers, "workers", 1, MAX_WORKERS)
    threads = parse_int(args.threads, "threads", 1, MAX_THREADS)
    io_ms = parse_int(args.io_ms, "io-ms", 0, MAX_IO_MS) if args.io_ms is not None else None
    work = (parse_int(args.cpu_work, "cpu-work", 0, MAX_CPU_WORK)
            if args.cpu_work is not None else None)
    pool = (parse_int(args.db_pool_size, "db-pool-size", 1, MAX_DB_POOL_SIZE)
            if args.db_pool_size is not None else None)
    server = parse_server(args.server) if args.server else None
    backpressure = (parse_int(args.backpressure, "backpressure", 1, MAX_BACKPRESSURE)
                    if args.backpressure is not None else None)
    python = parse_python(args.python) if args.python is not None else "default"
    classes = _classes_for(args, targets, server, threads, backpressure)
    specs = []
    for target, klass in classes.items():
        specs.append(RunSpec(
            target=target, scenario=args.scenario or "", users=users, spawn_rate=spawn,
            duration_s=duration, warmup_s=warmup, arrival_rate=arrival, cpus=cpus,
            workers=workers, worker_class=klass,
            threads=threads if klass in servers.threaded_classes([target]) else 1,
            io_ms=io_ms, cpu_work=work, db_pool_size=pool, backpressure=backpressure,
            python=python, locustfile=locustfile, request_templates=requests,
        ))
    return specs


def app_from(args: argparse.Namespace) -> AppSpec | None:
    """``--app`` (with ``--app-dir``, ``--interface``), imported once in a throwaway
    interpreter to find its interface; None without it."""
    app = getattr(args, "app", None)
    if app is None:
        if getattr(args, "app_dir", None) or getattr(args, "interface", None):
            raise OptionError("--app-dir and --interface apply to --app only")
        return None
    from loadlab.apps.serving import app_from_args

    # On --python ft the app is imported by that interpreter: its packages must be there.
    python = python_from(args)
    if python == "ft":
        if getattr(args, "worker_class", None) == "gevent":
            raise OptionError("--worker-class gevent cannot run on --python ft: gevent (and "
                              "the cffi it needs) do not support free-threaded CPython 3.13t")
        try:
            ft_python()
        except ServeError as exc:
            raise OptionError(str(exc)) from None
    return app_from_args(None, app, args.app_dir, args.interface,
                         getattr(args, "worker_class", None), python)


def python_from(args: argparse.Namespace) -> str:
    """``--python`` where the command has it (``default`` when not given)."""
    text = getattr(args, "python", None)
    return parse_python(text) if text is not None else "default"


def backpressure_from(args: argparse.Namespace) -> int | None:
    """``--backpressure`` where the command has it (None: the server's own)."""
    text = getattr(args, "backpressure", None)
    return parse_int(text, "backpressure", 1, MAX_BACKPRESSURE) if text is not None else None


def app_spec_from(args: argparse.Namespace, app: AppSpec, locustfile: str,
                  requests: tuple[str, ...]) -> RunSpec:
    """The one cell of ``run --app``: the user's app under the load they gave."""
    threads = parse_int(args.threads, "threads", 1, MAX_THREADS)
    backpressure = backpressure_from(args)
    klass = args.worker_class or servers.classes_for(app.interface)[0]
    if backpressure is not None and not servers.takes_backpressure(klass):
        raise OptionError(f"--backpressure applies to {_backpressure_servers()} only: add "
                          "--worker-class granian")
    return RunSpec(
        target="app", scenario="", app=app, python=python_from(args),
        backpressure=backpressure,
        users=parse_int(args.users, "users", 1, MAX_USERS),
        spawn_rate=parse_rate(args.spawn_rate, "spawn-rate") if args.spawn_rate else 0.0,
        duration_s=parse_duration(args.duration, "duration"),
        warmup_s=parse_duration(args.warmup, "warmup"),
        arrival_rate=parse_rate(args.arrival_rate, "arrival-rate") if args.arrival_rate
        else None,
        cpus=parse_cpus(args.cpus, "cpus"),
        workers=parse_int(args.workers, "workers", 1, MAX_WORKERS),
        worker_class=args.worker_class or "", threads=threads,
        db_pool_size=(parse_int(args.db_pool_size, "db-pool-size", 1, MAX_DB_POOL_SIZE)
                      if args.db_pool_size is not None else None),
        locustfile=locustfile, request_templates=requests,
    )


def finish(outcome: Outcome, gates: Gates, out: Path) -> int:
    from loadlab.report.headline import sentences, with_locust_defaults

    for line in sentences(with_locust_defaults(read_runs(outcome.results.data), out)):
        print(line)
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    print(f"results: {out / 'summary.json'}")
    if outcome.interrupted:
        return 130
    runs = outcome.results.runs
    if gates.any():
        missed = gate_failures(gates, runs)
    else:
        missed = [f"{r['target']}/{r['scenario']}: run failed ({r.get('error')})"
                  for r in runs if r.get("status") != "ok"]
    for line in missed:
        kind = "failed" if "run failed" in line else "gate missed"
        print(f"{kind}: {line}", file=sys.stderr)
    return 1 if missed else 0


def error_limit(gates: Gates) -> float:
    """The error rate above which a run is recorded ``errors``: the gate, else the default."""
    return gates.max_error_rate if gates.max_error_rate is not None else DEFAULT_MAX_ERROR_RATE


def check_python(specs: list[RunSpec], runtime: str) -> None:
    """--python ft: the native runtime only (the images hold no free-threaded build), and
    the interpreter built, before anything starts."""
    if not any(s.python == "ft" for s in specs):
        return
    if runtime != "native":
        raise OptionError(f"--python ft runs natively only: the {runtime} runtime's images "
                          "hold no free-threaded interpreter (use --runtime native)")
    try:
        ft_python()
    except ServeError as exc:
        raise OptionError(str(exc)) from None


def run_command(args: argparse.Namespace) -> int:
    specs = specs_from(args)
    check_python(specs, args.runtime)
    gates = gates_from(args)
    port = parse_int(args.port, "port", 1, 65535) if args.port is not None else None
    rounds, until_ci = parse_rounds(args.rounds, args.until_ci)
    runtime = runtime_for(args.runtime, port=port)
    out = Path(args.out)
    outcome = run_cells(specs, out, runtime, Plan(rounds, until_ci, error_limit(gates)),
                        resume=None, replace=args.replace)
    return finish(outcome, gates, out)


def matrix_file(name: str) -> Path:
    """The file as given, else under the lab's root (docs/install.md), so that
    `loadlab --repo DIR matrix matrices/quick.toml` works from anywhere."""
    path = Path(name)
    if path.exists() or path.is_absolute():
        return path
    try:
        return lab_path(str(path.parent), path.name) / path.name
    except LabFilesMissing:
        return path  # load_matrix says it cannot be read, in one line


def with_server_options(cells: list[RunSpec], args: argparse.Namespace) -> list[RunSpec]:
    """The matrix's cells under ``--server``/``--backpressure``/``--python`` (each, when
    given, for every cell; cells that become one are run once)."""
    server = parse_server(args.server) if args.server else None
    backpressure = (parse_int(args.backpressure, "backpressure", 1, MAX_BACKPRESSURE)
                    if args.backpressure is not None else None)
    python = parse_python(args.python) if args.python is not None else None
    if server is None and backpressure is None and python is None:
        return cells
    if backpressure is not None and server is not None and not servers.SERVERS[server].backpressure:
        raise OptionError(f"--backpressure applies to {_backpressure_servers()} only: use "
                          f"--server {servers.BACKPRESSURE_SERVERS[0]}")
    out: dict[str, RunSpec] = {}
    for cell in cells:
        changes: dict[str, object] = {}
        if server is not None and servers.server_of(cell.worker_class).name != server:
            klass = class_of_server(server, cell.target)
            changes.update(worker_class=klass, backpressure=None)
            if klass not in servers.threaded_classes([cell.target]):
                changes["threads"] = 1
        if python is not None:
            changes["python"] = python
        if backpressure is not None:
            klass = str(changes.get("worker_class") or cell.worker_class)
            if not servers.takes_backpressure(klass):
                raise OptionError(f"--backpressure applies to {_backpressure_servers()} only, "
                                  f"and the matrix runs {cell.target} on {klass}: add "
                                  f"--server {servers.BACKPRESSURE_SERVERS[0]}")
            changes["backpressure"] = backpressure
        spec = cell.with_(**changes)
        out.setdefault(spec.key, spec)
    return list(out.values())


def matrix_command(args: argparse.Namespace) -> int:
    matrix = load_matrix(matrix_file(args.file))
    cells = with_server_options(matrix.cells, args)
    check_python(cells, args.runtime)
    out = Path(args.out or matrix.out or f"results/{matrix.name}")
    rounds, until_ci = parse_rounds(
        args.rounds if args.rounds is not None else matrix.rounds,
        args.until_ci if args.until_ci is not None else matrix.until_ci)
    if args.resume and args.replace:
        raise OptionError("--resume keeps the results, --replace starts over: choose one")
    runtime = runtime_for(args.runtime)
    outcome = run_cells(cells, out, runtime, Plan(rounds, until_ci, error_limit(matrix.gates)),
                        resume=args.resume, replace=args.replace)
    return finish(outcome, matrix.gates, out)
