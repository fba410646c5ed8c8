"""What a results directory records about the machine and the software that made it."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from loadlab import cgroup, servers
from loadlab.paths import LabFilesMissing, lab_path, lab_root
from loadlab.runs.record import Manifest
from loadlab.serverinfo import package_versions

# The server registry's packages (servers, apps, database driver) and the load generator.
PACKAGES = (*servers.PACKAGES, "locust")


def git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError, LabFilesMissing):
        repo = lab_root()
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=10,
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    return "unknown"


def lock_sha256() -> str:
    """SHA-256 of the uv.lock the lab was installed from (docs/install.md), or 'unknown'."""
    with contextlib.suppress(OSError, LabFilesMissing):
        path = lab_path(".", "uv.lock") / "uv.lock"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return "unknown"


def versions() -> dict[str, str]:
    return package_versions(PACKAGES)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def manifest(runtime: str, placement: str) -> Manifest:
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": versions(),
        "lock_sha256": lock_sha256(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 1,
        "cgroup_version": cgroup.cpu_cgroup_version(),
        "runtime": runtime,
        "placement": placement,
        "command_line": shlex.join(["loadlab", *sys.argv[1:]]),
    }
