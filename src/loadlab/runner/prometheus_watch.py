"""Whether the compose stack's Prometheus was there during a run, and when it was not.

The runner never needs Prometheus for its figures: it scrapes the service's own /metrics.
But a run without Prometheus leaves a hole in the dashboards and in every later query, so
the run records the hole. A background thread asks Prometheus's ``/-/ready`` once a
second (a stopped Prometheus refuses the connection at once; one still starting answers
503) and keeps the stretches of time it did not answer ready.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass

from loadlab.runs.record import Run

CHECK_INTERVAL_S = 1.0
CHECK_TIMEOUT_S = 1.0
MAX_WATCH_S = 24 * 3600.0  # a bound of its own, should nobody call stop()


@dataclass
class Gap:
    from_s: float
    to_s: float
    recovered: bool = False


def is_ready(base_url: str, timeout_s: float = CHECK_TIMEOUT_S) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=timeout_s) as reply:
            return 200 <= reply.status < 300
    except Exception:  # refused, reset, timed out, 503 while starting: not ready
        return False


class PrometheusWatch:
    """Checks ``/-/ready`` from ``start()`` to ``stop()``; ``record()`` says what it saw.

    ``base_url`` None means Prometheus could not even be found (not running in the stack):
    the whole run is then one gap.
    """

    def __init__(self, base_url: str | None, why_missing: str = "",
                 interval_s: float = CHECK_INTERVAL_S) -> None:
        self.base_url = base_url
        self.why_missing = why_missing
        self.interval_s = interval_s
        self.checks = 0
        self.failed_checks = 0
        self.gaps: list[Gap] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> PrometheusWatch:
        self._began = time.monotonic()
        self.check()  # before the run: is it there at all?
        if self.base_url is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=CHECK_TIMEOUT_S + 2)

    def _elapsed(self) -> float:
        return time.monotonic() - self._began

    def check(self) -> bool:
        ready = self.base_url is not None and is_ready(self.base_url)
        now = self._elapsed()
        with self._lock:
            self.checks += 1
            open_gap = self.gaps[-1] if self.gaps and not self.gaps[-1].recovered else None
            if ready:
                if open_gap is not None:
                    open_gap.to_s, open_gap.recovered = now, True
            else:
                self.failed_checks += 1
                if open_gap is None:
                    self.gaps.append(Gap(now, now))
                else:
                    open_gap.to_s = now
        return ready

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s) and self._elapsed() < MAX_WATCH_S:
            self.check()

    def record(self, service: str) -> Run:
        """The run's ``prometheus`` field, and ``notes`` (one line) when there was a gap."""
        self.check()  # after the run: is it (still) there?
        with self._lock:
            gaps = [Gap(g.from_s, g.to_s, g.recovered) for g in self.gaps]
            checks, failed = self.checks, self.failed_checks
        end = self._elapsed()
        unavailable = sum((g.to_s if g.recovered else end) - g.from_s for g in gaps)
        fields: Run = {"prometheus": {
            "url": self.base_url, "available": not gaps, "checks": checks,
            "failed_checks": failed, "unavailable_s": round(unavailable, 1),
            "gaps": [{"from_s": round(g.from_s, 1),
                      "to_s": round(g.to_s if g.recovered else end, 1),
                      "recovered": g.recovered} for g in gaps],
        }}
        if gaps:
            fields["notes"] = [self.describe(gaps, end, unavailable, service)]
        return fields

    def describe(self, gaps: list[Gap], end: float, unavailable: float, service: str) -> str:
        if self.base_url is None:
            what = f"Prometheus was not running in the stack ({self.why_missing})"
        else:
            spans = ", ".join(
                f"{g.from_s:.0f}-{g.to_s:.0f} s" if g.recovered else f"{g.from_s:.0f} s-end"
                for g in gaps)
            what = (f"Prometheus was unavailable for {unavailable:.0f} s of this {end:.0f} s "
                    f"run ({spans})")
        return (f"{what}: its data has a gap; the server figures come from the runner's "
                f"direct scrape of {service}'s /metrics")
