"""``loadlab run --runtime compose``: variants as services of the compose stack.

The user's app (``--app``, as ``loadlab size --runtime compose`` runs its candidates) is
the ``app`` profile's service: its directory mounted, its image built (cached) on the
lab's service image of its interface, ``APP_CPUS`` and the rest from the variant.

Starting a variant recreates its compose service (``fastapi`` or ``flask``) with the
requested CPU limit, workers, worker class and threads passed as the variables the compose
file reads (``FASTAPI_CPUS`` ...), waits for its healthcheck (``up --wait``), and hands
back the published port on loopback. Stopping stops that container; ``docker compose up -d
--wait`` brings the .env configuration back. While the variant runs, the stack's Prometheus
is watched: the run's figures never depend on it (the runner scrapes the service itself),
but a time it was unavailable is recorded in the run (``prometheus``, ``notes``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loadlab.loopback import is_loopback
from loadlab.metrics import side
from loadlab.paths import lab_root
from loadlab.runner.options import OptionError
from loadlab.runner.prometheus_watch import PrometheusWatch
from loadlab.runner.runtime_base import (
    Endpoint,
    Placement,
    Runtime,
    RuntimeError_,
    available_cores,
)
from loadlab.runs.record import Run
from loadlab.serve import ServerConfig

CONTAINER_PORT = 8000
SIDE_METRICS_PORT = side.CONTAINER_PORT  # 9000: loadlab serve's metrics server
PROMETHEUS_SERVICE, PROMETHEUS_PORT = "prometheus", 9090
UP_TIMEOUT_S = 180


class ComposeUnavailable(OptionError):
    """What is missing to drive the compose stack; one line for the user."""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def check_compose(docker: str = "docker") -> str:
    """The Compose v2 version, or ComposeUnavailable saying what is missing."""
    if shutil.which(docker) is None:
        raise ComposeUnavailable(
            "--runtime compose needs Docker: no `docker` command here (Debian: apt-get "
            "install docker.io; see docs/compose.md), or use --runtime native")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0 or not info.stdout.strip():
        raise ComposeUnavailable(
            "--runtime compose needs a running Docker engine, and none answers "
            f"({_first_line(info.stderr)}); start it (systemctl start docker, or dockerd)")
    version = subprocess.run([docker, "compose", "version", "--short"],
                             capture_output=True, text=True, timeout=30, check=False)
    if version.returncode == 0 and version.stdout.strip():
        return version.stdout.strip()
    if shutil.which("docker-compose"):
        raise ComposeUnavailable(
            "only Compose v1 (`docker-compose`) is installed; loadlab needs Compose v2 "
            "(`docker compose`, the CLI plugin): see docs/compose.md")
    raise ComposeUnavailable(
        "--runtime compose needs Compose v2 (`docker compose`), which is not installed: "
        "see docs/compose.md")


def knob_prefix(framework: str) -> str:
    return framework.upper().replace("-", "_")


def variant_env(cfg: ServerConfig, cpuset: str = "") -> dict[str, str]:
    """The compose variables that make the service run this variant."""
    prefix = knob_prefix(cfg.framework)
    return {
        f"{prefix}_CPUS": f"{cfg.cpus:g}",
        f"{prefix}_WORKERS": str(cfg.workers),
        f"{prefix}_WORKER_CLASS": cfg.worker_class,
        f"{prefix}_THREADS": str(cfg.threads),
        f"{prefix}_BACKPRESSURE": str(cfg.backpressure),
        f"{prefix}_CPUSET": cpuset,
    }


def app_env(cfg: ServerConfig) -> dict[str, str]:
    """The compose ``app`` profile's variables for the user's app (``--app``): its code
    mounted from its directory, its image built on the service image of its interface."""
    if cfg.app is None:
        return {}
    return {"LOADLAB_APP_DIR": str(Path(cfg.app.app_dir or ".").resolve()),
            "LOADLAB_APP": cfg.app.target,
            "LOADLAB_APP_BASE": "fastapi" if cfg.app.interface == "asgi" else "flask"}


def loopback_url(published: str) -> str:
    """`docker compose port` output -> a URL on loopback (load goes nowhere else)."""
    host, _, port = published.strip().rpartition(":")
    if not port.isdigit():
        raise RuntimeError_(f"unexpected published address {published.strip()!r}")
    host = host.strip("[]")
    if not is_loopback(host) or host == "localhost":
        host = "127.0.0.1"
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


@dataclass
class ComposeRuntime(Runtime):
    """Variants of fastapi/flask as the compose project's services (see module doc)."""

    name: str = "compose"
    project_dir: Path = field(default_factory=lab_root)
    project: str | None = None  # None: the compose file's `name:` (loadlab)
    env: dict[str, str] = field(default_factory=dict)  # extra variables (ports, images)
    pin: bool = True  # give the service its own cores (cpuset) when there are enough
    _service: str | None = field(default=None, init=False)
    _last_log: str = field(default="(no log)", init=False)
    _watch: PrometheusWatch | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_compose()

    def env_files(self) -> list[str]:
        """.env as compose would read it, then the offline images when they were built."""
        files = [self.project_dir / ".env", self.project_dir / ".offline" / "images.env"]
        return [str(path) for path in files if path.is_file()]

    def compose(self, *args: str, extra_env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "--project-directory", str(self.project_dir)]
        for env_file in self.env_files():
            cmd += ["--env-file", env_file]
        if self.project:
            cmd += ["--project-name", self.project]
        env = {**os.environ, **self.env, **(extra_env or {})}
        try:
            return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError_(f"docker compose {args[0]} took over {timeout:.0f} s") from None

    def placement(self, cfg: ServerConfig) -> Placement:
        cores = available_cores()
        wanted = max(1, -int(-cfg.cpus // 1)) if cfg.cpus > 0 else cfg.workers
        if not self.pin or wanted >= len(cores):
            return Placement(tuple(cores), tuple(cores))
        return Placement(tuple(cores[:wanted]), tuple(cores[wanted:]))

    def start(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        """``env`` (the pool size: LOADLAB_DB_POOL_SIZE) is read by the compose file's
        ${...} defaults; the services' DATABASE_URL is the compose file's own."""
        service = cfg.framework
        placement = self.placement(cfg)
        cpuset = ",".join(map(str, placement.server_cores)) if placement.separated else ""
        self._service = service
        up = self.compose("up", "--detach", "--wait", "--force-recreate", "--no-deps", service,
                          extra_env={**variant_env(cfg, cpuset), **app_env(cfg),
                                     **(env or {})},
                          timeout=UP_TIMEOUT_S)
        if up.returncode != 0:
            raise RuntimeError_(f"{service} did not become healthy: {_first_line(up.stderr)}; "
                                f"its log: {self.log_tail()}")
        port = self.compose("port", service, str(CONTAINER_PORT))
        if port.returncode != 0 or not port.stdout.strip():
            raise RuntimeError_(f"{service} publishes no port: {_first_line(port.stderr)}")
        base = loopback_url(port.stdout.splitlines()[0])
        self._watch = self._watch_prometheus()
        return Endpoint(base, self._metrics_url(service, base), pid=None)

    def _metrics_url(self, service: str, base: str) -> str:
        """The supervisor's side port (published on an ephemeral host port), which answers
        while every worker is busy; the service's own /metrics where it is not published
        (a compose file of an older checkout)."""
        side = self.compose("port", service, str(SIDE_METRICS_PORT))
        if side.returncode == 0 and side.stdout.strip():
            try:
                return f"{loopback_url(side.stdout.splitlines()[0])}/metrics"
            except RuntimeError_:
                pass
        return f"{base}/metrics"

    def _watch_prometheus(self) -> PrometheusWatch:
        port = self.compose("port", PROMETHEUS_SERVICE, str(PROMETHEUS_PORT))
        if port.returncode != 0 or not port.stdout.strip():
            return PrometheusWatch(None, why_missing=_first_line(port.stderr)).start()
        try:
            url = loopback_url(port.stdout.splitlines()[0])
        except RuntimeError_ as exc:
            return PrometheusWatch(None, why_missing=str(exc)).start()
        return PrometheusWatch(url).start()

    def run_notes(self) -> Run:
        """Whether Prometheus was there while the variant ran (see prometheus_watch)."""
        if self._watch is None or self._service is None:
            return {}
        return self._watch.record(self._service)

    def alive(self) -> bool:
        if self._service is None:
            return False
        ps = self.compose("ps", "--status", "running", "--quiet", self._service)
        return ps.returncode == 0 and bool(ps.stdout.strip())

    def log_tail(self, lines: int = 5) -> str:
        if self._service is not None:
            self._last_log = self._read_log(self._service, lines)
        return self._last_log

    def _read_log(self, service: str, lines: int = 5) -> str:
        logs = self.compose("logs", "--no-color", "--no-log-prefix", "--tail", str(lines),
                            service)
        text = " | ".join(line.strip() for line in logs.stdout.splitlines() if line.strip())
        return text or "(no log)"

    def stop(self) -> None:
        service, self._service = self._service, None
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
        if service is not None:
            self._last_log = self._read_log(service)
            self.compose("stop", "--timeout", "10", service)
