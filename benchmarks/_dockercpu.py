"""CPU time of containers (their cgroup) and of Docker's own processes (/proc)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cgroup_cpu_s(cid: str) -> float:
    """Total CPU time of a container's cgroup: v1 cpuacct, or v2 cpu.stat."""
    for path in glob.glob(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"):
        return int(Path(path).read_text()) / 1e9
    for path in glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cpu.stat", recursive=True):
        usage = dict(line.split() for line in Path(path).read_text().splitlines())
        return int(usage["usage_usec"]) / 1e6
    raise FileNotFoundError(f"no cgroup found for container {cid[:12]}")


def proc_cpu_s(pid: int) -> float:
    """A process's user + system time plus that of the children it has reaped (runc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone: counted as nothing rather than failing a long measurement
    return sum(int(f) for f in fields[11:15]) / TICK


def _pids(program: str, argument: str = "") -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name == program and (
                not argument or argument.encode() in argv):
            found.append(int(entry.name))
    return found


def daemon_pids() -> list[int]:
    return _pids("dockerd") + _pids("containerd")


def shim_pids(cid: str) -> list[int]:
    """The containerd shim of one container (`-id CID` on its command line)."""
    return _pids("containerd-shim-runc-v2", cid)
