"""What every runtime shares: its error, the endpoint it hands back, the placement of
server and load generator, and the ``Runtime`` base class (its optional hooks have defaults).

Kept apart from the runtimes themselves so that each (native in ``native``, compose in
``compose``, swarm in ``swarm``) imports this and none imports another; ``runtimes``
picks one by name.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from loadlab.errors import UserError
from loadlab.runner.loadgen import LoadGenerator
from loadlab.runner.locust_driver import LocustProcess
from loadlab.runner.options import RunSpec
from loadlab.runs.record import Manifest, Run
from loadlab.serve import ServerConfig


class RuntimeError_(UserError, RuntimeError):
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


class Runtime(abc.ABC):
    """Where a variant runs. The five methods below are each runtime's own; the hooks after
    them have defaults that do nothing special, and a runtime overrides those it can do
    better (so the runner never asks which kind of runtime it has)."""

    name: str

    @abc.abstractmethod
    def start(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        """Start the variant; return once it answers /healthz. Raises RuntimeError_.
        ``env``: what the service needs besides ``cfg`` (its database, its pool size)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop whatever start() started; safe to call twice."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the service is still running (a dead one fails the run)."""

    @abc.abstractmethod
    def placement(self, cfg: ServerConfig) -> Placement:
        """Cores for the service and for the load generator."""

    @abc.abstractmethod
    def log_tail(self) -> str:
        """The service's last log lines, for error messages."""

    # --- hooks with defaults ---------------------------------------------------------------
    # True: ``launch`` hands back the endpoint before the service answers, so that the load
    # generator starts beside the service (each start-up takes about a second) and waits for
    # it itself (loadlab.readiness); ``wait_ready`` then waits here too.
    starts_early: ClassVar[bool] = False

    def launch(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        """Start the variant, waiting for it only if the runtime cannot do otherwise."""
        return self.start(cfg, env)

    def wait_ready(self) -> None:
        """Return once the launched service is ready (/healthz, every worker up); else stop
        it and raise RuntimeError_. By default ``launch`` has already waited."""
        return None

    def stop_behind(self) -> None:
        """Stop the service, letting its exit finish while the next one starts (a Gunicorn
        stop takes 0.3-1.6 s here); by default, stop it and wait."""
        self.stop()

    def settle(self) -> None:
        """Return once every service stopped behind has ended (the next ``wait_ready``
        settles too). By default nothing is stopped behind."""
        return None

    def load_generator(self, spec: RunSpec, out_prefix: Path, endpoint: Endpoint,
                       placement: Placement, wait_ready_s: float = 0.0) -> LoadGenerator:
        """The run's load generator, not yet started: by default Locust as a local process
        on the load generator's cores (``wait_ready_s`` > 0: it waits for the service)."""
        return LocustProcess(spec, endpoint.base_url, out_prefix, cores=placement.load_cores,
                             wait_ready_s=wait_ready_s)

    def run_notes(self) -> Run:
        """Fields the runtime adds to each run from what it saw around the service (compose:
        a Prometheus gap; a ``notes`` list holds one-line remarks). Read just before the
        run's record is built, while the service still runs."""
        return {}

    def manifest_notes(self) -> Manifest:
        """Fields for the results' manifest about where it runs (swarm: nodes, their CPUs,
        the tasks' placement)."""
        return {}


def available_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))
