"""``loadlab serve``: ServerConfig -> the Uvicorn or Gunicorn process tree.

The one way a service starts, natively and in containers, so every variant runs the same
code with the same settings. The server runs as a child in serve's process group, so that
``serve`` can forward signals and remove the cgroup it made when the server exits.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Literal

from loadlab import cgroup, cpulimit, servers
from loadlab.apps.spec import AppSpec
from loadlab.contract import MAX_THREADS, MAX_WORKERS
from loadlab.metrics.collectors import ServerLabels
from loadlab.metrics.multiprocess import is_alive
from loadlab.metrics.side import CONTAINER_PORT, PORT_ENV, URL_ENV, SideMetrics
from loadlab.paths import services_dir
from loadlab.procs import set_death_signal
from loadlab.servers import LISTEN_BACKLOG, ft_python, recycling
from loadlab.servers import ServeError as ServeError

Framework = Literal["fastapi", "flask", "app"]  # "app": a user's app (--app)

# Derived from the server registry (servers.py), kept here for their importers.
WORKER_CLASSES = servers.WORKER_CLASSES
DEFAULT_WORKER_CLASS = servers.DEFAULT_WORKER_CLASS
APP_MODULE = servers.APP_MODULE
LOOPS = ("auto", "asyncio", "uvloop")
HTTPS = ("auto", "h11", "httptools")
MAX_BACKPRESSURE = 100_000
# The interpreters a service can run on: this one, or the free-threaded CPython 3.13t that
# .ci/build-python-ft builds (servers.ft_python).
PYTHONS = ("default", "ft")
# After a stop signal: the servers' own graceful stop (10 s) and a little more; then serve
# kills the tree and removes its cgroup itself (ServiceProcess.stop waits longer than this).
STOP_GRACE_S = 11.0


@dataclass(frozen=True)
class ServerConfig:
    framework: Framework
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    worker_class: str = ""
    threads: int = 1
    cpus: float = 0.0  # 0: no limit
    loop: str = "auto"
    http: str = "auto"
    # Granian: requests a worker takes at once before the rest wait in the backlog; 0: its
    # default.
    backpressure: int = 0
    # The supervisor's metrics port; None: $LOADLAB_METRICS_PORT, else 9000 in the lab's
    # containers, else a free port (0).
    metrics_port: int | None = None
    python: str = "default"  # one of PYTHONS
    # framework "app": the user's app (loadlab.apps.AppSpec: --app, --app-dir, --interface
    # as detected by the probe or forced).
    app: AppSpec | None = None

    def __post_init__(self) -> None:
        if self.framework == "app":
            if self.app is None or self.app.interface not in ("asgi", "wsgi"):
                raise ServeError("an app needs --app MODULE:ATTR and its interface")
            allowed = servers.classes_for(self.app.interface)
            fits = f"{self.app.target} ({self.app.interface.upper()})"
        elif self.app is not None:
            raise ServeError(f"--app serves your app: leave out {self.framework!r}")
        elif self.framework not in WORKER_CLASSES:
            raise ServeError(f"unknown framework {self.framework!r}: choose fastapi or flask")
        else:
            allowed, fits = WORKER_CLASSES[self.framework], self.framework
        if not self.worker_class:
            object.__setattr__(self, "worker_class", allowed[0])
        if self.worker_class not in allowed:
            raise ServeError(
                f"--worker-class {self.worker_class!r} does not fit {fits}: "
                f"choose one of {', '.join(allowed)}"
            )
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ServeError(f"--workers must be 1-{MAX_WORKERS}, got {self.workers}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ServeError(f"--threads must be 1-{MAX_THREADS}, got {self.threads}")
        threaded = [k for k in allowed if self.app is not None and self.app.interface in
                    servers.CLASSES[k][1].threaded] if self.framework == "app" else \
            servers.threaded_classes([self.framework])
        if self.threads > 1 and self.worker_class not in threaded:
            raise ServeError(f"--threads > 1 needs --worker-class {' or '.join(threaded)} "
                             f"for {fits}" if threaded else
                             f"--threads > 1 does not apply to {fits}")
        if self.backpressure and not servers.takes_backpressure(self.worker_class):
            raise ServeError("--backpressure applies to --worker-class granian only")
        if not 0 <= self.backpressure <= MAX_BACKPRESSURE:
            raise ServeError(f"--backpressure must be 0 (the server's default) or "
                             f"1-{MAX_BACKPRESSURE}, got {self.backpressure}")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port must be 0-65535, got {self.port}")
        if self.metrics_port is not None:
            if not 0 <= self.metrics_port <= 65535:
                raise ServeError(f"--metrics-port must be 0-65535, got {self.metrics_port}")
            if self.metrics_port == self.port != 0:
                raise ServeError(f"--metrics-port {self.metrics_port} is the service's own "
                                 "--port: choose another (or 0 for a free one)")
        cores = os.cpu_count() or 1
        if not math.isfinite(self.cpus) or self.cpus < 0 or 0 < self.cpus < cpulimit.MIN_CPUS \
                or self.cpus > cores:
            raise ServeError(f"--cpus must be 0 (no limit) or {cpulimit.MIN_CPUS:g}-{cores} "
                             f"(cores here), got {self.cpus:g}")
        if self.loop not in LOOPS or self.http not in HTTPS:
            raise ServeError(f"--loop must be one of {', '.join(LOOPS)} and --http one of "
                             f"{', '.join(HTTPS)}")
        if self.python not in PYTHONS:
            raise ServeError(f"--python must be one of {', '.join(PYTHONS)}, got {self.python!r}")
        if self.python == "ft" and self.worker_class == "gevent":
            raise ServeError("--worker-class gevent cannot run on --python ft: gevent (and the "
                             "cffi it needs) do not support free-threaded CPython 3.13t")
        if self.server != "uvicorn" and (self.loop != "auto" or self.http != "auto"):
            raise ServeError("--loop and --http apply to --worker-class uvicorn only "
                             "(Gunicorn's uvicorn-worker picks uvloop and httptools itself)")

    @property
    def server(self) -> str:
        return servers.server_of(self.worker_class).name

    @property
    def multiprocess(self) -> bool:
        """More than one process serves. Under ``loadlab serve`` the metrics always go
        through a multiprocess directory: the supervisor's side port reads it."""
        return servers.server_of(self.worker_class).multiprocess(self)


def serve_argv(cfg: ServerConfig) -> list[str]:
    """The command line of ``loadlab serve`` for `cfg` (launch starts it; serve runs itself
    again under systemd-run)."""
    what = ["--app", cfg.app.target, "--app-dir", cfg.app.app_dir, "--interface",
            cfg.app.interface] if cfg.app is not None else [cfg.framework]
    argv = [
        sys.executable, "-m", "loadlab", "serve", *what, "--host", cfg.host,
        "--port", str(cfg.port), "--workers", str(cfg.workers),
        "--worker-class", cfg.worker_class, "--threads", str(cfg.threads),
        "--loop", cfg.loop, "--http", cfg.http,
    ]
    if cfg.cpus:
        argv += ["--cpus", str(cfg.cpus)]
    if cfg.metrics_port is not None:
        argv += ["--metrics-port", str(cfg.metrics_port)]
    if cfg.python != "default":
        argv += ["--python", cfg.python]
    if cfg.backpressure:
        argv += ["--backpressure", str(cfg.backpressure)]
    return argv


def metrics_port(cfg: ServerConfig, environ: dict[str, str] | None = None) -> int:
    """The side port: --metrics-port, else $LOADLAB_METRICS_PORT, else 9000 in the lab's
    containers (LOADLAB_IN_CONTAINER=1), else 0 (a free port, printed at start)."""
    if cfg.metrics_port is not None:
        return cfg.metrics_port
    env = os.environ if environ is None else environ
    raw = env.get(PORT_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) > 65535:
            raise ServeError(f"{PORT_ENV} must be a port number 0-65535, got {raw!r}")
        port = int(raw)
        if port == cfg.port != 0:
            raise ServeError(f"{PORT_ENV}={port} is the service's own --port: choose another")
        return port
    in_container = env.get(cgroup.CONTAINER_ENV, "").strip().lower() in ("1", "true", "yes")
    return CONTAINER_PORT if in_container and cfg.port != CONTAINER_PORT else 0


def build_command(cfg: ServerConfig) -> list[str]:
    """The server's command line, as its registry entry builds it (servers.py)."""
    max_requests, jitter = recycling()
    if cfg.app is not None:
        launch = servers.Launch(python=sys.executable, app_dir=cfg.app.app_dir,
                                backlog=LISTEN_BACKLOG, max_requests=max_requests,
                                max_requests_jitter=jitter, module="loadlab.apps.entry",
                                interface="asgi" if cfg.app.interface == "asgi" else "wsgi")
        return servers.server_of(cfg.worker_class).command(cfg, launch)
    launch = servers.Launch(python=sys.executable, app_dir=str(services_dir() / cfg.framework),
                            backlog=LISTEN_BACKLOG, max_requests=max_requests,
                            max_requests_jitter=jitter)
    return servers.server_of(cfg.worker_class).command(cfg, launch)


def on_python(cfg: ServerConfig, command: list[str], env: dict[str, str]) -> list[str]:
    """`command` run by the interpreter cfg.python names. On ft, loadlab run from a checkout
    is imported from it (on PYTHONPATH, ahead of the venv's own copy): both run the same
    code. An installed loadlab's directory is not added: its neighbours are built for
    this interpreter, not 3.13t."""
    if cfg.python == "default":
        return command
    source = Path(__file__).resolve().parent.parent
    if source.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(source)) if p)
    return [str(ft_python()), *command[1:]]


def build_env(cfg: ServerConfig, metrics_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    env.update(
        LOADLAB_LISTEN_BACKLOG=str(LISTEN_BACKLOG),
        LOADLAB_SERVER=cfg.server,
        LOADLAB_WORKER_CLASS=cfg.worker_class,
        LOADLAB_WORKERS=str(cfg.workers),
        LOADLAB_THREADS=str(cfg.threads),
        LOADLAB_BIND=f"{host}:{cfg.port}",
        LOADLAB_ROOT_PID=str(os.getpid()),
        PYTHONPATH=os.pathsep.join(
            p for p in (cfg.app.app_dir if cfg.app is not None else
                        str(services_dir() / cfg.framework), env.get("PYTHONPATH")) if p
        ),
    )
    if cfg.app is not None:
        env.update(cfg.app.env())
    env.setdefault("FORWARDED_ALLOW_IPS", "")  # trust no X-Forwarded-For unless a proxy is named
    if cfg.server == "gunicorn":
        env["LOADLAB_GUNICORN_WORKER_CLASS"] = servers.native_name(cfg.worker_class)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    else:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The side port is the supervisor's: serve sets the URL once it is bound.
    env.pop(URL_ENV, None)
    env.pop(PORT_ENV, None)
    return env


def fresh_metrics_dir() -> Path:
    """A new, empty multiprocess directory that serve made and alone deletes.

    Inside $PROMETHEUS_MULTIPROC_DIR when it is set (a subdirectory: whatever else the
    directory holds is never touched), else in the temporary directory.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    root = Path(configured) if configured else Path(tempfile.gettempdir())
    try:
        if configured:
            root.mkdir(parents=True, exist_ok=True)
        sweep_stale_metrics_dirs(root)
        return Path(tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-", dir=root))
    except OSError as exc:
        where = f"PROMETHEUS_MULTIPROC_DIR={configured}" if configured else str(root)
        reason = exc.strerror or type(exc).__name__
        raise ServeError(f"{where} cannot hold the metrics directory: {reason}") from None


_METRICS_PREFIX = "loadlab-metrics-"


def sweep_stale_metrics_dirs(root: Path | None = None) -> None:
    """Remove directories left by a serve that was SIGKILLed (its pid is in the name)."""
    for path in Path(root or tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*"):
        owner = path.name[len(_METRICS_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not is_alive(int(owner)) and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def start_side_metrics(cfg: ServerConfig, port: int, metrics_dir: Path,
                       env: dict[str, str]) -> SideMetrics:
    """Bind the supervisor's metrics port (one line if it cannot be bound)."""
    labels = ServerLabels(framework=cfg.framework, server=cfg.server,
                          worker_class=cfg.worker_class, workers=cfg.workers,
                          threads=cfg.threads)
    try:
        return SideMetrics(cfg.host, port, metrics_dir, labels, LISTEN_BACKLOG, env)
    except OSError as exc:
        reason = "is already in use" if exc.errno == 98 else \
            f"cannot be bound: {exc.strerror or exc}"
        raise ServeError(f"metrics port {cfg.host}:{port} {reason}") from None


def check_port(host: str, port: int) -> None:
    """Fail before starting anything when the address cannot be bound."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(f"--host {host!r} does not resolve: {exc}") from None
    with socket.socket(family, kind, proto) as sock:
        # As the servers do: reuse lingering TIME_WAIT ports, fail on a listening one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            reason = "is already in use" if exc.errno == 98 else f"cannot be bound: {exc.strerror}"
            raise ServeError(f"{host}:{port} {reason}") from None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def worker_warnings(cfg: ServerConfig, limit: cpulimit.CpuLimit,
                    inherited_limit: float, cores: int) -> list[str]:
    """The container ``cpu_count()`` trap: more workers than the CPU they may use."""
    warnings = []
    if cfg.cpus and inherited_limit and cfg.cpus > inherited_limit:
        warnings.append(f"--cpus {cfg.cpus:g} is above the {inherited_limit:g}-CPU quota this "
                        f"process already runs under; the lower one applies")
    if limit.cores:
        cap, what = len(limit.cores), f"{len(limit.cores)} pinned core(s)"
    elif cfg.cpus:
        cap, what = math.ceil(cfg.cpus), f"a {cfg.cpus:g}-CPU limit"
    else:
        cap = min(cores, math.ceil(inherited_limit) if inherited_limit else cores)
        what = f"{cap} usable core(s) (cgroup quota {inherited_limit:g}, affinity {cores})"
        if cap >= (os.cpu_count() or 1):
            return warnings  # no limit at all: workers beyond the cores may be I/O-bound
    if cfg.workers > cap:
        warnings.append(f"{cfg.workers} workers on {what}: os.cpu_count() says "
                        f"{os.cpu_count()}, but workers beyond {cap} only share the same CPU")
    return warnings


def _end_with_parent() -> None:
    """Linux: SIGTERM the server when serve dies, even by SIGKILL (no orphaned servers)."""
    set_death_signal(signal.SIGTERM)


def _in_child(limit: cpulimit.CpuLimit) -> None:
    """Between fork and exec of the server: tie it to serve, join the CPU limit."""
    _end_with_parent()
    limit.join()


def _wait_for_server(proc: subprocess.Popen[bytes], received: list[int], server: str
                     ) -> int:
    """The server's exit code; once a stop signal came, at most ``STOP_GRACE_S`` more
    (then the caller's ``finally`` kills the tree), so that serve always cleans up before
    whoever stopped it gives up and SIGKILLs it (a cgroup left behind otherwise)."""
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if received:
            try:
                return proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                print(f"loadlab serve: warning: {server} did not stop within "
                      f"{STOP_GRACE_S:g} s: killed", file=sys.stderr, flush=True)
                return 128 + received[0]


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def check_database_url() -> None:
    """A malformed DATABASE_URL stops the service before it starts, in one line."""
    from loadlab.service_db import check_url  # imports the driver: never in a Gunicorn master

    try:
        check_url(os.environ.get("DATABASE_URL", ""))
    except ValueError as exc:
        raise ServeError(str(exc)) from None


def check_service_settings() -> None:
    """A setting every worker would reject (``LOADLAB_DB_POOL_SIZE=abc``) stops the
    service before it starts, in one line, rather than as a worker that fails to boot."""
    from pydantic import ValidationError

    from loadlab.settings import ServiceSettings, env_name

    try:
        ServiceSettings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field in ServiceSettings.model_fields else field
        raise ServeError(f"{name}={error.get('input')!r}: {error['msg']}") from None


def serve(cfg: ServerConfig) -> int:
    """Run the server in the foreground until it exits or we are signalled."""
    check_port(cfg.host, cfg.port)
    side_port = metrics_port(cfg)
    check_service_settings()
    check_database_url()
    command = build_command(cfg)  # refuses bad recycling settings before anything starts
    if cfg.python == "ft":
        ft_python()  # not built: one line, before anything starts
    received: list[int] = []
    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if proc is not None and proc.poll() is None:
            # Gunicorn: SIGTERM is the graceful stop; Uvicorn treats both alike.
            proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    inherited = cgroup.own_cpu_limit()
    if os.environ.get(cpulimit.SCOPE_ENV):
        limit = cpulimit.in_systemd_scope(cfg.cpus)
    else:
        limit = cpulimit.limit_cpus(cfg.cpus)
    if limit.wrapper:
        # Re-execute serve inside a systemd scope: same pid, same process group.
        os.environ[cpulimit.SCOPE_ENV] = "1"
        os.execvp(limit.wrapper[0], [*limit.wrapper, *serve_argv(cfg)])
    metrics_dir: Path | None = None
    side: SideMetrics | None = None
    try:
        for warning in [limit.warning, *worker_warnings(cfg, limit, inherited, usable_cores())]:
            if warning:
                print(f"loadlab serve: warning: {warning}", file=sys.stderr, flush=True)
        # Always a directory, one process or many: the side port reads what workers write.
        metrics_dir = fresh_metrics_dir()
        env = build_env(cfg, metrics_dir)
        env.pop(cpulimit.SCOPE_ENV, None)
        env.pop(cgroup.CGROUP_ENV, None)
        env.update(limit.env())
        command = on_python(cfg, command, env)
        side = start_side_metrics(cfg, side_port, metrics_dir, env)
        env[URL_ENV] = side.url
        if received:
            return 128 + received[0]  # stopped before the server started
        try:
            proc = subprocess.Popen(command, env=env,
                                    preexec_fn=partial(_in_child, limit))
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServeError(f"cannot start the {cfg.server} server: {exc}") from None
        side.listener(proc.pid)
        side.start()
        also = " (also /metrics on the service port)" if cfg.app is None else ""
        print(f"loadlab serve: metrics at {side.url}{also}", flush=True)
        if received:
            proc.send_signal(signal.SIGTERM)
        return _exit_status(_wait_for_server(proc, received, cfg.server))
    finally:
        forced = proc is not None and proc.poll() is None
        if proc is not None and forced:
            proc.kill()
            proc.wait()
        if side is not None:
            side.close()
        try:
            # After a forced stop, what is left of the tree gets a short grace: serve's own
            # caller (ServiceProcess.stop, a container's stop) SIGKILLs serve soon after.
            limit.remove(grace_s=1.0 if forced else 5.0)
        except OSError as exc:
            print(f"loadlab serve: warning: cgroup not removed: {exc}", file=sys.stderr)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
