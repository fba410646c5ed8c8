"""``loadlab serve``: ServerConfig -> the Uvicorn or Gunicorn process tree.

The one way a service starts, natively and in containers, so every variant runs the same
code with the same settings. The server runs as a child, so that ``serve`` can remove
the cgroup it made when the server exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import loadlab

Framework = Literal["fastapi", "flask"]

WORKER_CLASSES: dict[str, tuple[str, ...]] = {
    "fastapi": ("uvicorn", "uvicorn-worker"),
    "flask": ("sync", "gthread", "gevent"),
}
DEFAULT_WORKER_CLASS = {"fastapi": "uvicorn", "flask": "sync"}
GUNICORN_CLASS = {
    "uvicorn-worker": "uvicorn_worker.UvicornWorker",
    "sync": "sync",
    "gthread": "gthread",
    "gevent": "gevent",
}
APP_MODULE = {"fastapi": "fastapi_app", "flask": "flask_app"}


class ServeError(ValueError):
    """A server configuration that cannot run; the message is one line for the user."""


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

    def __post_init__(self) -> None:
        if self.framework not in WORKER_CLASSES:
            raise ServeError(f"unknown framework {self.framework!r}: choose fastapi or flask")
        if not self.worker_class:
            object.__setattr__(self, "worker_class", DEFAULT_WORKER_CLASS[self.framework])
        allowed = WORKER_CLASSES[self.framework]
        if self.worker_class not in allowed:
            raise ServeError(
                f"--worker-class {self.worker_class!r} does not fit {self.framework}: "
                f"choose one of {', '.join(allowed)}"
            )
        if not 1 <= self.workers <= 256:
            raise ServeError(f"--workers must be 1-256, got {self.workers}")
        if not 1 <= self.threads <= 1024:
            raise ServeError(f"--threads must be 1-1024, got {self.threads}")
        if self.threads > 1 and self.worker_class != "gthread":
            raise ServeError("--threads > 1 needs --worker-class gthread")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port must be 0-65535, got {self.port}")
        if self.cpus < 0 or self.cpus > (os.cpu_count() or 1) * 4:
            raise ServeError(f"--cpus must be between 0 (no limit) and the cores, got {self.cpus}")

    @property
    def server(self) -> str:
        return "uvicorn" if self.worker_class == "uvicorn" else "gunicorn"

    @property
    def multiprocess(self) -> bool:
        # Gunicorn always forks (and may recycle workers); Uvicorn only with workers > 1.
        return self.server == "gunicorn" or self.workers > 1


def services_dir() -> Path:
    configured = os.environ.get("LOADLAB_SERVICES_DIR")
    if configured:
        return Path(configured)
    return Path(loadlab.__file__).resolve().parents[2] / "services"


def build_command(cfg: ServerConfig) -> list[str]:
    app_dir = services_dir() / cfg.framework
    module = APP_MODULE[cfg.framework]
    if cfg.server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", f"{module}:create_app", "--factory",
            "--app-dir", str(app_dir), "--host", cfg.host, "--port", str(cfg.port),
            "--workers", str(cfg.workers), "--loop", cfg.loop, "--http", cfg.http,
            "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "10",
        ]
    return [
        sys.executable, "-m", "gunicorn", f"{module}:create_app()",
        "--config", str(app_dir / "gunicorn.conf.py"), "--chdir", str(app_dir),
    ]


def build_env(cfg: ServerConfig, metrics_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    env.update(
        LOADLAB_SERVER=cfg.server,
        LOADLAB_WORKER_CLASS=cfg.worker_class,
        LOADLAB_WORKERS=str(cfg.workers),
        LOADLAB_THREADS=str(cfg.threads),
        LOADLAB_BIND=f"{host}:{cfg.port}",
        LOADLAB_ROOT_PID=str(os.getpid()),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(services_dir() / cfg.framework), env.get("PYTHONPATH")) if p
        ),
    )
    if cfg.server == "gunicorn":
        env["LOADLAB_GUNICORN_WORKER_CLASS"] = GUNICORN_CLASS[cfg.worker_class]
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    else:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def fresh_metrics_dir() -> Path:
    """A new, empty multiprocess directory (prometheus_client needs it wiped at start)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path
    return Path(tempfile.mkdtemp(prefix="loadlab-metrics-"))


def serve(cfg: ServerConfig) -> int:
    """Run the server in the foreground until it exits or we are signalled."""
    metrics_dir = fresh_metrics_dir() if cfg.multiprocess else None
    proc = subprocess.Popen(build_command(cfg), env=build_env(cfg, metrics_dir))

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if metrics_dir is not None and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            shutil.rmtree(metrics_dir, ignore_errors=True)
