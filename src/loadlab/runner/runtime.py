"""Where a service runs: the Runtime protocol, and the native runtime (local processes).

A runtime starts one variant of a service and hands back its endpoint; the runner only
talks HTTP to it. ``loadlab.runner.compose.ComposeRuntime`` implements the same protocol
against the compose stack.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import psutil

from loadlab.launch import LaunchError, ServiceProcess, free_port
from loadlab.runner.options import OptionError
from loadlab.serve import ServerConfig


class RuntimeError_(RuntimeError):
    """A service could not be started; the message is one line (with its last log lines)."""


@dataclass(frozen=True)
class Placement:
    """Which cores the service and the load generator run on."""

    server_cores: tuple[int, ...]
    load_cores: tuple[int, ...]

    @property
    def separated(self) -> bool:
        return not set(self.server_cores) & set(self.load_cores)

    def describe(self) -> str:
        if self.separated:
            return f"server on cores {list(self.server_cores)}, load on {list(self.load_cores)}"
        return (
            f"load generator shares cores {sorted(set(self.server_cores) & set(self.load_cores))}"
            " with the server (not enough cores to separate them)"
        )


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    metrics_url: str
    pid: int | None = None  # the service's root process, when it is local


class Runtime(Protocol):
    name: str

    def start(self, cfg: ServerConfig) -> Endpoint:
        """Start the variant; return once it answers /healthz. Raises RuntimeError_."""

    def stop(self) -> None:
        """Stop whatever start() started; safe to call twice."""

    def alive(self) -> bool:
        """Whether the service is still running (a dead one fails the run)."""

    def placement(self, cfg: ServerConfig) -> Placement:
        """Cores for the service and for the load generator."""

    def log_tail(self) -> str:
        """The service's last log lines, for error messages."""


@runtime_checkable
class RunNotes(Protocol):
    """A runtime that adds what it saw around the service to each run (e.g. compose: a
    Prometheus gap). Read just before the run's record is returned, while still started."""

    def run_notes(self) -> dict[str, Any]:
        """Fields for the run record; a ``notes`` list holds one-line remarks."""


@runtime_checkable
class RemoteLoad(Protocol):
    """A runtime whose load generator runs elsewhere (swarm: the stack's Locust master and
    workers); its driver behaves as the local Locust process does."""

    def load_generator(self, spec: Any, out_prefix: Any) -> Any:
        """A ``LocustProcess``-like driver, not yet started."""


@runtime_checkable
class ManifestNotes(Protocol):
    """A runtime that adds what it knows about where it runs to the results' manifest."""

    def manifest_notes(self) -> dict[str, Any]:
        """Fields for the manifest (swarm: nodes, their CPUs, the tasks' placement)."""


def available_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def plan_placement(cpus: float, workers: int, cores: list[int] | None = None) -> Placement:
    """Give the server the cores its limit and its workers can use, the load generator the rest.

    A quota of 1 CPU over 2 workers gets 2 cores, so that the quota (not the pinning) is
    what limits it. With too few cores the two share, and the placement says so.
    """
    cores = cores or available_cores()
    wanted = max(math.ceil(cpus) if cpus > 0 else 0, workers, 1)
    n_server = min(wanted, len(cores))
    server = tuple(cores[:n_server])
    rest = tuple(cores[n_server:])
    return Placement(server, rest or tuple(cores))


def pin_tree(pid: int, cores: tuple[int, ...]) -> None:
    """Set the CPU affinity of a process and its children (later forks inherit it)."""
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error, OSError):
                proc.cpu_affinity(list(cores))


@dataclass
class NativeRuntime:
    """Services as local ``loadlab serve`` process groups on free loopback ports."""

    name: str = "native"
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port per start
    _service: ServiceProcess | None = field(default=None, init=False)
    _last_log: str = field(default="(no log)", init=False)

    def placement(self, cfg: ServerConfig) -> Placement:
        return plan_placement(cfg.cpus, cfg.workers)

    def start(self, cfg: ServerConfig) -> Endpoint:
        port = self.port if self.port is not None else free_port(self.host)
        cfg = ServerConfig(
            framework=cfg.framework, host=self.host, port=port, workers=cfg.workers,
            worker_class=cfg.worker_class, threads=cfg.threads, cpus=cfg.cpus,
            loop=cfg.loop, http=cfg.http,
        )
        service = ServiceProcess(cfg)
        self._service = service
        try:
            service.start()
        except LaunchError as exc:
            self._service = None
            raise RuntimeError_(f"{cfg.framework} did not start: {exc}") from None
        pin_tree(service.pid, self.placement(cfg).server_cores)
        return Endpoint(service.url, f"{service.url}/metrics", pid=service.pid)

    def alive(self) -> bool:
        return bool(self._service and self._service.proc and self._service.proc.poll() is None)

    def log_tail(self) -> str:
        if self._service is not None:
            self._last_log = self._service.log_tail()
        return self._last_log

    def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            self._last_log = service.log_tail()
            service.stop()


def runtime_for(name: str, port: int | None = None) -> Runtime:
    if name == "native":
        return NativeRuntime(port=port)
    if name == "compose":
        try:
            module = importlib.import_module("loadlab.runner.compose")
        except ImportError:
            raise OptionError(
                "--runtime compose needs the compose stack (loadlab.runner.compose), which this "
                "build does not have yet; use --runtime native"
            ) from None
        runtime: Runtime = module.ComposeRuntime()
        return runtime
    if name == "swarm":
        from loadlab.runner.swarm import SwarmRuntime

        return SwarmRuntime()
    raise OptionError(f"unknown runtime {name!r}: choose native, compose or swarm")
