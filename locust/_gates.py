"""CI gates checked when the test stops, and the lab's report file with the extra figures."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _latency import Latency
from _openmodel import OpenModelStats


@dataclass(frozen=True)
class Gate:
    option: str
    limit: float
    value: float
    passed: bool

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"gate {verdict}: {self.option} {self.limit:g}, measured {self.value:.4g}"


@dataclass(frozen=True)
class Figures:
    """The measured window's figures (after --warmup-s, if given).

    Latencies come from the lab's HDR histogram (µs, 3 significant digits, merged over the
    workers); Locust's own whole-millisecond percentiles only when it recorded nothing.
    """

    requests: int
    failures: int
    rps: float
    error_rate: float
    latency_ms: dict[str, float]
    intended_latency_ms: dict[str, float] | None
    # What completed inside the measured window (from the warm-up's end to the stop being
    # asked for): requests, failures, seconds. Locust's totals above also count what the
    # server finished after the stop (--stop-timeout).
    window: dict[str, float] | None = None

    @classmethod
    def from_stats(cls, total: Any, open_model: OpenModelStats | None,
                   measured: Latency | None = None, window_s: float = 0.0) -> Figures:
        requests, failures = int(total.num_requests), int(total.num_failures)
        window = None
        if measured is not None and window_s > 0:
            window = {"requests": measured.total, "failures": measured.failures,
                      "seconds": round(window_s, 4)}
        if measured is not None and measured.total:
            latency = measured.figures()
        else:
            latency = {
                "p50": float(total.get_response_time_percentile(0.5) or 0),
                "p95": float(total.get_response_time_percentile(0.95) or 0),
                "p99": float(total.get_response_time_percentile(0.99) or 0),
                "max": float(total.max_response_time or 0),
            }
        intended = None
        if open_model is not None:
            intended = open_model.intended.figures()
        rps = float(total.total_rps or 0)
        error_rate = failures / requests if requests else 0.0
        if window is not None and window["requests"]:
            rps = window["requests"] / window["seconds"]
            error_rate = window["failures"] / window["requests"]
        return cls(requests, failures, rps, error_rate, latency, intended, window)

    def gate_latency(self) -> dict[str, float]:
        """Latency gates judge what users see: from the intended send time in the open model."""
        return self.intended_latency_ms or self.latency_ms


def evaluate(options: Any, fig: Figures) -> list[Gate]:
    gates: list[Gate] = []
    lat = fig.gate_latency()
    if options.max_p95_ms is not None:
        gates.append(Gate("--max-p95-ms", options.max_p95_ms, lat["p95"],
                          lat["p95"] <= options.max_p95_ms))
    if options.max_p99_ms is not None:
        gates.append(Gate("--max-p99-ms", options.max_p99_ms, lat["p99"],
                          lat["p99"] <= options.max_p99_ms))
    if options.max_error_rate is not None:
        gates.append(Gate("--max-error-rate", options.max_error_rate, fig.error_rate,
                          fig.error_rate <= options.max_error_rate))
    if options.min_rps is not None:
        gates.append(Gate("--min-rps", options.min_rps, fig.rps, fig.rps >= options.min_rps))
    return gates


def write_atomic(path: str, payload: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def report(options: Any, fig: Figures, gates: list[Gate], open_model: OpenModelStats | None,
           cpu_peaks: dict[str, float], cpu_warned: bool) -> dict[str, Any]:
    return {
        # The lab's workload options (None with a user's own locustfile).
        "scenario": getattr(options, "scenario", None),
        "io_ms": getattr(options, "io_ms", None),
        "cpu_work": getattr(options, "cpu_work", None),
        "model": "open" if open_model is not None else "closed",
        "arrival_rate": options.arrival_rate or None,
        "warmup_s": options.warmup_s,
        "requests": fig.requests,
        "failures": fig.failures,
        "error_rate": fig.error_rate,
        "rps": fig.rps,
        "window": fig.window,
        "latency_ms": fig.latency_ms,
        "latency_source": "hdr" if "mean" in fig.latency_ms else "locust",
        "intended_latency_ms": fig.intended_latency_ms,
        "open_model": None if open_model is None else {
            "sent": open_model.sent, "send_rate": open_model.send_rate,
            "window_s": open_model.window_s, "late_sends": open_model.late,
            "dropped_sends": open_model.dropped, "late_ms": options.late_ms,
        },
        "gates": [asdict(g) for g in gates],
        "gates_passed": all(g.passed for g in gates),
        "locust_cpu_peak_percent": cpu_peaks,
        "locust_cpu_warning": cpu_warned,
    }
