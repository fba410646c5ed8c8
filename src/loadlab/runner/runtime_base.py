"""What every runtime shares: its error, the endpoint it hands back, the placement of
server and load generator, and the protocols (``Runtime``, ``RunNotes``).

Kept apart from the runtimes themselves so that each (native in ``runtime``, compose in
``compose``) imports this and none imports another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from loadlab.errors import UserError
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
class EarlyLoad(Protocol):
    """A runtime that can hand back the endpoint before the service answers, so that the
    load generator starts beside the service (each start-up takes about a second) and
    waits for it itself (loadlab.readiness); ``wait_ready`` then waits here too."""

    def launch(self, cfg: ServerConfig) -> Endpoint:
        """Start the variant without waiting for it. Raises RuntimeError_."""

    def wait_ready(self) -> None:
        """Return once the launched service is ready (/healthz, every worker up); else stop
        it and raise RuntimeError_."""


@runtime_checkable
class StopsBehind(Protocol):
    """A runtime whose service can finish exiting while the next one starts (a Gunicorn
    stop takes 0.3-1.6 s here); ``settle`` waits for every stop still under way, and the
    next service's ``wait_ready`` settles before it returns."""

    def stop_behind(self) -> None:
        """Stop the service without waiting for it to end."""

    def settle(self) -> None:
        """Return once every service stopped behind has ended."""


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
