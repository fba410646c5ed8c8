"""What a runner holds in its results directory: the directory's lock, and the process groups
it started.

One runner per directory: ``DirectoryLock`` holds ``fcntl.flock`` on ``RESULTS_DIR/.lock`` for
the whole session (the kernel drops it when the runner dies, however it dies), so a second
runner on the same ``--out`` refuses in one line instead of ending the first one's service.

The service and Locust get SIGTERM when their runner dies (``loadlab.procs.tie_to_parent``).
As a second line, each group the runner starts is recorded in ``RESULTS_DIR/.running.json``
with the runner's own PID and start time; the next runner on that directory ends the groups
whose runner is dead, matching each start time so that a reused PID is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from loadlab.errors import UserError
from loadlab.fileio import atomic_write
from loadlab.procs import kill_group, same_process, start_time

LOCK = ".lock"


class DirectoryBusy(UserError):
    """Another runner holds the results directory."""


class DirectoryLock:
    """An exclusive, non-blocking ``flock`` on ``DIRECTORY/.lock``, held until ``release``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK
        self._fh: IO[str] | None = None

    def acquire(self) -> DirectoryLock:
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise DirectoryBusy(
                f"{self.path.parent} is in use by another runner (pid {holder}): wait for it "
                "to end, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the lock
            self._fh = None


class Leftovers:
    def __init__(self, directory: Path) -> None:
        self.path = directory / ".running.json"
        self.entries: list[dict[str, float | int | str]] = []
        self.runner = {"runner_pid": os.getpid(), "runner_created": start_time(os.getpid()) or 0.0}

    def add(self, role: str, pid: int) -> None:
        created = start_time(pid)
        if created is None:
            return
        self.entries.append({"role": role, "pid": pid, "created": created, **self.runner})
        atomic_write(self.path, json.dumps(self.entries))

    def clear(self) -> None:
        self.entries = []
        self.path.unlink(missing_ok=True)

    def reap(self) -> list[str]:
        """End the groups a dead runner left; returns what was ended. Groups whose runner
        still lives are left alone (and stay listed)."""
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        ended: list[str] = []
        kept: list[dict[str, float | int | str]] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            try:
                pid = int(entry.get("pid", 0))
                created = float(entry.get("created", 0))
                runner_pid = int(entry.get("runner_pid", 0))
                runner_created = float(entry.get("runner_created", 0))
            except (TypeError, ValueError):
                continue
            if runner_pid and same_process(runner_pid, runner_created):
                kept.append(entry)  # its runner is alive: not ours to end
                continue
            if pid <= 0 or not same_process(pid, created):
                continue  # gone, or the PID now belongs to someone else
            with contextlib.suppress(OSError):
                if os.getpgid(pid) != pid:
                    continue  # not the leader of the group we started
                kill_group(pid, timeout_s=10.0)
                ended.append(f"{entry.get('role')} (pid {pid})")
        if kept:
            atomic_write(self.path, json.dumps(kept))
        else:
            self.path.unlink(missing_ok=True)
        return ended
