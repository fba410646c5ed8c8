"""Figures of the compose lab: time from `up` to all healthy, idle CPU and memory of the
stack, and how many Locust workers it takes to saturate each service.

    .venv/bin/python benchmarks/bench_compose.py [--idle-s 60] [--step-s 15]

Runs a throwaway compose project (its own name and free ports; torn down at the end,
also on failure), built offline when no registry answers, without Grafana in that case.
Saturation: the /json scenario through the Locust master with 1, 2, 3 workers; a service
is saturated when more workers no longer add requests per second (under 5%) or its CPU
use reaches its limit. The machine is shared and noisy: read the ratios, not the digits.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from stack import SERVICES, Stack, engine_problem, registry_answers


def container_ids(lab: Stack) -> dict[str, str]:
    out = lab.compose("ps", "--quiet").stdout.split()
    names = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.Id}}", *out],
                           capture_output=True, text=True, check=True).stdout
    return {name.strip("/"): cid for name, cid in (line.split() for line in names.splitlines())}


def cpu_ns(cid: str) -> int:
    """Total CPU time of a container's cgroup (v1 cpuacct, or v2 cpu.stat)."""
    for path in glob.glob(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"):
        return int(Path(path).read_text())
    for path in glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cpu.stat", recursive=True):
        usage = dict(line.split() for line in Path(path).read_text().splitlines())
        return int(usage["usage_usec"]) * 1000
    raise FileNotFoundError(f"no cgroup found for container {cid[:12]}")


def idle_figures(lab: Stack, seconds: float) -> dict[str, dict[str, float]]:
    ids = container_ids(lab)
    before = {name: cpu_ns(cid) for name, cid in ids.items()}
    time.sleep(seconds)
    after = {name: cpu_ns(cid) for name, cid in ids.items()}
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}",
                            *ids.values()], capture_output=True, text=True, check=True).stdout
    memory = {}
    for line in stats.splitlines():
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number, unit = float(used[:-3]), used[-3:]
        memory[row["Name"]] = number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
    return {name: {"cpu_percent_of_a_core": 100 * (after[name] - before[name]) / 1e9 / seconds,
                   "memory_mib": memory.get(name, 0.0)} for name in ids}


def swarm_rps(lab: Stack, service: str, users: int, seconds: float) -> tuple[float, float]:
    """(requests/s seen by Locust, cores the service used) over a bounded swarm."""
    lab.locust("/swarm", {"user_count": str(users), "spawn_rate": str(users),
                          "host": f"http://{service}:8000", "scenario": "json"})
    try:
        time.sleep(4)  # spawn and warm up
        start_req = sum(s["num_requests"] for s in lab.locust("/stats/requests")["stats"]
                        if s["name"] == "Aggregated")
        cpu_expr = f'sum(loadlab_cpu_usage_seconds_total{{service="{service}"}})'
        start_cpu, started = sum(lab.query(cpu_expr).values()), time.monotonic()
        time.sleep(seconds)
        end_req = sum(s["num_requests"] for s in lab.locust("/stats/requests")["stats"]
                      if s["name"] == "Aggregated")
        time.sleep(3)  # one more scrape
        end_cpu, elapsed = sum(lab.query(cpu_expr).values()), time.monotonic() - started
    finally:
        lab.locust("/stop", {})
    lab.wait_for("stopped", lambda: lab.locust("/stats/requests")["state"] == "stopped", 90)
    return (end_req - start_req) / seconds, (end_cpu - start_cpu) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--step-s", type=float, default=15)
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        print(f"bench_compose: {problem}", file=sys.stderr)
        return 2
    lab = Stack(project="loadlab-bench", tag="bench", offline=not registry_answers(),
                env={"SCRAPE_INTERVAL": "5s", "HEALTHCHECK_INTERVAL": "5s",
                     "FLASK_CPUS": "1", "FLASK_WORKERS": "3", "LOCUST_WORKERS": "1"})
    try:
        lab.build()
        lab.up()
        print(f"up --wait to all healthy (images built, "
              f"{'without Grafana' if lab.offline else 'all services'}): {lab.up_seconds:.1f} s")
        time.sleep(15)  # let start-up work settle
        idle = idle_figures(lab, args.idle_s)
        total_cpu = sum(v["cpu_percent_of_a_core"] for v in idle.values())
        total_mem = sum(v["memory_mib"] for v in idle.values())
        for name, figures in sorted(idle.items()):
            print(f"  idle {name}: {figures['cpu_percent_of_a_core']:.2f}% of a core, "
                  f"{figures['memory_mib']:.0f} MiB")
        print(f"idle stack: {total_cpu:.2f}% of one core ({total_cpu / 2:.2f}% of this "
              f"2-core machine), {total_mem:.0f} MiB")
        for service in ("fastapi", "flask"):
            previous = 0.0
            for workers in (1, 2, 3):
                lab.compose("up", "--detach", "--wait", "--scale",
                            f"locust-worker={workers}", *SERVICES)
                rps, cores = swarm_rps(lab, service, args.users, args.step_s)
                gain = (rps / previous - 1) if previous else float("nan")
                print(f"{service}: {workers} Locust worker(s): {rps:.0f} req/s, service "
                      f"CPU {cores:.2f} of 1 core, gain over one fewer worker {gain:+.0%}")
                previous = rps
    finally:
        lab.down()
        left = lab.leftovers()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
