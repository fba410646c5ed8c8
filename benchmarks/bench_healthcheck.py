"""CPU cost of one Docker healthcheck, per command, counted where it is spent.

    .venv/bin/python benchmarks/bench_healthcheck.py [--image loadlab/fastapi:dev]
        [--seconds 60] [--interval 1s] [--rounds 2]

Runs the FastAPI image (its real server) alone in a throwaway compose project, once per
candidate healthcheck command and once without any, checking every `--interval`. Over
`--seconds` it reads the CPU of the container's cgroup (the check's own process and the
server), of its containerd shim (with the `runc exec` children it reaps) and of dockerd
+ containerd (which schedule each check). Per-check cost = (with - without) / checks
run, counted from `docker events`. The project is torn down after each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _dockercpu import cgroup_cpu_s, daemon_pids, proc_cpu_s, shim_pids

# The same HTTP check by two programs, and a no-op for Docker's own fixed cost: the
# bash script the images carry, and the stdlib Python equivalent they used to run.
PYTHON_CHECK = ("import socket, sys; s = socket.create_connection(('127.0.0.1', 8000), 2); "
                "s.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); "
                "sys.exit(s.recv(64).split()[1][:1] != b'2')")
CANDIDATES: dict[str, list[str] | None] = {
    "none": None,
    "python": ["CMD", "python", "-I", "-S", "-c", PYTHON_CHECK],
    "bash": ["CMD", "bash", "/app/healthcheck.sh", "http://127.0.0.1:8000/healthz"],
    "true": ["CMD", "true"],
}


def compose_file(image: str, test: list[str] | None, interval: str) -> str:
    health = {"disable": True} if test is None else {
        "test": test, "interval": interval, "timeout": "3s", "retries": 3}
    service = {"image": image, "read_only": True, "tmpfs": ["/tmp"], "healthcheck": health,
               "command": ["serve", "fastapi", "--host", "0.0.0.0", "--port", "8000"]}
    return json.dumps({"services": {"app": service}})  # JSON is YAML


def measure(image: str, test: list[str] | None, seconds: float, interval: str) -> dict:
    project = f"loadlab-hc-bench-{os.getpid()}"
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as spec:
        spec.write(compose_file(image, test, interval))
        spec.flush()
        compose = ["docker", "compose", "-p", project, "-f", spec.name]
        try:
            subprocess.run([*compose, "up", "-d"], check=True, capture_output=True,
                           timeout=120)
            cid = subprocess.run([*compose, "ps", "-q", "app"], check=True, text=True,
                                 capture_output=True).stdout.strip()
            time.sleep(5)  # past the server's start-up
            shim, daemons = shim_pids(cid), daemon_pids()
            since = time.time()
            before = (cgroup_cpu_s(cid), sum(map(proc_cpu_s, shim)),
                      sum(map(proc_cpu_s, daemons)))
            time.sleep(seconds)
            after = (cgroup_cpu_s(cid), sum(map(proc_cpu_s, shim)),
                     sum(map(proc_cpu_s, daemons)))
            events = subprocess.run(
                ["docker", "events", "--since", f"{since:.3f}", "--until",
                 f"{time.time():.3f}", "--filter", f"container={cid}", "--filter",
                 "event=exec_start", "--format", "{{.Status}}"],
                check=True, text=True, capture_output=True, timeout=60).stdout
            health = subprocess.run(["docker", "inspect", "--format",
                                     "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                                     cid], text=True, capture_output=True).stdout.strip()
        finally:
            subprocess.run([*compose, "down", "-v", "-t", "2"], capture_output=True,
                           check=False, timeout=120)
    container, shim_s, daemon_s = (a - b for a, b in zip(after, before, strict=True))
    return {"checks": len(events.splitlines()), "container": container, "shim": shim_s,
            "daemons": daemon_s, "health": health or "none"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="loadlab/fastapi:dev")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in CANDIDATES}
    for round_no in range(args.rounds):  # interleaved, so drifting noise hits all alike
        for name, test in CANDIDATES.items():
            figures = measure(args.image, test, args.seconds, args.interval)
            results[name].append(figures)
            print(f"round {round_no + 1} {name}: {figures}", flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    base = {part: statistics.median(r[part] for r in results["none"])
            for part in ("container", "shim", "daemons")}
    print("per check, ms of CPU (median over rounds, minus the run without a check):")
    for name, runs in results.items():
        if name == "none":
            continue
        per = {part: statistics.median((r[part] - base[part]) / max(r["checks"], 1) * 1e3
                                       for r in runs) for part in base}
        print(f"  {name:6} container {per['container']:5.1f}  shim+runc {per['shim']:5.1f}"
              f"  dockerd+containerd {per['daemons']:5.1f}  total {sum(per.values()):5.1f}"
              f"  ({runs[0]['checks']} checks, {runs[-1]['health']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
