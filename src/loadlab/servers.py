"""What a server is: one entry per server, everything else derives from it.

In the spirit of Uvicorn's ``config.py`` tables. An entry names the interfaces a server
serves (through its worker classes), how its command line is built, whether it needs
Prometheus's multiprocess directory, its title in sentences, the database pool a worker
gets by default and the packages whose versions a run records. ``serve`` (tables, command
line), the report's wording, the thread-pool gauges, the pool defaults, ``/info``'s and the
manifest's package lists and the tests' variant names are read from here.

Standard library only: a Gunicorn master, the report and the database layer import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from loadlab.errors import UserError


class ServerConfig(Protocol):
    """What a command line is built from: ``loadlab.serve.ServerConfig``'s fields (a
    protocol here, so the registry imports nothing of the supervisor)."""

    @property
    def framework(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def workers(self) -> int: ...

    @property
    def threads(self) -> int: ...

    @property
    def loop(self) -> str: ...

    @property
    def http(self) -> str: ...

    @property
    def backpressure(self) -> int: ...

    @property
    def python(self) -> str: ...

    @property
    def worker_class(self) -> str: ...

Interface = Literal["asgi", "wsgi"]

# The two apps: the interface each speaks, its module, its title in sentences, and the
# packages that make it.
INTERFACES: dict[str, Interface] = {"fastapi": "asgi", "flask": "wsgi"}
APP_MODULE = {"fastapi": "fastapi_app", "flask": "flask_app"}
FRAMEWORK_TITLES = {"fastapi": "FastAPI", "flask": "Flask"}
FRAMEWORK_PACKAGES = {"fastapi": ("fastapi", "starlette", "pydantic"),
                      "flask": ("flask", "werkzeug")}
# Whatever the server: the lab itself, its metrics and its database driver.
COMMON_PACKAGES = ("loadlab", "prometheus-client", "psycopg", "psycopg-pool")

# Connections per worker process when LOADLAB_DB_POOL_SIZE is not set for a worker that
# serves many requests at once (an event loop, gevent).
CONCURRENT_POOL_SIZE = 10


class ServeError(UserError, ValueError):
    """A server configuration that cannot run; the message is one line for the user."""


@dataclass(frozen=True)
class Launch:
    """What a command line needs besides the configuration: the interpreter, the app's
    directory, the listen() backlog and the recycling knobs (0: never)."""

    python: str
    app_dir: str
    backlog: int
    max_requests: int = 0
    max_requests_jitter: int = 0
    # A user's app (loadlab.apps): the factory's module and the interface, else the
    # framework's own.
    module: str = ""
    interface: Interface | None = None

    def factory_module(self, framework: str) -> str:
        return self.module or APP_MODULE[framework]

    def interface_of(self, framework: str) -> Interface:
        return self.interface or INTERFACES[framework]


def _one_pool(threads: int) -> int:
    return 1  # one request at a time: more connections would sit idle


def _pool_per_thread(threads: int) -> int:
    return threads  # one request per thread


def _concurrent_pool(threads: int) -> int:
    return CONCURRENT_POOL_SIZE


@dataclass(frozen=True)
class WorkerClass:
    """One ``--worker-class``: the app interface it runs and what it means for the rest."""

    name: str
    interfaces: tuple[Interface, ...]
    # How the headline names one worker and many ("Uvicorn process", "Uvicorn processes").
    one: str
    many: str
    # The default database pool per worker process, from --threads.
    pool: Callable[[int], int] = _concurrent_pool
    # A request holds one thread of a per-worker pool of --threads (the pool gauges).
    thread_per_request: bool = False
    # The interfaces on which --threads > 1 means something (threads that run the app).
    threaded: tuple[Interface, ...] = ()
    # The server's own name for the class, when it differs (Gunicorn's -k).
    native: str = ""
    # The test variant's name after the framework ("flask-gthread").
    variant: str = ""

    def title(self, workers: int) -> str:
        return f"one {self.one}" if workers == 1 else f"{workers} {self.many}"


@dataclass(frozen=True)
class Server:
    name: str
    title: str
    classes: tuple[WorkerClass, ...]
    # The server's command line for a configuration.
    command: Callable[[ServerConfig, Launch], list[str]]
    # More than one process writes metrics (so the multiprocess directory is needed even
    # without the supervisor's side port, which always reads one).
    multiprocess: Callable[[ServerConfig], bool]
    packages: tuple[str, ...] = field(default=())
    # The interfaces on which the app learns the client's port (Granian's WSGI environ has
    # REMOTE_ADDR but no REMOTE_PORT).
    client_port: tuple[Interface, ...] = ("asgi", "wsgi")
    # It caps the requests a worker takes at once (--backpressure).
    backpressure: bool = False
    # The processes that serve, each one counted in loadlab_workers (None: --workers).
    processes: Callable[[ServerConfig], int] | None = None

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        return tuple(dict.fromkeys(i for k in self.classes for i in k.interfaces))


def _uvicorn_command(cfg: ServerConfig, launch: Launch) -> list[str]:
    argv = [
        launch.python, "-m", "uvicorn", f"{launch.factory_module(cfg.framework)}:create_app",
        "--factory", "--app-dir", launch.app_dir, "--host", cfg.host, "--port", str(cfg.port),
        "--workers", str(cfg.workers), "--loop", cfg.loop, "--http", cfg.http,
        "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "10",
        "--backlog", str(launch.backlog),
    ]
    if launch.max_requests:
        if cfg.workers < 2:  # one Uvicorn process serves alone: no supervisor restarts it
            raise ServeError("LOADLAB_MAX_REQUESTS under Uvicorn needs --workers 2 or "
                             "more: a single Uvicorn process would exit for good")
        argv += ["--limit-max-requests", str(launch.max_requests),
                 "--limit-max-requests-jitter", str(launch.max_requests_jitter)]
    return argv


def _gunicorn_command(cfg: ServerConfig, launch: Launch) -> list[str]:
    # Everything else (bind, workers, class, backlog, recycling) is read from the
    # environment by gunicorn_conf.py.
    return [
        launch.python, "-m", "gunicorn", f"{launch.factory_module(cfg.framework)}:create_app()",
        "--config", "python:loadlab.gunicorn_conf", "--chdir", launch.app_dir,
    ]


def _granian_pool(threads: int) -> int:
    # WSGI: each request holds one of --threads blocking threads; ASGI (--threads 1): the
    # event loop serves many at once.
    return threads if threads > 1 else CONCURRENT_POOL_SIZE


def _granian_command(cfg: ServerConfig, launch: Launch) -> list[str]:
    """Granian in processes; its own --metrics stay off (Prometheus's port 9090): the lab's
    metrics come from the apps and the supervisor's side port, as under the others."""
    if launch.max_requests:
        raise ServeError("LOADLAB_MAX_REQUESTS does not apply to Granian: it recycles "
                         "workers by age or memory, not by request count")
    argv = [
        launch.python, "-m", "granian", "--interface", launch.interface_of(cfg.framework),
        "--factory", f"{launch.factory_module(cfg.framework)}:create_app",
        "--working-dir", launch.app_dir, "--host", cfg.host, "--port", str(cfg.port),
        "--workers", str(cfg.workers), "--backlog", str(launch.backlog),
        "--log-level", "warning", "--no-access-log", "--no-metrics",
        "--workers-kill-timeout", "5",
        # The smallest head buffer it takes (8 KiB, about Gunicorn's request-line and header
        # limits): a larger head is refused rather than read.
        "--http1-buffer-size", "8192",
    ]
    if launch.interface_of(cfg.framework) == "wsgi":
        argv += ["--blocking-threads", str(cfg.threads)]
    if cfg.backpressure:
        argv += ["--backpressure", str(cfg.backpressure)]
    return argv


SERVERS: dict[str, Server] = {s.name: s for s in (
    Server(
        name="uvicorn", title="Uvicorn",
        classes=(WorkerClass("uvicorn", ("asgi",), "Uvicorn process", "Uvicorn processes",
                             variant="uvicorn"),),
        command=_uvicorn_command,
        multiprocess=lambda cfg: cfg.workers > 1,
        packages=("uvicorn",),
    ),
    Server(
        name="gunicorn", title="Gunicorn",
        classes=(
            WorkerClass("uvicorn-worker", ("asgi",), "Gunicorn Uvicorn worker",
                        "Gunicorn Uvicorn workers", native="uvicorn_worker.UvicornWorker",
                        variant="gunicorn"),
            WorkerClass("sync", ("wsgi",), "Gunicorn sync worker", "Gunicorn sync workers",
                        pool=_one_pool, variant="sync"),
            WorkerClass("gthread", ("wsgi",), "Gunicorn gthread worker",
                        "Gunicorn gthread workers", pool=_pool_per_thread,
                        thread_per_request=True, threaded=("wsgi",), variant="gthread"),
            WorkerClass("gevent", ("wsgi",), "Gunicorn gevent worker", "Gunicorn gevent workers",
                        variant="gevent"),
        ),
        command=_gunicorn_command,
        multiprocess=lambda cfg: True,  # Gunicorn always forks (and may recycle workers)
        packages=("gunicorn", "uvicorn", "uvicorn-worker", "gevent"),
    ),
    Server(
        name="granian", title="Granian",
        classes=(WorkerClass("granian", ("asgi", "wsgi"), "Granian worker", "Granian workers",
                             pool=_granian_pool, threaded=("wsgi",), variant="granian"),),
        command=_granian_command,
        multiprocess=lambda cfg: True,  # workers are processes, the main one serves nothing
        packages=("granian",),
        client_port=("asgi",),
        backpressure=True,
        # On a free-threaded build Granian's workers are threads of one process.
        processes=lambda cfg: 1 if cfg.python == "ft" else cfg.workers,
    ),
)}

# Each worker class by name, with the server it belongs to.
CLASSES: dict[str, tuple[Server, WorkerClass]] = {
    k.name: (s, k) for s in SERVERS.values() for k in s.classes
}
# The worker classes that fit each framework, in registry order; the first is the default.
WORKER_CLASSES: dict[str, tuple[str, ...]] = {
    fw: tuple(name for name, (_, k) in CLASSES.items() if iface in k.interfaces)
    for fw, iface in INTERFACES.items()
}
DEFAULT_WORKER_CLASS = {fw: classes[0] for fw, classes in WORKER_CLASSES.items()}
# The packages whose versions /info and a run's manifest record (the manifest adds the
# load generator's).
PACKAGES: tuple[str, ...] = tuple(dict.fromkeys((
    *COMMON_PACKAGES[:1],
    *(p for fw in FRAMEWORK_PACKAGES.values() for p in fw),
    *(p for s in SERVERS.values() for p in s.packages),
    *COMMON_PACKAGES[1:],
)))


def server_of(worker_class: str) -> Server:
    return CLASSES[worker_class][0]


def native_name(worker_class_name: str) -> str:
    """The server's own name for a worker class (Gunicorn's ``-k``)."""
    klass = CLASSES[worker_class_name][1]
    return klass.native or klass.name


def worker_class(name: str) -> WorkerClass | None:
    """The registry's entry for a worker class; None for a name it does not know (an old
    run's record, say)."""
    entry = CLASSES.get(name)
    return entry[1] if entry else None


def default_pool_size(worker_class_name: str, threads: int) -> int:
    """Connections per worker process when LOADLAB_DB_POOL_SIZE is not set."""
    klass = worker_class(worker_class_name)
    return klass.pool(threads) if klass else CONCURRENT_POOL_SIZE


def variant_name(framework: str, worker_class_name: str) -> str:
    """The name tests (and the compose variants) give a framework on a worker class."""
    klass = worker_class(worker_class_name)
    return f"{framework}-{klass.variant if klass and klass.variant else worker_class_name}"


def classes_for(interface: str) -> tuple[str, ...]:
    """The worker classes that serve ``interface`` (a user's app), in registry order."""
    return tuple(n for n, (_, k) in CLASSES.items() if interface in k.interfaces)


def threaded_classes(frameworks: Iterable[str]) -> list[str]:
    """The worker classes on which --threads > 1 means something, for any of `frameworks`."""
    interfaces = {INTERFACES[fw] for fw in frameworks}
    return [n for n, (_, k) in CLASSES.items() if interfaces & set(k.threaded)]


def worker_processes(cfg: ServerConfig) -> int:
    """The worker processes a configuration runs (what readiness waits for)."""
    count = server_of(cfg.worker_class).processes
    return cfg.workers if count is None else count(cfg)


def takes_backpressure(worker_class_name: str) -> bool:
    """Whether --backpressure applies to the worker class's server."""
    return server_of(worker_class_name).backpressure


BACKPRESSURE_SERVERS = tuple(s.name for s in SERVERS.values() if s.backpressure)


def class_for(server: str, framework: str) -> str | None:
    """The worker class ``--server NAME`` means for a framework: the server's first class
    that serves the framework's interface (None: the server does not serve it)."""
    entry = SERVERS.get(server)
    iface = INTERFACES.get(framework)
    if entry is None or iface is None:
        return None
    return next((k.name for k in entry.classes if iface in k.interfaces), None)


# The free-threaded CPython 3.13t that .ci/build-python-ft builds (its venv's python), or
# $LOADLAB_PYTHON_FT.
FT_PYTHON_ENV = "LOADLAB_PYTHON_FT"
FT_PYTHON = Path("/opt/loadlab-python-ft/venv/bin/python")


def ft_python(environ: dict[str, str] | None = None) -> Path:
    """The free-threaded interpreter: $LOADLAB_PYTHON_FT, else the venv that
    .ci/build-python-ft makes. One line saying how to build it when it is not there."""
    env = os.environ if environ is None else environ
    path = Path(env.get(FT_PYTHON_ENV, "").strip() or FT_PYTHON)
    if not os.access(path, os.X_OK) or path.is_dir():
        raise ServeError(f"--python ft: no free-threaded interpreter at {path}: build it with "
                         f".ci/build-python-ft (or set {FT_PYTHON_ENV} to one)")
    return path


# listen() backlog of both servers (their own default), passed on so that the accept-queue
# gauge can state its limit (metrics/acceptqueue.py).
LISTEN_BACKLOG = 2048

RECYCLING_ENV = ("LOADLAB_MAX_REQUESTS", "LOADLAB_MAX_REQUESTS_JITTER")


def recycling() -> tuple[int, int]:
    """Worker recycling, the same knobs for both servers: a worker is replaced after
    LOADLAB_MAX_REQUESTS requests plus up to LOADLAB_MAX_REQUESTS_JITTER more (0: never).
    Gunicorn reads them in gunicorn_conf.py; Uvicorn gets them as flags."""
    values = []
    for name in RECYCLING_ENV:
        raw = os.environ.get(name, "").strip() or "0"
        if not raw.isdigit():
            raise ServeError(f"{name} must be a whole number >= 0, got {raw!r}")
        values.append(int(raw))
    return values[0], values[1]
