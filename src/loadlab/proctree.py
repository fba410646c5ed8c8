"""CPU and memory of a process tree (a server's master and its workers), through psutil.

Read by the service's own collector (without a cgroup of its own) and by the runner's
sampler alike, so both count the same way: CPU of every live process plus what each has
reaped (exited workers, pools), memory as summed PSS (forked workers share pages).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants; empty when it is gone.

    Read from each process's ``/proc/PID/task/TID/children``: psutil's ``children()``
    reads the ``stat`` file of every process on the machine instead, which made a side-port
    scrape cost ~10 ms of CPU on a busy host (hundreds of files) for a tree of three.
    """
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return []
    if not _HAS_CHILDREN_FILES:
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
    tree, pending = [root], _children(pid)
    while pending:
        child = pending.pop()
        try:
            tree.append(psutil.Process(child))
        except psutil.Error:
            continue  # exited between the two reads: no longer part of the tree
        pending.extend(_children(child))
    return tree


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (those of each of its threads); empty when it is gone."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(field) for field in fh.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return kids


# The kernel offers the children files with CONFIG_PROC_CHILDREN (every distribution's
# kernel does); without them, psutil's scan of every process.
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def tree_cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def pss_bytes(pid: int) -> int:
    """Proportional set size from /proc/PID/smaps_rollup (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_figures(pid: int) -> tuple[float, float]:
    """CPU seconds and summed PSS of the tree rooted at `pid`; psutil.NoSuchProcess if
    it is gone."""
    procs = process_tree(pid)
    if not procs:
        raise psutil.NoSuchProcess(pid)
    return tree_cpu_seconds(procs), float(sum(pss_bytes(proc.pid) for proc in procs))
