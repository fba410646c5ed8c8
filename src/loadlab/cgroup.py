"""Reading the CPU and memory figures of a cgroup, v1 and v2.

A service finds its own cgroup from ``/proc/self/cgroup``. Inside a container the cgroup
namespace (or Docker's bind mount on v1) makes the mount point itself the service's cgroup.

``service_cgroup()`` decides which cgroup holds the *service* (all its processes and
nothing else), so collectors can read CPU, throttling and memory from it:

1. ``LOADLAB_CGROUP`` -- the cgroup ``loadlab serve --cpus`` made for the server tree;
2. the container's own cgroup, when running in a container;
3. otherwise ``None``: the process shares a cgroup (a login session, the root) with other
   work, so collectors must sum the process tree instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("LOADLAB_CGROUP_ROOT", "/sys/fs/cgroup"))
CGROUP_ENV = "LOADLAB_CGROUP"
CONTAINER_ENV = "LOADLAB_IN_CONTAINER"
CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
# A file that only a mount carrying the controller has.
_V1_PROBE = {"cpu": "cpu.cfs_quota_us", "cpuacct": "cpuacct.usage",
             "memory": "memory.usage_in_bytes"}


@dataclass(frozen=True)
class CpuStats:
    usage_seconds: float
    limit_cores: float  # 0 when unlimited
    periods: int
    throttled_periods: int
    throttled_seconds: float


@dataclass(frozen=True)
class CgroupRef:
    """A cgroup by path relative to each hierarchy, as in ``/proc/<pid>/cgroup``.

    v2 has one path (key ``""``); v1 one per controller (cpu, cpuacct, memory), since a
    controller may sit at a different depth (e.g. memory nested under a session's group).
    """

    version: int
    paths: Mapping[str, str]

    def to_env(self) -> str:
        """``v2:/loadlab-12`` or ``v1:cpu=/loadlab-12;cpuacct=/loadlab-12;memory=/a/loadlab-12``."""
        if self.version == 2:
            return f"v2:{self.paths['']}"
        return "v1:" + ";".join(f"{c}={p}" for c, p in sorted(self.paths.items()))

    @classmethod
    def from_env(cls, text: str) -> CgroupRef | None:
        version, sep, rest = text.strip().partition(":")
        if not sep or not rest:
            return None
        if version == "v2":
            return cls(2, {"": rest})
        if version != "v1":
            return None
        paths = dict(item.split("=", 1) for item in rest.split(";") if "=" in item)
        return cls(1, paths) if "cpu" in paths else None


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


def working_set_bytes(usage: int, stat: Mapping[str, int]) -> int:
    """Usage minus reclaimable page cache, as kubelet and cAdvisor count it."""
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    return max(usage - inactive, 0)


def v2_memory_bytes(directory: Path) -> int | None:
    current = _read(directory / "memory.current")
    if current is None:
        return None
    return working_set_bytes(int(current), parse_keyed(_read(directory / "memory.stat") or ""))


def v1_memory_bytes(directory: Path) -> int | None:
    usage = _read(directory / "memory.usage_in_bytes")
    if usage is None:
        return None
    return working_set_bytes(int(usage), parse_keyed(_read(directory / "memory.stat") or ""))


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


def v1_mount(root: Path, controller: str) -> Path | None:
    """Where a v1 controller is mounted: ``cpu``, or a co-mount such as ``cpu,cpuacct``."""
    probe = _V1_PROBE.get(controller, "cgroup.procs")
    for name in (controller, "cpu,cpuacct", "cpuacct,cpu"):
        if (root / name / probe).exists():
            return root / name
    return None


def unified_mount(root: Path) -> Path:
    """The v2 hierarchy: the root itself (pure v2) or ``unified`` (hybrid)."""
    return root if (root / "cgroup.controllers").exists() else root / "unified"


def v2_has_cpu(root: Path) -> bool:
    return "cpu" in (_read(unified_mount(root) / "cgroup.controllers") or "").split()


def cpu_cgroup_version(root: Path = CGROUP_ROOT) -> str:
    """'v1' or 'v2': the hierarchy holding the cpu controller (what a CPU limit goes
    through), also on a hybrid layout; 'none' without one."""
    if v1_mount(root, "cpu") is not None:
        return "v1"
    return "v2" if v2_has_cpu(root) else "none"


def own_cgroup(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> CgroupRef | None:
    """This process's cgroup: v1 when a v1 cpu controller is mounted, else v2."""
    paths = own_cgroup_paths(proc_cgroup)
    if "cpu" in paths and v1_mount(root, "cpu") is not None:
        return CgroupRef(1, {c: paths[c] for c in V1_CONTROLLERS if c in paths})
    if "" in paths:
        return CgroupRef(2, {"": paths[""]})
    return None


def cgroup_dirs(ref: CgroupRef, root: Path = CGROUP_ROOT, *,
                strict: bool = True) -> dict[str, Path]:
    """Controller -> directory. ``strict``: a missing directory is left out rather than
    replaced by the mount (a namespace's view of its own cgroup)."""
    dirs: dict[str, Path] = {}
    if ref.version == 2:
        mounts = {c: unified_mount(root) for c in ("cpu", "cpuacct", "memory")}
        paths = dict.fromkeys(mounts, ref.paths.get("", "/"))
    else:
        mounts = {c: m for c in V1_CONTROLLERS if (m := v1_mount(root, c)) is not None}
        paths = dict(ref.paths)
        paths.setdefault("cpuacct", paths.get("cpu", "/"))
    for controller, mount in mounts.items():
        if controller not in paths:
            continue
        directory = mount / paths[controller].lstrip("/")
        if directory.is_dir():
            dirs[controller] = directory
        elif not strict:
            dirs[controller] = mount
    return dirs


def cgroup_cpu_stats(ref: CgroupRef, root: Path = CGROUP_ROOT, *,
                     strict: bool = True) -> CpuStats | None:
    dirs = cgroup_dirs(ref, root, strict=strict)
    if "cpu" not in dirs:
        return None
    if ref.version == 2:
        return v2_cpu_stats(dirs["cpu"])
    return v1_cpu_stats(dirs["cpu"], dirs.get("cpuacct", dirs["cpu"]))


def cgroup_memory_bytes(ref: CgroupRef, root: Path = CGROUP_ROOT, *,
                        strict: bool = True) -> int | None:
    directory = cgroup_dirs(ref, root, strict=strict).get("memory")
    if directory is None:
        return None
    return v2_memory_bytes(directory) if ref.version == 2 else v1_memory_bytes(directory)


def own_cpu_stats(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> CpuStats | None:
    ref = own_cgroup(root, proc_cgroup)
    return cgroup_cpu_stats(ref, root, strict=False) if ref is not None else None


def own_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float:
    """The CPU quota this process runs under, in cores; 0 when unlimited."""
    stats = own_cpu_stats(root, proc_cgroup)
    return stats.limit_cores if stats else 0.0


# --- the service's cgroup -------------------------------------------------------------


def _parent_pid(pid: int) -> int:
    stat = _read(Path(f"/proc/{pid}/stat")) or ""
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else 0


def _lineage(pid: int) -> list[int]:
    chain = []
    while pid > 0 and pid not in chain:
        chain.append(pid)
        pid = _parent_pid(pid)
    return chain


def holds_only_tree(procs_file: Path, root_pid: int) -> bool:
    """Whether every process listed belongs to root_pid's tree (or is one of its
    ancestors, e.g. a container's init): then the cgroup measures the service alone."""
    text = _read(procs_file)
    if text is None:
        return False
    ancestors = set(_lineage(root_pid))
    for line in text.split():
        chain = _lineage(int(line))
        if root_pid not in chain and int(line) not in ancestors:
            return False
    return True


def in_container(environ: Mapping[str, str] | None = None, root: Path = CGROUP_ROOT,
                 markers: tuple[Path, ...] = CONTAINER_MARKERS,
                 proc_cgroup: str | None = None) -> bool:
    """Whether this process runs in a container whose cgroup is the service's own.

    The lab's images set LOADLAB_IN_CONTAINER=1. A marker file alone (``/.dockerenv``)
    is not enough: a development container is shared by many processes, so the
    container's cgroup then counts only when it holds nothing but the service tree.
    """
    env = os.environ if environ is None else environ
    flag = env.get(CONTAINER_ENV, "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no") or not any(m.exists() for m in markers):
        return False
    ref = own_cgroup(root, proc_cgroup)
    if ref is None:
        return False
    cpu_dir = cgroup_dirs(ref, root, strict=False).get("cpu")
    root_pid = int(env.get("LOADLAB_ROOT_PID", "0") or 0) or os.getpid()
    return cpu_dir is not None and holds_only_tree(cpu_dir / "cgroup.procs", root_pid)


def service_cgroup(root: Path = CGROUP_ROOT, environ: Mapping[str, str] | None = None,
                   proc_cgroup: str | None = None) -> CgroupRef | None:
    """The cgroup holding the service and nothing else, or None (see the module doc)."""
    env = os.environ if environ is None else environ
    configured = env.get(CGROUP_ENV, "")
    if configured:
        return CgroupRef.from_env(configured)
    if in_container(env, root, proc_cgroup=proc_cgroup):
        return own_cgroup(root, proc_cgroup)
    return None


def _service_ref(root: Path, environ: Mapping[str, str] | None,
                 proc_cgroup: str | None) -> tuple[CgroupRef | None, bool]:
    env = os.environ if environ is None else environ
    ref = service_cgroup(root, env, proc_cgroup)
    # A container sees its own cgroup as the mount; one serve made must exist by name.
    return ref, not env.get(CGROUP_ENV)


def service_cpu_stats(root: Path = CGROUP_ROOT, environ: Mapping[str, str] | None = None,
                      proc_cgroup: str | None = None) -> CpuStats | None:
    """CPU used and throttled by the whole service; None: use the process tree."""
    ref, lenient = _service_ref(root, environ, proc_cgroup)
    return cgroup_cpu_stats(ref, root, strict=not lenient) if ref else None


def service_memory_bytes(root: Path = CGROUP_ROOT, environ: Mapping[str, str] | None = None,
                         proc_cgroup: str | None = None) -> int | None:
    """Working-set memory of the whole service; None: use the process tree."""
    ref, lenient = _service_ref(root, environ, proc_cgroup)
    return cgroup_memory_bytes(ref, root, strict=not lenient) if ref else None
