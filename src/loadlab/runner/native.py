"""The native runtime: services as local ``loadlab serve`` process groups, pinned to the
cores their limit and workers can use (``plan_placement``, ``pin_tree``).

A runtime starts one variant of a service and hands back its endpoint; the runner only
talks HTTP to it. ``loadlab.runner.compose.ComposeRuntime`` and
``loadlab.runner.swarm.SwarmRuntime`` are the same base class (``runtime_base.Runtime``)
against the compose stack and the swarm; ``runtimes.runtime_for`` picks one by name.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import psutil

from loadlab.launch import LaunchError, ServiceProcess, free_port
from loadlab.runner.runtime_base import (
    Endpoint,
    Placement,
    Runtime,
    RuntimeError_,
    available_cores,
)
from loadlab.serve import ServerConfig


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
class NativeRuntime(Runtime):
    """Services as local ``loadlab serve`` process groups on free loopback ports; a service
    can be launched before it is ready, and stopped behind while the next one starts."""

    starts_early = True
    name: str = "native"
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port per start
    _service: ServiceProcess | None = field(default=None, init=False)
    _last_log: str = field(default="(no log)", init=False)
    _stopping: list[threading.Thread] = field(default_factory=list, init=False)

    def placement(self, cfg: ServerConfig) -> Placement:
        return plan_placement(cfg.cpus, cfg.workers)

    def start(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        endpoint = self.launch(cfg, env)
        self.wait_ready()
        return endpoint

    def launch(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        """``env``: what the service needs besides ``cfg`` (its database, its pool size)."""
        if self.port is not None:
            self.settle()  # the one port is still held by the service stopping behind
        port = self.port if self.port is not None else free_port(self.host)
        cfg = replace(cfg, host=self.host, port=port)  # every other setting as asked
        service = ServiceProcess(cfg, env={**os.environ, **(env or {})})
        try:
            service.spawn()
        except LaunchError as exc:
            raise RuntimeError_(f"{cfg.framework} did not start: {exc}") from None
        self._service = service
        # The supervisor's side port: a saturated service still answers every scrape.
        return Endpoint(service.url, service.metrics_url, pid=service.pid)

    def wait_ready(self) -> None:
        service = self._service
        assert service is not None, "wait_ready() before launch()"
        try:
            service.wait_ready()
        except LaunchError as exc:
            self.stop()
            raise RuntimeError_(f"{service.cfg.framework} did not start: {exc}") from None
        # The previous service may still be exiting: it is gone before any sampling starts.
        self.settle()
        pin_tree(service.pid, self.placement(service.cfg).server_cores)

    def alive(self) -> bool:
        return bool(self._service and self._service.proc and self._service.proc.poll() is None)

    def log_tail(self) -> str:
        if self._service is not None:
            self._last_log = self._service.log_tail()
        return self._last_log

    def stop(self) -> None:
        self.stop_behind()
        self.settle()

    def stop_behind(self) -> None:
        """SIGTERM the service now; its exit finishes on a thread (settle() waits)."""
        service, self._service = self._service, None
        if service is None:
            return
        self._last_log = service.log_tail()
        stopping = threading.Thread(target=service.stop, name=f"stop-{service.pid}")
        stopping.start()
        self._stopping.append(stopping)

    def settle(self) -> None:
        while self._stopping:
            self._stopping.pop().join()
