"""What a results directory records about the machine and the software that made it."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadlab.paths import LabFilesMissing, lab_root

PACKAGES = (
    "loadlab", "fastapi", "starlette", "uvicorn", "uvicorn-worker", "flask", "werkzeug",
    "gunicorn", "gevent", "locust", "prometheus-client", "pydantic",
)


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


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cgroup_version(root: Path = Path("/sys/fs/cgroup")) -> str:
    """'v1' or 'v2' for the cpu controller (what a CPU limit is applied through)."""
    if (root / "cpu").is_dir() or (root / "cpu,cpuacct").is_dir():
        return "v1"
    with contextlib.suppress(OSError):
        if "cpu" in (root / "cgroup.controllers").read_text().split():
            return "v2"
    return "none"


def manifest(runtime: str, placement: str) -> dict[str, Any]:
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": versions(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 1,
        "cgroup_version": cgroup_version(),
        "runtime": runtime,
        "placement": placement,
        "command_line": shlex.join(["loadlab", *sys.argv[1:]]),
    }
