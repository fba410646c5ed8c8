"""How many requests/s one Locust process sustains with the lab's users, against a plain
FastHttpUser (no checks, no lab listeners) and against wrk, on Uvicorn /json (1 worker).

The lab's users run as the web form's Target does (`--target fastapi`), so every request
goes through the exporter with its `target` label; the goal is a capacity of at least
0.95 of the plain FastHttpUser's.

The server runs on one core and the load on the other (taskset); the three generators
take turns within each round and the ratios are reported (the machine is shared).

    .venv/bin/python benchmarks/bench_locust.py [--rounds 3] [--seconds 8] [--users 50]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServerConfig

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
SERVER_CPU, LOAD_CPU = 0, 1
RAMP_S = 2.0


GOAL = 0.95


def locust_rps(url: str, locustfile: Path, seconds: int, users: int, *extra: str,
               env: dict[str, str] | None = None) -> dict:
    """Achieved req/s, and the generator's own capacity: req/s per fully used core, from
    the Locust process's CPU time over the steady part of the run (after the ramp)."""
    with tempfile.TemporaryDirectory(prefix="bench-locust-") as tmp:
        prefix = Path(tmp) / "stats"
        cmd = ["taskset", "-c", str(LOAD_CPU), LOCUST, "-f", str(locustfile), "--headless",
               "--host", url, "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
               "--reset-stats", "--only-summary", "--json-file", str(prefix), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, **(env or {})})
        ps = psutil.Process(proc.pid)
        time.sleep(RAMP_S)
        cpu0, wall0 = sum(ps.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds - RAMP_S - 0.5)
        cpu1, wall1 = sum(ps.cpu_times()[:2]), time.monotonic()
        output, _ = proc.communicate(timeout=60)
        stats = json.loads(prefix.with_suffix(".json").read_text())
    requests = sum(e["num_requests"] for e in stats)
    failures = sum(e["num_failures"] for e in stats)
    span = max(e["last_request_timestamp"] for e in stats) - min(e["start_time"] for e in stats)
    if failures:
        raise SystemExit(f"{locustfile.name}: {failures} failures\n{output[-800:]}")
    rps = requests / span
    busy = (cpu1 - cpu0) / (wall1 - wall0)
    return {"rps": rps, "cpu": busy, "per_core": rps / busy if busy > 0 else float("nan")}


def wrk_rps(url: str, seconds: int, users: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), "wrk", "-t1", f"-c{users}", f"-d{seconds}s",
         f"{url}/json"], capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"wrk output not understood:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        raise SystemExit("needs 2 cores and taskset to keep load and server apart")
    has_wrk = shutil.which("wrk") is not None

    os.sched_setaffinity(0, {SERVER_CPU})  # the service started below inherits this core
    cfg = ServerConfig(framework="fastapi", worker_class="uvicorn", workers=1, port=free_port())
    lab_file, plain_file = ROOT / "locust" / "locustfile.py", ROOT / "benchmarks" / \
        "plain_locustfile.py"
    results: dict[str, list[float]] = {"lab": [], "plain": [], "wrk": []}
    per_core: dict[str, list[float]] = {"lab": [], "plain": []}
    cpu: dict[str, list[float]] = {"lab": [], "plain": []}
    with ServiceProcess(cfg) as service:
        for n in range(args.rounds):
            runs = {
                "lab": locust_rps(service.url, lab_file, args.seconds, args.users,
                                  "--scenario", "json", "--target", "fastapi",
                                  env={"LOADLAB_FASTAPI_URL": service.url}),
                "plain": locust_rps(service.url, plain_file, args.seconds, args.users),
            }
            for key, run in runs.items():
                results[key].append(run["rps"])
                per_core[key].append(run["per_core"])
                cpu[key].append(run["cpu"])
            if has_wrk:
                results["wrk"].append(wrk_rps(service.url, args.seconds, args.users))
            line = "  ".join(f"{k} {v[-1]:7.0f}" for k, v in results.items() if v)
            cores = "  ".join(f"{k} {v[-1]:7.0f}" for k, v in per_core.items())
            print(f"round {n + 1}: achieved {line} req/s | per busy core {cores}", flush=True)

    med = {k: statistics.median(v) for k, v in results.items() if v}
    core = {k: statistics.median(v) for k, v in per_core.items()}
    print(f"\nmedians over {args.rounds} rounds ({args.seconds}s each, {args.users} users/"
          f"connections, server on cpu {SERVER_CPU}, load on cpu {LOAD_CPU}):")
    for key, value in med.items():
        busy = f"  Locust CPU {100 * statistics.median(cpu[key]):3.0f}%" if key in cpu else ""
        print(f"  {key:6s} achieved {value:8.0f} req/s{busy}")
    print(f"  lab / plain achieved = {med['lab'] / med['plain']:.2f}")
    print(f"  generator capacity (req/s per busy core): lab {core['lab']:.0f}, plain "
          f"{core['plain']:.0f}, lab / plain = {core['lab'] / core['plain']:.2f} "
          f"(goal >= {GOAL})")
    paired = [lab / plain for lab, plain in zip(per_core["lab"], per_core["plain"], strict=True)]
    print(f"  capacity ratio lab / plain per round: "
          f"{', '.join(f'{r:.2f}' for r in paired)} (median {statistics.median(paired):.2f})")
    if "wrk" in med:
        print(f"  lab / wrk achieved = {med['lab'] / med['wrk']:.2f}")

if __name__ == "__main__":
    main()
