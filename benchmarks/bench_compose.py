"""Figures of the compose lab: time from `up` to all healthy, idle CPU and memory of the
stack, and how many Locust workers it takes to saturate each service.

    .venv/bin/python benchmarks/bench_compose.py [--rounds 2] [--idle-s 60]
        [--env KEY=VALUE ...] [--no-saturation] [--step-s 15]

Runs a throwaway compose project (its own name and free ports; torn down at the end,
also on failure) with the compose file's own defaults (no .env) unless `--env` says
otherwise, built offline when no registry answers, without Grafana in that case. Each
round starts the stack (`up --wait` timed), lets start-up settle, then counts idle CPU
over `--idle-s`: every container's cgroup (its processes and the healthcheck processes
run inside it), Docker's side of the healthchecks (each container's containerd shim with
the `runc` children it reaps, dockerd and containerd) and the checks run (`docker
events`). The figures printed last are medians over the rounds.
Saturation (last round only): the /json scenario through the Locust master with 1, 2, 3
workers; a service is saturated when more workers no longer add requests per second
(under 5%) or its CPU use reaches its limit. The machine is shared and noisy: read the
ratios, not the digits.
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
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _dockercpu import cgroup_cpu_s, daemon_pids, proc_cpu_s, shim_pids
from support.compose_project import ROOT, SERVICES, Stack, engine_problem, registry_answers

# The e2e's fast settings, which the bench drops to measure the compose file's defaults.
E2E_ONLY = ("SCRAPE_INTERVAL", "HEALTHCHECK_INTERVAL", "LOCUST_WORKERS", "FASTAPI_CPUS",
            "FLASK_CPUS", "FLASK_WORKERS")
DOCKER = "docker (shims+runc, dockerd, containerd)"


def container_ids(lab: Stack) -> dict[str, str]:
    out = lab.compose("ps", "--quiet").stdout.split()
    names = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.Id}}", *out],
                           capture_output=True, text=True, check=True).stdout
    return {name.strip("/"): cid for name, cid in (line.split() for line in names.splitlines())}


def memory_mib(ids: dict[str, str]) -> dict[str, float]:
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}",
                            *ids.values()], capture_output=True, text=True, check=True).stdout
    memory = {}
    for line in stats.splitlines():
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number, unit = float(used[:-3]), used[-3:]
        memory[row["Name"]] = number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
    return memory


def health_checks(since: float, until: float, ids: dict[str, str]) -> int:
    """Healthchecks run in the window: each is an exec_start event of a container."""
    filters = [arg for cid in ids.values() for arg in ("--filter", f"container={cid}")]
    out = subprocess.run(["docker", "events", "--since", f"{since:.3f}", "--until",
                          f"{until:.3f}", "--filter", "event=exec_start", *filters,
                          "--format", "{{.ID}}"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return len(out.splitlines())


def idle_figures(lab: Stack, seconds: float) -> dict[str, float]:
    """Per container and for Docker's side: % of one core over the window; plus counts."""
    ids = container_ids(lab)
    docker_pids = daemon_pids() + [pid for cid in ids.values() for pid in shim_pids(cid)]

    def sample() -> dict[str, float]:
        cpu = {name: cgroup_cpu_s(cid) for name, cid in ids.items()}
        return {**cpu, DOCKER: sum(map(proc_cpu_s, docker_pids))}

    since, before = time.time(), sample()
    time.sleep(seconds)
    after, until = sample(), time.time()
    elapsed = until - since
    figures = {name: 100 * (after[name] - before[name]) / elapsed for name in before}
    figures["checks per minute"] = 60 * health_checks(since, until, ids) / elapsed
    figures.update({f"{name} MiB": mib for name, mib in memory_mib(ids).items()})
    return figures


def print_idle(figures: dict[str, float], label: str) -> None:
    containers = {k: v for k, v in figures.items() if "MiB" not in k and k != DOCKER
                  and k != "checks per minute"}
    for name, value in sorted(containers.items()):
        print(f"  {name}: {value:.2f}% of a core, {figures.get(name + ' MiB', 0):.0f} MiB")
    in_containers = sum(containers.values())
    print(f"  {DOCKER}: {figures[DOCKER]:.2f}% of a core; "
          f"{figures['checks per minute']:.1f} healthchecks a minute")
    memory = sum(v for k, v in figures.items() if k.endswith(" MiB"))
    print(f"{label}: containers {in_containers:.2f}% of one core, with Docker's side "
          f"{in_containers + figures[DOCKER]:.2f}%, {memory:.0f} MiB")


def without_healthchecks(lab: Stack, workdir: str) -> None:
    """For a floor: every healthcheck off, through an override file."""
    override = Path(workdir) / "no-healthchecks.yml"
    services: dict[str, dict] = {name: {"healthcheck": {"disable": True}} for name in SERVICES}
    services["locust-worker"]["depends_on"] = {"locust-master": {"condition": "service_started"}}
    override.write_text(json.dumps({"services": services}))  # JSON is YAML
    lab.env["COMPOSE_FILE"] = f"{ROOT / 'docker-compose.yml'}:{override}"


def up_unchecked(lab: Stack) -> None:
    """`up --wait` refuses containers without a check: wait for the ports to answer."""
    started = time.monotonic()
    lab.compose("up", "--detach", *(SERVICES if lab.offline else ()))
    for port in ("FASTAPI_PORT", "FLASK_PORT", "LOCUST_PORT", "PROMETHEUS_PORT"):
        lab.wait_for(port, lambda port=port: answers(lab.url(port) + "/metrics"), 120)
    lab.up_seconds = time.monotonic() - started


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--settle-s", type=float, default=20)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a compose variable for this run (COMPOSE_FILE adds overrides)")
    parser.add_argument("--no-saturation", action="store_true")
    parser.add_argument("--no-healthchecks", action="store_true",
                        help="turn every healthcheck off: what the processes alone cost")
    parser.add_argument("--step-s", type=float, default=15)
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        print(f"bench_compose: {problem}", file=sys.stderr)
        return 2
    lab = Stack(project=f"loadlab-bench-{os.getpid()}", tag="bench",
                offline=not registry_answers())
    for key in E2E_ONLY:
        lab.env.pop(key)
    lab.env.update(item.split("=", 1) for item in args.env)
    ups: list[float] = []
    idles: list[dict[str, float]] = []
    workdir = tempfile.TemporaryDirectory(prefix="loadlab-bench-")
    if args.no_healthchecks:
        without_healthchecks(lab, workdir.name)
    try:
        lab.build()
        for round_no in range(1, args.rounds + 1):
            up_unchecked(lab) if args.no_healthchecks else lab.up()
            ups.append(lab.up_seconds)
            print(f"round {round_no}: up --wait to all healthy (images built, "
                  f"{'without Grafana' if lab.offline else 'all services'}): "
                  f"{lab.up_seconds:.1f} s", flush=True)
            time.sleep(args.settle_s)  # start-up work done, first scrapes past
            idles.append(idle_figures(lab, args.idle_s))
            print_idle(idles[-1], f"round {round_no} idle")
            if round_no < args.rounds:
                lab.compose("down", "--volumes", "--timeout", "5", timeout=180)
        print(f"\nmedians over {args.rounds} rounds, load average now "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, settings "
              f"{dict(item.split('=', 1) for item in args.env) or 'compose defaults'}")
        print(f"up --wait to all healthy: {statistics.median(ups):.1f} s "
              f"(rounds: {', '.join(f'{u:.1f}' for u in ups)})")
        keys = set.intersection(*(set(idle) for idle in idles))
        print_idle({k: statistics.median(idle[k] for idle in idles) for k in keys}, "idle")
        if not args.no_saturation:
            saturation(lab, args.users, args.step_s)
    finally:
        lab.down()
        left = lab.leftovers()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
        workdir.cleanup()
    return 0


def saturation(lab: Stack, users: int, step_s: float) -> None:
    for service in ("fastapi", "flask"):
        previous = 0.0
        for workers in (1, 2, 3):
            lab.compose("up", "--detach", "--wait", "--scale",
                        f"locust-worker={workers}", *SERVICES)
            rps, cores = swarm_rps(lab, service, users, step_s)
            gain = (rps / previous - 1) if previous else float("nan")
            print(f"{service}: {workers} Locust worker(s): {rps:.0f} req/s, service "
                  f"CPU {cores:.2f} of 1 core, gain over one fewer worker {gain:+.0%}")
            previous = rps


if __name__ == "__main__":
    sys.exit(main())
