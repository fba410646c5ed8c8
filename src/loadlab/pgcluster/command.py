"""``loadlab db up|down|status``: a lab database that outlives one command.

``up`` starts a keeper process (``loadlab.pgcluster.keeper``) that owns the cluster and
records it in ``STATE_DIR/db.json``; ``down`` signals that keeper, which stops the
cluster and removes its directory. STATE_DIR is ``$LOADLAB_STATE_DIR``, else
``$XDG_STATE_HOME/loadlab``, else ``~/.local/state/loadlab``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from loadlab.pgcluster.binaries import PostgresUnavailable, find_binaries
from loadlab.pgcluster.cluster import sweep_stale_clusters


def state_dir() -> Path:
    if os.environ.get("LOADLAB_STATE_DIR"):
        return Path(os.environ["LOADLAB_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "loadlab"


def state_file() -> Path:
    return state_dir() / "db.json"


def _keeper(state: dict[str, Any]) -> psutil.Process | None:
    """The live keeper the state names (its start time must match: pids are reused)."""
    try:
        proc = psutil.Process(int(state["keeper_pid"]))
        if abs(proc.create_time() - float(state["keeper_created"])) < 0.01:
            return proc
    except (KeyError, TypeError, ValueError, psutil.Error):
        pass
    return None


def running() -> dict[str, Any] | None:
    """The recorded database when its keeper still runs; a stale record is removed."""
    path = state_file()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(state, dict) and _keeper(state) is not None:
        return state
    path.unlink(missing_ok=True)
    sweep_stale_clusters()
    return None


def _fail(command: str, message: str) -> int:
    print(f"loadlab db {command}: error: {message}", file=sys.stderr)
    return 1


def up(max_connections: int = 100, timeout_s: float = 120.0) -> int:
    state = running()
    if state is not None:
        print(f"DATABASE_URL={state['url']}")
        print(f"(already running: keeper pid {state['keeper_pid']}; "
              "`loadlab db down` stops it)", file=sys.stderr)
        return 0
    try:
        find_binaries()
    except PostgresUnavailable as exc:
        return _fail("up", str(exc))
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    log.unlink(missing_ok=True)  # made afresh, 0600: the keeper prints the password there
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                   "wb") as out:
        keeper = subprocess.Popen(
            [sys.executable, "-m", "loadlab.pgcluster.keeper", str(path),
             "--max-connections", str(max_connections)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal is not meant for it
        )
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while time.monotonic() < deadline:
        state = running()
        if state is not None and state.get("keeper_pid") == keeper.pid:
            print(f"DATABASE_URL={state['url']}")
            print(f"(PostgreSQL {state['version']} from {state['source']}, "
                  f"keeper pid {keeper.pid}; `loadlab db down` stops it)", file=sys.stderr)
            return 0
        if keeper.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            return _fail("up", f"the database did not start: {tail or 'no output'}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    keeper.send_signal(signal.SIGTERM)
    keeper.wait(timeout=60)
    return _fail("up", f"the database was not ready after {timeout_s:.0f}s (log: {log})")


def down(timeout_s: float = 60.0) -> int:
    state = running()
    if state is None:
        print(f"no lab database is running ({state_file()})")
        return 0
    keeper = _keeper(state)
    if keeper is not None:
        keeper.send_signal(signal.SIGTERM)
        try:
            keeper.wait(timeout=timeout_s)
        except psutil.TimeoutExpired:
            keeper.kill()  # its death signal still ends the postmaster
            keeper.wait(timeout=timeout_s)
    state_file().unlink(missing_ok=True)
    sweep_stale_clusters()
    print(f"stopped the lab database (postmaster pid {state['pid']})")
    return 0


def status() -> int:
    state = running()
    if state is None:
        print(f"no lab database is running ({state_file()})")
        return 1
    print(f"DATABASE_URL={state['url']}")
    for key in ("version", "source", "binaries", "max_connections", "shared_buffers",
                "pid", "keeper_pid", "directory"):
        print(f"{key}: {state.get(key)}")
    return 0


def main(action: str, max_connections: int = 100) -> int:
    if action == "up":
        return up(max_connections)
    if action == "down":
        return down()
    return status()
