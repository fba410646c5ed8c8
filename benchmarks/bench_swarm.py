"""Swarm figures: `stack deploy` to every task healthy, scaling Locust workers 1 -> 3, and
whether the swarm's networking costs throughput against compose's, side by side.

    .venv/bin/python benchmarks/bench_swarm.py [--rounds 2] [--seconds 8]
        [--connections 32] [--env KEY=VALUE ...]

Makes a one-node swarm on loopback (refused on an engine already in a swarm) and a
throwaway compose project, both of FastAPI at the compose file's limits (cpus 1), images
from the offline build. wrk (Debian's, bind-mounted into a container where it must run
inside a network) loads `/json` over four paths, alternated round by round:

- host -> compose's published port (127.0.0.1, docker-proxy),
- host -> the swarm's host-mode published port,
- a container on compose's bridge network -> the service by name,
- a swarm task on the stack's overlay network -> the service by name (`tasks.` DNS).

Every load is bounded (`--seconds`) and goes to loopback or the lab's own networks. All of
it is removed at the end, also on failure: stack, swarm, compose project, images.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.compose_project import Stack as ComposeProject
from support.compose_project import engine_problem

from loadlab.launch import free_port
from loadlab.stack import Stack, swarm_state

ROOT = Path(__file__).resolve().parents[1]
WRK = "/usr/bin/wrk"
LUAJIT = Path("/lib/x86_64-linux-gnu/libluajit-5.1.so.2")
BASE = "loadlab/python-base:bookworm"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def rps(output: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise RuntimeError(f"wrk printed no rate: {output[-400:]}")
    return float(match[1])


def wrk_args(url: str, seconds: int, connections: int) -> list[str]:
    return ["-t1", f"-c{connections}", f"-d{seconds}s", f"{url}/json"]


def wrk_mounts() -> list[str]:
    return ["-v", f"{WRK}:/usr/local/bin/wrk:ro",
            "-v", f"{LUAJIT.resolve()}:/usr/lib/x86_64-linux-gnu/{LUAJIT.name}:ro"]


def host_load(url: str, seconds: int, connections: int) -> float:
    done = subprocess.run([WRK, *wrk_args(url, seconds, connections)], capture_output=True,
                          text=True, timeout=seconds + 30, check=False)
    return rps(done.stdout)


def bridge_load(network: str, seconds: int, connections: int) -> float:
    done = docker("run", "--rm", "--network", network, *wrk_mounts(), BASE, "wrk",
                  *wrk_args("http://fastapi:8000", seconds, connections),
                  timeout=seconds + 60)
    return rps(done.stdout)


def overlay_load(stack: Stack, seconds: int, connections: int) -> float:
    name = f"{stack.name}_wrk"
    mounts = [f"type=bind,source={WRK},target=/usr/local/bin/wrk,readonly",
              f"type=bind,source={LUAJIT.resolve()},target=/usr/lib/x86_64-linux-gnu/"
              f"{LUAJIT.name},readonly"]
    created = docker("service", "create", "--detach", "--name", name, "--mode",
                     "replicated-job", "--network", f"{stack.name}_default",
                     "--label", f"com.docker.stack.namespace={stack.name}",
                     *[arg for m in mounts for arg in ("--mount", m)], BASE, "wrk",
                     *wrk_args("http://fastapi:8000", seconds, connections))
    if created.returncode != 0:
        raise RuntimeError(created.stderr)
    try:
        deadline = time.monotonic() + seconds + 90
        while time.monotonic() < deadline:
            state = docker("service", "ps", "--format", "{{.CurrentState}}", name).stdout
            if state.startswith(("Complete", "Failed")):
                break
            time.sleep(1)
        return rps(docker("service", "logs", "--raw", name).stdout)
    finally:
        docker("service", "rm", name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        print(f"bench_swarm: {problem}", file=sys.stderr)
        return 2
    if swarm_state() != "inactive":
        print("bench_swarm: this engine is already in a swarm; refusing to touch it",
              file=sys.stderr)
        return 2
    extra = dict(item.split("=", 1) for item in args.env)
    tag = f"bench-{os.getpid()}"
    swarm_ports = {k: str(free_port()) for k in ("FASTAPI_PORT", "LOCUST_PORT",
                                                 "LOCUST_MASTER_PORT", "PROMETHEUS_PORT")}
    stack = Stack(name=f"llbench{os.getpid()}", env={
        "LOADLAB_TAG": tag, "LOCUST_WEB_PASSWORD": secrets.token_urlsafe(12),
        "LOCUST_WORKERS": "1", **swarm_ports, **extra},
        env_file_list=[str(ROOT / ".offline" / "images.env")])
    project = ComposeProject(tag=tag, offline=True, env={"LOCUST_WORKERS": "1", **extra})
    had_gwbridge = docker("network", "inspect", "docker_gwbridge").returncode == 0
    inited = False
    try:
        project.build()
        assert docker("swarm", "init", "--advertise-addr", "127.0.0.1").returncode == 0
        inited = True
        deploy = stack.deploy(["fastapi", "locust-master", "locust-worker", "prometheus"])
        scale = stack.scale("locust-worker", 3)
        project.compose("up", "--detach", "--wait", "fastapi", timeout=300)
        paths = {
            "host -> compose published port": lambda: host_load(
                project.url("FASTAPI_PORT"), args.seconds, args.connections),
            "host -> swarm host-mode port": lambda: host_load(
                f"http://127.0.0.1:{swarm_ports['FASTAPI_PORT']}", args.seconds,
                args.connections),
            "compose bridge network, by name": lambda: bridge_load(
                f"{project.project}_default", args.seconds, args.connections),
            "swarm overlay network, by name": lambda: overlay_load(
                stack, args.seconds, args.connections),
        }
        figures: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(args.rounds):
            order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
            for name in order:
                figures[name].append(paths[name]())
                print(f"round {round_ + 1}: {name}: {figures[name][-1]:,.0f} req/s",
                      flush=True)
        print(f"\nstack deploy -> every task healthy: {deploy:.1f} s "
              f"(HEALTHCHECK_INTERVAL={stack.env.get('HEALTHCHECK_INTERVAL', '20s')})")
        print(f"scale locust-worker 1 -> 3, every task healthy: {scale:.1f} s")
        base = statistics.median(figures["host -> compose published port"])
        inside = statistics.median(figures["compose bridge network, by name"])
        for name, values in figures.items():
            ref = inside if "network" in name else base
            print(f"{name}: median {statistics.median(values):,.0f} req/s "
                  f"({statistics.median(values) / ref:.2f} of compose's same path)")
    finally:
        project.down()
        stack.remove()
        if inited:
            docker("swarm", "leave", "--force")
            while swarm_state() != "inactive":
                time.sleep(0.5)
            if not had_gwbridge:
                docker("network", "rm", "docker_gwbridge")
        docker("image", "rm", "--force",
               *[f"loadlab/{name}:{tag}" for name in ("fastapi", "flask", "locust")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
