"""Putting a server's process tree under a CPU quota: cgroup v1, cgroup v2, systemd, affinity.

``limit_cpus(C)`` picks the first mechanism that works here:

1. cgroup v1: a child of our own ``cpu`` cgroup with ``cpu.cfs_quota_us`` (plus ``cpuacct``
   and, when hierarchical, ``memory``, so the service's usage and memory can be read);
2. cgroup v2, delegated: a child of our own cgroup with ``cpu.max``;
3. ``systemd-run [--user] --scope -p CPUQuota=..``: serve re-executes itself in a scope;
4. cgroup v2 at the hierarchy's root (root only, no systemd to ask);
5. CPU affinity to ceil(C) cores: a core count, not a quota, so it warns.

The server child joins in ``preexec_fn`` (before exec), so every worker it forks inherits
the group. ``remove()`` ends whatever is left in the group and removes it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadlab.cgroup import (
    CGROUP_ROOT,
    CgroupRef,
    cgroup_dirs,
    own_cgroup,
    own_cgroup_paths,
    unified_mount,
    v1_mount,
)

PERIOD_US = 100_000
MIN_CPUS = 0.01  # the kernel's minimum quota is 1 ms per period
SCOPE_ENV = "LOADLAB_SYSTEMD_SCOPE"  # set for serve re-executed inside a systemd scope
_NAME = re.compile(r"^loadlab-(?:probe-)?(\d+)(?:-\d+)?$")


@dataclass
class CpuLimit:
    """A CPU limit applied (or to apply) to a process tree."""

    mechanism: str  # none | cgroup-v1 | cgroup-v2 | systemd | affinity
    cpus: float = 0.0
    ref: CgroupRef | None = None
    dirs: list[Path] = field(default_factory=list)  # the groups made, one per hierarchy
    cores: list[int] = field(default_factory=list)  # affinity fallback
    warning: str = ""
    wrapper: list[str] = field(default_factory=list)  # systemd: argv prefix to re-execute

    def join(self) -> None:
        """Move the calling process into the limit (a ``preexec_fn``: before exec)."""
        pid = str(os.getpid())
        for directory in self.dirs:
            (directory / "cgroup.procs").write_text(pid)
        if self.cores:
            os.sched_setaffinity(0, self.cores)

    def env(self) -> dict[str, str]:
        out = {"LOADLAB_CPUS": f"{self.cpus:g}", "LOADLAB_CPU_LIMIT": self.mechanism}
        if self.ref is not None:
            out["LOADLAB_CGROUP"] = self.ref.to_env()
        return out

    def remove(self, grace_s: float = 5.0) -> None:
        """End what is left in the groups made, then remove them (rmdir must succeed)."""
        for directory in self.dirs:
            empty_group(directory, grace_s)
            remove_group(directory)
        self.dirs = []


def _procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def empty_group(directory: Path, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, what remains in a group we made: only the server's own
    tree can be there (orphaned workers, pool processes of a crashed server)."""
    deadline = time.monotonic() + grace_s
    _signal_all(_procs(directory), signal.SIGTERM)
    while _procs(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + 2.0
    while (pids := _procs(directory)) and time.monotonic() < deadline:
        _signal_all(pids, signal.SIGKILL)
        time.sleep(0.05)
    # A process stuck in the kernel cannot die at once: move it out, so rmdir works.
    for pid in _procs(directory):
        with contextlib.suppress(OSError):
            (directory.parent / "cgroup.procs").write_text(str(pid))


def remove_group(directory: Path, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            # EBUSY while the last exiting task leaves the group.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def sweep_stale(parent: Path) -> None:
    """Remove empty groups a killed serve (or doctor's probe) left: loadlab-<dead pid>."""
    with contextlib.suppress(OSError):
        for child in parent.iterdir():
            match = _NAME.match(child.name)
            if not match or not child.is_dir() or Path(f"/proc/{match[1]}").exists():
                continue
            if not _procs(child):
                with contextlib.suppress(OSError):
                    child.rmdir()


def _new_group(parent: Path, name: str) -> Path:
    sweep_stale(parent)
    directory = parent / name
    n = 1
    while directory.exists():
        n += 1
        directory = parent / f"{name}-{n}"
    directory.mkdir()
    return directory


def _relative(mount: Path, directory: Path) -> str:
    rel = str(directory.relative_to(mount))
    return "/" if rel == "." else "/" + rel


def try_v1(cpus: float, root: Path = CGROUP_ROOT, proc_cgroup: str | None = None,
           name: str | None = None) -> CpuLimit | None:
    cpu_mount = v1_mount(root, "cpu")
    ref = own_cgroup(root, proc_cgroup)
    if cpu_mount is None or ref is None or ref.version != 1:
        return None
    parents = cgroup_dirs(ref, root, strict=False)
    name = name or f"loadlab-{os.getpid()}"
    made: dict[str, Path] = {}
    try:
        cpu_dir = made["cpu"] = _new_group(parents["cpu"], name)
        (cpu_dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu_dir / "cpu.cfs_quota_us").write_text(str(round(cpus * PERIOD_US)))
    except (OSError, KeyError):
        CpuLimit("cgroup-v1", dirs=list(made.values())).remove()
        return None
    # cpuacct (usage) and memory are extras: without them the quota still holds.
    for controller in ("cpuacct", "memory"):
        mount = v1_mount(root, controller)
        parent = parents.get(controller)
        if mount is None or parent is None or mount == cpu_mount:
            continue
        hierarchical = parent / "memory.use_hierarchy"
        if controller == "memory" and hierarchical.exists() and \
                hierarchical.read_text().strip() != "1":
            continue  # a child would escape the parent's accounting and limit
        with contextlib.suppress(OSError):
            made[controller] = _new_group(parent, cpu_dir.name)
    paths = {"cpu": _relative(cpu_mount, cpu_dir)}
    for controller, directory in made.items():
        mount = v1_mount(root, controller)
        if mount is not None:
            paths[controller] = _relative(mount, directory)
    if v1_mount(root, "cpuacct") == cpu_mount:
        paths["cpuacct"] = paths["cpu"]
    return CpuLimit("cgroup-v1", cpus, CgroupRef(1, paths), list(made.values()))


def _enable(parent: Path, controller: str) -> bool:
    control = parent / "cgroup.subtree_control"
    try:
        if controller in control.read_text().split():
            return True
        control.write_text(f"+{controller}")
        return True
    except OSError:
        return False


def try_v2(cpus: float, root: Path = CGROUP_ROOT, proc_cgroup: str | None = None,
           name: str | None = None, *, at_root: bool = False) -> CpuLimit | None:
    mount = unified_mount(root)
    try:
        if "cpu" not in (mount / "cgroup.controllers").read_text().split():
            return None
    except OSError:
        return None
    if at_root:
        parent = mount
    else:
        own = own_cgroup_paths(proc_cgroup).get("")
        if own is None or own == "/":
            return None  # the root (or a namespace's root) is the at_root case
        parent = mount / own.lstrip("/")
    if not _enable(parent, "cpu"):
        return None  # e.g. our own group holds processes: v2 allows no internal ones
    _enable(parent, "memory")
    try:
        directory = _new_group(parent, name or f"loadlab-{os.getpid()}")
    except OSError:
        return None
    try:
        (directory / "cpu.max").write_text(f"{round(cpus * PERIOD_US)} {PERIOD_US}")
    except OSError:
        remove_group(directory)
        return None
    ref = CgroupRef(2, {"": _relative(mount, directory)})
    return CpuLimit("cgroup-v2", cpus, ref, [directory])


def systemd_argv(cpus: float, unit: str) -> list[str]:
    user = [] if os.geteuid() == 0 else ["--user"]
    return ["systemd-run", *user, "--scope", "--quiet", "--collect", f"--unit={unit}",
            "-p", f"CPUQuota={cpus * 100:g}%", "--"]


def systemd_works(timeout_s: float = 10.0) -> bool:
    """Whether a systemd scope with a CPU quota can be made here (tries one)."""
    if shutil.which("systemd-run") is None:
        return False
    probe = [*systemd_argv(0.5, f"loadlab-probe-{os.getpid()}"), "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def in_systemd_scope(cpus: float, root: Path = CGROUP_ROOT) -> CpuLimit:
    """The limit of a serve re-executed by systemd-run: the scope is our own cgroup."""
    ref = own_cgroup(root)
    # On a hybrid host the quota sits in the v1 cpu hierarchy: either way, a scope's path.
    scoped = ref is not None and any(p.endswith(".scope") for p in ref.paths.values())
    return CpuLimit("systemd", cpus, ref if scoped else None)


def affinity(cpus: float) -> CpuLimit:
    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed[: max(1, math.ceil(cpus))]
    if len(cores) >= len(allowed):
        warning = (f"no cgroup CPU quota can be set here, and --cpus {cpus:g} covers all "
                   f"{len(allowed)} usable cores: the server runs unlimited")
        return CpuLimit("none", cpus, warning=warning)
    warning = (f"no cgroup CPU quota can be set here (see `loadlab doctor`): pinned to "
               f"{len(cores)} core(s) {','.join(map(str, cores))} instead of a {cpus:g}-CPU "
               f"quota, so no throttling figures")
    return CpuLimit("affinity", cpus, cores=cores, warning=warning)


def limit_cpus(cpus: float, root: Path = CGROUP_ROOT,
               probe_systemd: Callable[[], bool] = systemd_works) -> CpuLimit:
    """The first mechanism that works, in the order of the module doc."""
    if cpus <= 0:
        return CpuLimit("none")
    found = try_v1(cpus, root) or try_v2(cpus, root)
    if found is not None:
        return found
    if probe_systemd():
        return CpuLimit("systemd", cpus, wrapper=systemd_argv(cpus, f"loadlab-{os.getpid()}"))
    if os.geteuid() == 0:
        found = try_v2(cpus, root, at_root=True)
        if found is not None:
            return found
    return affinity(cpus)


def native_mechanism(root: Path = CGROUP_ROOT) -> str:
    """What ``--cpus`` would use here; probes by making and removing a small group."""
    name = f"loadlab-probe-{os.getpid()}"
    for attempt in (lambda: try_v1(0.5, root, name=name), lambda: try_v2(0.5, root, name=name)):
        found = attempt()
        if found is not None:
            found.remove()
            return found.mechanism
    if systemd_works():
        return "systemd"
    if os.geteuid() == 0:
        found = try_v2(0.5, root, name=name, at_root=True)
        if found is not None:
            found.remove()
            return "cgroup-v2"
    return "affinity"
