"""Each variant driven past saturation with the open model: does it keep answering
/healthz, does any process grow, does the lab report errors instead of hanging?

For each scenario and variant: a fresh service on one core, its capacity measured with
wrk (closed loop, a few seconds), then Locust's open model (``--arrival-rate``) at 0.5x,
1x, 2x and 4x of it, a few seconds each. Meanwhile a thread probes /healthz (2 s timeout)
and another samples the RSS and PSS of the service's process tree.

    .venv/bin/python benchmarks/bench_overload.py [--step-s 4] [--scenarios io,cpu]
        [--variants ...] [--factors 0.5,1,2,4] [--json results/overload.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _reliability import (
    Prober,
    ProbeStats,
    load_average,
    pinned_service,
    wait_idle,
    write_json_atomic,
)

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = ROOT / "locust" / "locustfile.py"

# name -> (serve options, requests one worker tree serves at once; 0: an event loop)
VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "uvicorn-1": ({"framework": "fastapi", "worker_class": "uvicorn", "workers": 1}, 0),
    "sync-2": ({"framework": "flask", "worker_class": "sync", "workers": 2}, 2),
    "gthread-2x8": ({"framework": "flask", "worker_class": "gthread", "workers": 2,
                     "threads": 8}, 16),
    "gevent-1": ({"framework": "flask", "worker_class": "gevent", "workers": 1}, 0),
}
SCENARIOS = {
    "io": ("/io?ms=50", ["--scenario", "io", "--io-ms", "50"]),
    "cpu": ("/cpu?work=20", ["--scenario", "cpu", "--cpu-work", "20"]),
}
WARMUP_S = 1.5  # shorter: the users' first connections spoil the figures
QUEUE_S = 0.25      # Locust users = rate x this: the most requests in flight at once
MAX_USERS = 1000
HEALTH_TIMEOUT_S = 2.0


@dataclass
class MemorySampler:
    """Summed RSS and PSS (MB) of the service's process tree, every ``interval_s``."""

    pid: int
    interval_s: float = 0.5
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        rss = pss = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    mem = proc.memory_full_info()
                    rss += mem.rss
                    pss += getattr(mem, "pss", 0.0)
        self.samples.append((time.monotonic(), rss / 2**20, pss / 2**20))

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def peak(self, t0: float, t1: float) -> tuple[float, float]:
        window = [s for s in self.samples if t0 <= s[0] <= t1] or self.samples[-1:]
        return max(s[1] for s in window), max(s[2] for s in window)


def wrk_capacity(url: str, connections: int, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"wrk output not understood: {out[-300:]}")
    return float(match.group(1))


def run_locust(url: str, args: list[str], rate: float, users: int, seconds: int,
               tmp: Path) -> dict[str, Any]:
    """One open-model step; killed by process group if it outlives its time."""
    report, log = tmp / "step.json", tmp / "locust.log"
    report.unlink(missing_ok=True)
    cmd = [LOCUST, "-f", str(LOCUSTFILE), "--headless", "--host", url, *args,
           "--arrival-rate", f"{rate:.0f}", "-u", str(users), "-r", str(users),
           "-t", f"{seconds}s", "--warmup-s", str(WARMUP_S), "--only-summary",
           "--loadlab-report", str(report)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            return {"error": "locust did not stop in time (killed)"}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if not report.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-2:]
        return {"error": f"locust exit {proc.returncode}: {' | '.join(tail)}"}
    data: dict[str, Any] = json.loads(report.read_text())
    return data


@dataclass
class Step:
    factor: float
    target_rps: float
    users: int
    requests: int = 0
    achieved_rps: float = math.nan
    intended_p50_ms: float = math.nan
    intended_p99_ms: float = math.nan
    failures: int = 0
    sent_p99_ms: float = math.nan
    locust_cpu_percent: float = math.nan
    health: ProbeStats | None = None
    rss_peak_mb: float = math.nan
    pss_peak_mb: float = math.nan
    recovery_s: float | None = None
    error: str | None = None


def run_variant(name: str, scenario: str, factors: list[float], step_s: int,
                tmp: Path) -> dict[str, Any]:
    options, slots = VARIANTS[name]
    path, locust_args = SCENARIOS[scenario]
    with pinned_service(options) as service:
        host, port = service.cfg.host, service.cfg.port
        memory = MemorySampler(service.pid)
        memory.sample()
        baseline_pss = memory.samples[-1][2]
        sampler = threading.Thread(target=memory.run, daemon=True)
        sampler.start()
        # Enough connections to saturate, few enough that a queue left behind drains fast.
        connections = 4 * slots if slots else 256
        capacity = wrk_capacity(f"{service.url}{path}", connections, seconds=2)
        wait_idle(host, port)
        steps: list[Step] = []
        windows: list[tuple[float, float]] = []
        with Prober(host, port, "/healthz", interval_s=0.2,
                    timeout_s=HEALTH_TIMEOUT_S) as health:
            time.sleep(0.6)
            idle = health.stats()
            for factor in factors:
                rate = max(1.0, factor * capacity)
                users = min(MAX_USERS, max(10, math.ceil(rate * QUEUE_S)))
                step = Step(factor, rate, users)
                t0 = time.monotonic()
                data = run_locust(service.url, locust_args, rate, users, step_s, tmp)
                t1 = time.monotonic()
                if "error" in data:
                    step.error = data["error"]
                else:
                    intended = data.get("intended_latency_ms") or {}
                    # Answers over the measured window (Locust's own rps divides by the
                    # span of its timestamps, which misleads when few requests complete).
                    window_s = (data.get("open_model") or {}).get("window_s") or math.nan
                    step.requests = data["requests"]
                    step.achieved_rps = data["requests"] / window_s
                    step.intended_p50_ms = intended.get("p50", math.nan)
                    step.intended_p99_ms = intended.get("p99", math.nan)
                    step.failures = data["failures"]
                    step.sent_p99_ms = data["latency_ms"]["p99"]
                    step.locust_cpu_percent = max(
                        data.get("locust_cpu_peak_percent", {}).values(), default=math.nan)
                step.rss_peak_mb, step.pss_peak_mb = memory.peak(t0, t1)
                step.recovery_s = wait_idle(host, port)
                steps.append(step)
                windows.append((t1 - step_s + WARMUP_S, t1))  # Locust's measured window
        # The prober has joined its probes: each has its answer or its timeout.
        for step, (w0, w1) in zip(steps, windows, strict=True):
            step.health = health.stats(w0, w1)
        memory._stop.set()
        sampler.join(timeout=5)
        memory.sample()
        final_pss = memory.samples[-1][2]
        alive = service.proc is not None and service.proc.poll() is None
    return {"variant": name, "scenario": scenario, "capacity_rps": capacity,
            "wrk_connections": connections, "baseline_pss_mb": baseline_pss,
            "final_pss_mb": final_pss, "idle_health": asdict(idle), "alive": alive,
            "steps": [asdict(s) for s in steps]}


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def intended(step: dict[str, Any], q: str) -> str:
    """The intended-time latency; "behind" when every send in the measured window was
    a slot from the warm-up: the schedule fell further behind than the warm-up."""
    value = step[f"intended_{q}_ms"]
    if step["error"]:
        return "-"
    return "behind" if not value or math.isnan(value) else f"{value:.0f}"


def print_result(res: dict[str, Any]) -> None:
    print(f"\n{res['variant']} {res['scenario']}: capacity {res['capacity_rps']:.0f} req/s "
          f"(wrk, {res['wrk_connections']} connections); PSS idle "
          f"{res['baseline_pss_mb']:.0f} MB, after {res['final_pss_mb']:.0f} MB; "
          f"idle /healthz p99 {fmt(res['idle_health']['p99_ms'], '.1f')} ms", flush=True)
    print("  x    target  achieved  ach/tgt  p99 sent  p50 int  p99 int  fail  "
          "health ok  p99 ms  gap s  PSS MB  RSS MB  recover s  locust cpu")
    for s in res["steps"]:
        h = s["health"] or {}
        ratio = s["achieved_rps"] / s["target_rps"] if s["target_rps"] else math.nan
        print(f"  {s['factor']:<4g} {s['target_rps']:7.0f} {fmt(s['achieved_rps']):>9} "
              f"{fmt(ratio, '.2f'):>8} {fmt(s['sent_p99_ms']):>9} {intended(s, 'p50'):>8} "
              f"{intended(s, 'p99'):>8} {s['failures']:5d} "
              f"{h.get('ok', 0):4d}/{h.get('sent', 0):<4d} "
              f"{fmt(h.get('p99_ms'), '.0f'):>7} {fmt(h.get('longest_gap_s'), '.1f'):>6} "
              f"{s['pss_peak_mb']:7.0f} {s['rss_peak_mb']:7.0f} "
              f"{fmt(s['recovery_s'], '.1f'):>9} {fmt(s['locust_cpu_percent'])}%"
              + (f"  ERROR {s['error']}" if s["error"] else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-s", type=int, default=3,
                        help="seconds per step, 1.5 s of them warm-up")
    parser.add_argument("--scenarios", default="io,cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--factors", default="0.5,1,2,4")
    parser.add_argument("--json", type=Path, help="write the figures here (atomically)")
    args = parser.parse_args()
    scenarios, variants = args.scenarios.split(","), args.variants.split(",")
    unknown = [x for x in scenarios if x not in SCENARIOS] + \
        [x for x in variants if x not in VARIANTS]
    if unknown:
        parser.error(f"unknown scenario or variant: {', '.join(unknown)}")
    try:
        factors = [float(f) for f in args.factors.split(",")]
    except ValueError:
        parser.error(f"--factors: numbers separated by commas, got {args.factors!r}")
    if not WARMUP_S < args.step_s <= 60:
        parser.error("--step-s must be 2-60")
    if not shutil.which("wrk"):
        raise SystemExit("bench_overload: needs wrk (apt-get install wrk) to measure capacity")

    began, load_before = time.monotonic(), load_average()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        for scenario in scenarios:
            for name in variants:
                res = run_variant(name, scenario, factors, args.step_s, Path(tmp))
                print_result(res)
                results.append(res)
    summary(results)
    took = time.monotonic() - began
    print(f"\nload average before {load_before}, after {load_average()}; took {took:.0f} s")
    if args.json:
        write_json_atomic(args.json, {"load_average": [load_before, load_average()],
                                      "step_s": args.step_s, "results": results})


def summary(results: list[dict[str, Any]]) -> None:
    print("\nsummary (steps at 2x and above):")
    for res in results:
        over = [s for s in res["steps"] if s["factor"] >= 2 and s["health"]]
        probes = sum(s["health"]["sent"] for s in over)
        failed = sum(s["health"]["sent"] - s["health"]["ok"] for s in over)
        p99s = [s["health"]["p99_ms"] for s in over if not math.isnan(s["health"]["p99_ms"])]
        ratios = [s["achieved_rps"] / s["target_rps"] for s in over]
        growth = max(s["pss_peak_mb"] for s in res["steps"]) / res["baseline_pss_mb"]
        print(f"  {res['variant']:12s} {res['scenario']:4s} achieved/target median "
              f"{fmt(statistics.median(ratios) if ratios else math.nan, '.2f')}; /healthz "
              f"failed {failed}/{probes}, p99 up to {fmt(max(p99s, default=math.nan))} ms; "
              f"PSS peak/idle {growth:.2f}, after/idle "
              f"{res['final_pss_mb'] / res['baseline_pss_mb']:.2f}; "
              f"alive {res['alive']}")


if __name__ == "__main__":
    main()
