"""Watch this Locust process's own CPU use and warn when it nears a full core.

A load generator at 100% CPU measures itself, not the server. Locust's own warning
samples every 10 s (first sample 0), so it never fires in short runs: sample every second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gevent
import psutil

WARN_PERCENT = 90.0
INTERVAL_S = 1.0
log = logging.getLogger("loadlab")


@dataclass
class CpuWatch:
    label: str
    warn_percent: float = WARN_PERCENT
    peak_percent: float = 0.0
    last_percent: float = 0.0
    warned: bool = False
    _greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def reset(self) -> None:
        self.peak_percent = self.last_percent = 0.0
        self.warned = False

    def _loop(self) -> None:
        proc = psutil.Process()
        proc.cpu_percent(None)  # the first reading is always 0: prime it
        while True:
            gevent.sleep(INTERVAL_S)
            self.last_percent = proc.cpu_percent(None)
            self.peak_percent = max(self.peak_percent, self.last_percent)
            if self.last_percent > self.warn_percent and not self.warned:
                self.warned = True
                log.warning(
                    "loadlab: %s at %.0f%% CPU: the load generator may be what limits this "
                    "measurement; add workers (--processes N) or users on other cores",
                    self.label, self.last_percent,
                )
