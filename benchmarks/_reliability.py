"""What the overload and slow-client benchmarks share: a service pinned to one core, a
thread that times GET requests with a timeout, and small statistics.

Every wait here is bounded: a request that gets no answer within its timeout counts as a
timeout, so a stalled server shows up as figures, never as a hung benchmark.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import math
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadlab.fileio import atomic_write
from loadlab.launch import ServiceProcess, free_port
from loadlab.procs import kill_group
from loadlab.serve import ServerConfig

SERVER_CPU, LOAD_CPU = 0, 1


# Read once: pinned_service moves this process to the load core after starting a service,
# so asking again later would find one core and stop pinning: the next service would
# share the load core with the load.
CPUS = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def can_pin() -> bool:
    return {SERVER_CPU, LOAD_CPU} <= CPUS


@contextlib.contextmanager
def pinned_service(options: dict[str, Any],
                   env: dict[str, str] | None = None) -> Iterator[ServiceProcess]:
    """The service on SERVER_CPU (its workers inherit the affinity); this process, its
    threads started later and its children (the load) on LOAD_CPU."""
    pin = can_pin()
    service = ServiceProcess(ServerConfig(port=free_port(), **options), env=env)
    if pin:
        os.sched_setaffinity(0, {SERVER_CPU})
    try:
        service.start()
    finally:
        if pin:
            os.sched_setaffinity(0, {LOAD_CPU})
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def process_group(argv: list[str], env: dict[str, str], ready_url: str, what: str,
                  ready_s: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """A server started in a process group of its own, ready once ``ready_url`` answers;
    ended by its group (SIGTERM, then SIGKILL), also when the caller fails."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        kill_group(proc.pid, timeout_s=15, proc=proc)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def get(host: str, port: int, path: str, timeout_s: float) -> tuple[float, str | None]:
    """One GET on a fresh connection: (milliseconds, None) on a 200, else the error kind."""
    began = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        reply = conn.getresponse()
        reply.read()
        error = None if reply.status == 200 else f"status {reply.status}"
    except TimeoutError:
        error = "timeout"
    except (OSError, http.client.HTTPException) as exc:
        error = type(exc).__name__
    finally:
        conn.close()
    return (time.monotonic() - began) * 1000, error


@dataclass(frozen=True)
class ProbeStats:
    sent: int
    ok: int
    timeouts: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    longest_gap_s: float  # the longest time without a successful answer

    @property
    def success(self) -> float:
        return self.ok / self.sent if self.sent else math.nan


@dataclass
class Prober:
    """GETs ``path`` at a fixed rate from threads, each bounded by ``timeout_s``, so a stalled
    server cannot slow the probing down; samples are (start, milliseconds, error or None)."""

    host: str
    port: int
    path: str
    interval_s: float
    timeout_s: float
    samples: list[tuple[float, float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Prober:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)

    def _one(self) -> None:
        began = time.monotonic()
        ms, error = get(self.host, self.port, self.path, self.timeout_s)
        self.samples.append((began, ms, error))

    def _loop(self) -> None:
        # At most timeout / interval probes are in flight at once.
        probes: list[threading.Thread] = []
        while not self._stop.wait(self.interval_s):
            probes = [t for t in probes if t.is_alive()]
            probe = threading.Thread(target=self._one, daemon=True)
            probe.start()
            probes.append(probe)
        for probe in probes:
            probe.join(timeout=self.timeout_s + 1)

    def stats(self, t0: float = 0.0, t1: float = math.inf) -> ProbeStats:
        window = sorted((s for s in self.samples if t0 <= s[0] < t1), key=lambda s: s[0])
        ok = [ms for _, ms, err in window if err is None]
        timeouts = sum(1 for _, _, err in window if err == "timeout")
        start = window[0][0] if window else t0
        end = max((began + ms / 1000 for began, ms, _ in window), default=t0)
        marks = [start, *sorted(b + ms / 1000 for b, ms, err in window if err is None), end]
        gap = max((b - a for a, b in itertools.pairwise(marks)), default=0.0)
        return ProbeStats(
            sent=len(window), ok=len(ok), timeouts=timeouts,
            errors=len(window) - len(ok) - timeouts, p50_ms=percentile(ok, 0.5),
            p99_ms=percentile(ok, 0.99), max_ms=max(ok, default=math.nan), longest_gap_s=gap,
        )


def wait_idle(host: str, port: int, limit_s: float = 30.0, quick_ms: float = 100.0) -> float | None:
    """Seconds until /healthz answers within ``quick_ms`` (the server drained its queue),
    or None if it does not within ``limit_s``."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        ms, error = get(host, port, "/healthz", timeout_s=2.0)
        if error is None and ms <= quick_ms:
            return time.monotonic() - began
        time.sleep(0.1)
    return None


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def write_json_atomic(path: Path, payload: Any) -> None:
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
