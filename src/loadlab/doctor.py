"""``loadlab doctor``: what this machine can do for the lab, and how to get the rest.

Every check runs the real thing (makes and removes a probe cgroup, asks the Docker
engine, runs the tools' ``--version``) with a short timeout; nothing is changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from loadlab import cgroup, cpulimit

TIMEOUT_S = 10.0
_MECHANISMS = {
    "cgroup-v1": "yes, cgroup v1 (cpu.cfs_quota_us, writable)",
    "cgroup-v2": "yes, cgroup v2 (cpu.max, writable)",
    "systemd": "yes, through systemd-run --scope -p CPUQuota",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""  # how to get it, when missing


def _run(argv: list[str]) -> str | None:
    """First line of a command's output, or None when it is missing or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def check_cores() -> Check:
    limit = cgroup.own_cpu_limit()
    usable = len(os.sched_getaffinity(0))
    detail = f"{os.cpu_count()} cores, {usable} usable by affinity"
    detail += f", cgroup quota {limit:g} CPUs" if limit else ", no cgroup quota"
    return Check("cores", True, detail)


def cgroup_version(root: Path = cgroup.CGROUP_ROOT) -> str:
    """The run manifest's cgroup version, with what else a user should know of the layout."""
    version = cgroup.cpu_cgroup_version(root)
    unified = (cgroup.unified_mount(root) / "cgroup.procs").exists()
    if version == "v1" and unified:
        return "hybrid (cpu on v1)"
    if version == "none" and unified:
        return "v2 (no cpu controller)"
    return version


def check_cgroup(probe: Callable[[], str] = cpulimit.native_mechanism) -> Check:
    mechanism = probe()
    version_text = cgroup_version()
    if mechanism in _MECHANISMS:
        return Check("cpu limits", True, f"{_MECHANISMS[mechanism]}; cgroup {version_text}")
    return Check(
        "cpu limits", False, f"affinity only (no quota, no throttling); cgroup {version_text}",
        "run as root on cgroup v1, or use a systemd user session (systemd-run --user "
        "--scope), or delegate a cgroup v2 subtree with the cpu controller",
    )


def check_service_cgroup() -> Check:
    """Where a service started here without --cpus would read its CPU and memory from."""
    if cgroup.in_container():
        return Check("metrics source", True, "this container's cgroup")
    return Check("metrics source", True, "process tree (a shared cgroup); with --cpus, "
                 "the cgroup serve makes")


def check_docker() -> Check:
    if shutil.which("docker") is None:
        return Check("docker engine", False, "no docker client",
                     "apt-get install -y docker.io (or Docker's own packages)")
    server = _run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if not server:
        return Check("docker engine", False, "client present, engine not reachable",
                     "start it: systemctl start docker, or `setsid dockerd >/tmp/dockerd.log "
                     "2>&1 &` as root")
    return Check("docker engine", True, f"engine {server}")


# Before Engine 28 a port published on 127.0.0.1 still answers hosts of the same network
# segment that route packets for 127.0.0.1 to this machine (moby/moby#45610).
LOOPBACK_SAFE_ENGINE = 28


def check_engine_loopback(server: str | None = None) -> Check | None:
    """Whether the engine keeps the lab's 127.0.0.1-published ports on this machine."""
    server = server if server is not None else _run(
        ["docker", "info", "--format", "{{.ServerVersion}}"])
    if not server:
        return None  # no engine: check_docker says so
    digits = server.split(".", 1)[0]
    if not digits.isdigit() or int(digits) >= LOOPBACK_SAFE_ENGINE:
        return Check("loopback ports", True, f"engine {server} keeps 127.0.0.1-published "
                     "ports on this machine")
    return Check(
        "loopback ports", False,
        f"engine {server} is older than {LOOPBACK_SAFE_ENGINE}: ports the lab publishes "
        "on 127.0.0.1 can be reached by hosts on the same network segment "
        "(moby/moby#45610); the lab's passwords are then the only barrier",
        f"Docker Engine {LOOPBACK_SAFE_ENGINE} or later; until then keep untrusted hosts "
        "off this machine's network, and set the passwords as for a widened bind "
        "(docs/compose.md, Security defaults)")


def check_compose() -> Check:
    v2 = _run(["docker", "compose", "version", "--short"])
    if v2:
        return Check("compose v2", True, f"docker compose {v2}")
    v1 = _run(["docker-compose", "version", "--short"])
    hint = ("install the Compose v2 plugin: Docker's docker-compose-plugin package, or "
            "on Debian bookworm .ci/install-compose-v2 (trixie's plugin, own apt lists)")
    if v1:
        return Check("compose v2", False, f"only Compose v1 (docker-compose {v1}): it "
                     "rejects the lab's top-level name: and lacks up --wait", hint)
    return Check("compose v2", False, "absent", hint)


def check_tool(name: str, argv: list[str], hint: str) -> Check:
    if shutil.which(argv[0]) is None:
        return Check(name, False, "absent", hint)
    found = _run(argv)
    return Check(name, True, found or shutil.which(argv[0]) or argv[0])


def check_chromium() -> Check:
    for binary in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(binary):
            return check_tool("chromium", [binary, "--version"], "")
    return Check("chromium", False, "absent (browser tests are skipped)",
                 "apt-get install -y chromium (never `playwright install`)")


def check_locust() -> Check:
    # By metadata, never by import: importing locust monkey-patches this process.
    try:
        return Check("locust", True, f"locust {version('locust')}")
    except PackageNotFoundError:
        return Check("locust", False, "absent", "make install (the locust extra)")


def collect() -> list[Check]:
    return [
        check_cores(),
        check_cgroup(),
        check_service_cgroup(),
        check_docker(),
        *[check for check in [check_engine_loopback()] if check is not None],
        check_compose(),
        check_tool("promtool", ["promtool", "--version"], "apt-get install -y prometheus"),
        check_tool("wrk", ["wrk", "--version"], "apt-get install -y wrk"),
        check_chromium(),
        check_locust(),
    ]


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{'ok ' if c.ok else '-- '} {c.name:<{width}}  {c.detail}")
        if c.hint:
            lines.append(f"    {'':<{width}}  to get it: {c.hint}")
    return "\n".join(lines)


def main() -> int:
    print(render(collect()))
    return 0
