"""The load generator as the runner drives it, whoever runs it.

Two implement ``LoadGenerator``, neither built on the other: ``locust_driver.LocustProcess``
(Locust as a local headless process) and ``swarm.MasterSwarm`` (the stack's Locust master
and workers, driven over the master's HTTP API). ``LoadFigures`` is what either reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadlab.jsontypes import JsonObject


@dataclass(frozen=True)
class LoadFigures:
    """The client's figures over the measured window (from Locust's own report)."""

    requests: int
    failures: int
    rps: float
    latency_ms: dict[str, float]
    window_s: float
    warmup_excluded: str  # "all" | "rps only" | "none"


class LoadGenerator(Protocol):
    """Started once, polled until its time is up, stopped, then read."""

    own_warmup: bool  # it leaves the warm-up out of its own figures
    peak_cpu_percent: float  # its busiest process, sampled while the load was on

    @property
    def pid(self) -> int | None:
        """The local process group's leader (None when the load runs elsewhere)."""

    @property
    def json_path(self) -> Path:
        """Where its statistics are written on this machine (Locust's JSON report)."""

    def start(self) -> LoadGenerator:
        """Start the load; return at once."""

    def poll(self) -> int | None:
        """None while the load is on, else its exit code."""

    def pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less if the load ends meanwhile."""

    def ramp_seen(self) -> bool:
        """Whether the users are being started (the load has begun)."""

    def warmup_over(self) -> bool:
        """Whether its own warm-up has ended (with ``own_warmup``)."""

    def sample_cpu(self) -> None:
        """Update ``peak_cpu_percent``."""

    def cpu_seconds(self) -> float | None:
        """Its CPU time so far (None: not measurable from here)."""

    def live_rps(self) -> float | None:
        """The current request rate it reports, for the progress line."""

    def stop(self) -> None:
        """Stop the load and let it write its statistics; safe to call twice."""

    def exit_code(self) -> int | None:
        """How the local process ended (negative: a signal); None if unknown."""

    def figures(self) -> LoadFigures | None:
        """The window's figures; None when no statistics were written."""

    def lab_report(self) -> JsonObject | None:
        """The locustfile's own extra figures (HDR latency, its CPU peaks), if any."""

    def log_tail(self) -> str:
        """Its last log lines, for error messages."""


def log_tail(path: Path, lines: int = 3) -> str:
    """A load generator's log's last non-empty lines on one line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(empty log)"
