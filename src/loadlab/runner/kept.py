"""One service kept running across runs of the same configuration (``loadlab size``).

``loadlab size`` measures each candidate at several arrival rates, one run per rate; a
fresh service per run spent its start-up (a second or more on a busy machine, and a cold
interpreter's first requests) on every point. ``KeptRuntime`` wraps a runtime: ``start``
hands back the running service when asked for the same configuration and environment
again (and it is alive), and ``stop``/``stop_behind`` leave it running; ``close`` stops it.
Each run still has its own Locust, sampler and measured window; the sampler reads the
service's counters as differences over the window, so a warm service's earlier runs do not
count in the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from loadlab.runner.loadgen import LoadGenerator
from loadlab.runner.options import RunSpec
from loadlab.runner.runtime_base import Endpoint, Placement, Runtime, RuntimeError_
from loadlab.runs.record import Manifest, Run
from loadlab.serve import ServerConfig


class KeptRuntime(Runtime):
    """``inner``'s services, each kept across runs until another configuration or ``close``."""

    starts_early = False  # the service is started and ready before Locust, then kept

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.name = inner.name
        self.starts = 0  # services actually started (the rest were reused)
        self.reused = 0
        self._key: tuple[ServerConfig, dict[str, str]] | None = None
        self._endpoint: Endpoint | None = None

    def warm(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> bool:
        """Whether ``start(cfg, env)`` would hand back a service that has already served."""
        return (self._endpoint is not None and self._key == self._key_of(cfg, env)
                and self.inner.alive())

    @staticmethod
    def _key_of(cfg: ServerConfig, env: Mapping[str, str] | None
                ) -> tuple[ServerConfig, dict[str, str]]:
        return replace(cfg, port=0), dict(env or {})

    def start(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        if self.warm(cfg, env):
            assert self._endpoint is not None
            self.reused += 1
            return self._endpoint
        self.close()
        try:
            endpoint = self.inner.start(cfg, env)
        except RuntimeError_ as exc:
            # Its ports are chosen free, then bound: on a shared machine another process
            # can take one in between (seen: "metrics port ... is already in use" after
            # seven minutes of a search). Fresh ports, once.
            if "already in use" not in str(exc):
                raise
            endpoint = self.inner.start(cfg, env)
        self._key, self._endpoint = self._key_of(cfg, env), endpoint
        self.starts += 1
        return endpoint

    def stop(self) -> None:
        """Kept: the next run of the same configuration reuses it (``close`` stops it)."""

    def stop_behind(self) -> None:
        """Kept, as ``stop``."""

    def close(self) -> None:
        """Stop the kept service (safe to call twice)."""
        if self._endpoint is not None:
            self.inner.stop()
        self._key = self._endpoint = None

    def settle(self) -> None:
        self.inner.settle()

    def alive(self) -> bool:
        return self.inner.alive()

    def placement(self, cfg: ServerConfig) -> Placement:
        return self.inner.placement(cfg)

    def log_tail(self) -> str:
        return self.inner.log_tail()

    def load_generator(self, spec: RunSpec, out_prefix: Path, endpoint: Endpoint,
                       placement: Placement, wait_ready_s: float = 0.0) -> LoadGenerator:
        return self.inner.load_generator(spec, out_prefix, endpoint, placement, wait_ready_s)

    def run_notes(self) -> Run:
        return self.inner.run_notes()

    def manifest_notes(self) -> Manifest:
        return self.inner.manifest_notes()
