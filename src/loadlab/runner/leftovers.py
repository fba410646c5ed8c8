"""Process groups a runner started, recorded beside the results.

A runner killed with SIGKILL cannot stop what it started. It records each process group
it starts in ``RESULTS_DIR/.running.json``; the next runner on that directory ends those
groups first, matching the start time so that a reused PID is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil

from loadlab.report.results import atomic_write


class Leftovers:
    def __init__(self, directory: Path) -> None:
        self.path = directory / ".running.json"
        self.entries: list[dict[str, float | int | str]] = []

    def add(self, role: str, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            created = psutil.Process(pid).create_time()
            self.entries.append({"role": role, "pid": pid, "created": created})
            atomic_write(self.path, json.dumps(self.entries))

    def clear(self) -> None:
        self.entries = []
        self.path.unlink(missing_ok=True)

    def reap(self) -> list[str]:
        """End the groups a killed runner left; returns what was ended."""
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        ended: list[str] = []
        for entry in entries if isinstance(entries, list) else []:
            pid = int(entry.get("pid", 0))
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - float(entry.get("created", 0))) > 0.01:
                    continue  # the PID now belongs to someone else
                pgid = os.getpgid(pid)
            except (psutil.Error, OSError):
                continue
            if pgid != pid:
                continue  # not the leader of the group we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(psutil.Error):
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            ended.append(f"{entry.get('role')} (pid {pid})")
        self.clear()
        return ended
