"""Reading the CPU and memory figures of a cgroup, v1 and v2.

A service finds its own cgroup from ``/proc/self/cgroup``. Inside a container the cgroup
namespace makes the mount point itself the service's cgroup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("LOADLAB_CGROUP_ROOT", "/sys/fs/cgroup"))


@dataclass(frozen=True)
class CpuStats:
    usage_seconds: float
    limit_cores: float  # 0 when unlimited
    periods: int
    throttled_periods: int
    throttled_seconds: float


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat) -> dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_v2_cpu_max(text: str) -> float:
    quota, _, period = text.strip().partition(" ")
    if quota == "max" or not period:
        return 0.0
    return int(quota) / int(period)


def parse_v1_quota(quota_text: str, period_text: str) -> float:
    quota = int(quota_text.strip())
    return 0.0 if quota <= 0 else quota / int(period_text.strip())


def v2_cpu_stats(directory: Path) -> CpuStats | None:
    stat = _read(directory / "cpu.stat")
    if stat is None:
        return None
    values = parse_keyed(stat)
    limit_text = _read(directory / "cpu.max")
    return CpuStats(
        usage_seconds=values.get("usage_usec", 0) / 1e6,
        limit_cores=parse_v2_cpu_max(limit_text) if limit_text else 0.0,
        periods=values.get("nr_periods", 0),
        throttled_periods=values.get("nr_throttled", 0),
        throttled_seconds=values.get("throttled_usec", 0) / 1e6,
    )


def v1_cpu_stats(cpu_dir: Path, cpuacct_dir: Path) -> CpuStats | None:
    stat = _read(cpu_dir / "cpu.stat")
    quota = _read(cpu_dir / "cpu.cfs_quota_us")
    period = _read(cpu_dir / "cpu.cfs_period_us")
    if stat is None or quota is None or period is None:
        return None
    values = parse_keyed(stat)
    usage = _read(cpuacct_dir / "cpuacct.usage")
    return CpuStats(
        usage_seconds=int(usage) / 1e9 if usage else 0.0,
        limit_cores=parse_v1_quota(quota, period),
        periods=values.get("nr_periods", 0),
        throttled_periods=values.get("nr_throttled", 0),
        throttled_seconds=values.get("throttled_time", 0) / 1e9,
    )


def own_cgroup_paths(proc_cgroup: str | None = None) -> dict[str, str]:
    """Controller -> path from /proc/self/cgroup ('' is the v2 unified hierarchy)."""
    text = proc_cgroup if proc_cgroup is not None else (_read(Path("/proc/self/cgroup")) or "")
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            paths[controller] = parts[2]
    return paths


def _controller_dir(root: Path, mount: str, path: str) -> Path:
    """The cgroup's directory, or the mount itself when a namespace hides the path."""
    candidate = root / mount / path.lstrip("/")
    return candidate if candidate.is_dir() else root / mount


def own_cpu_stats(root: Path = CGROUP_ROOT) -> CpuStats | None:
    paths = own_cgroup_paths()
    if "cpu" in paths:
        cpu_mount = "cpu,cpuacct" if (root / "cpu,cpuacct").is_dir() else "cpu"
        cpuacct_mount = "cpu,cpuacct" if (root / "cpu,cpuacct").is_dir() else "cpuacct"
        stats = v1_cpu_stats(
            _controller_dir(root, cpu_mount, paths["cpu"]),
            _controller_dir(root, cpuacct_mount, paths.get("cpuacct", paths["cpu"])),
        )
        if stats is not None:
            return stats
    if "" in paths:
        return v2_cpu_stats(_controller_dir(root, "", paths[""]))
    return None


def own_cpu_limit() -> float:
    """The CPU quota this process runs under, in cores; 0 when unlimited."""
    stats = own_cpu_stats()
    return stats.limit_cores if stats else 0.0
