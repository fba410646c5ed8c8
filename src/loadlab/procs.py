"""Process helpers the lab uses wherever it starts or ends a process (stdlib and psutil only).

One home for: tying a child to its parent's life (``PR_SET_PDEATHSIG``), ending a process
group (TERM, wait, KILL), "is this PID alive", "is this PID still the process I started"
(its start time), and a free loopback port. Everything the lab starts it ends by PID or
process group, never by name.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1
_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def tie_to_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the process that starts it dies, even by
    SIGKILL; a child whose parent died before the signal was armed exits at once.

    Called in the parent (libc is loaded and the parent's PID read before the fork), so the
    child runs only a ``prctl`` and a ``getppid``. Linux only; elsewhere it does nothing.
    Note the signal follows the *thread* that forks: start children from the main thread.
    """
    parent = os.getpid()
    try:
        prctl = _libc().prctl
    except (OSError, AttributeError):
        return lambda: None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


def set_death_signal(sig: int = signal.SIGTERM) -> None:
    """In the current (child) process: receive ``sig`` when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(_PR_SET_PDEATHSIG, int(sig))


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, psutil's clock); None if it is gone."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError, OverflowError):
        return None


def same_process(pid: int, started: float, tolerance_s: float = 0.01) -> bool:
    """True when ``pid`` is alive and is the process that started at ``started`` (a reused
    PID belongs to someone else)."""
    found = start_time(pid)
    return found is not None and abs(found - started) <= tolerance_s and is_alive(pid)


KILLED_WAIT_S = 10.0  # how long a SIGKILLed group leader is waited on


def kill_group(pgid: int, timeout_s: float = 10.0, sig: int = signal.SIGTERM,
               proc: subprocess.Popen[Any] | psutil.Process | None = None) -> None:
    """``sig`` to the process group, up to ``timeout_s`` for its leader to exit, then SIGKILL
    whatever is left of the group. ``proc`` (the leader, when this process started it) is
    reaped so that no zombie stays behind."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout_s
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    else:
        leader = proc
        if leader is None:
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(pgid)
        if leader is not None:
            with contextlib.suppress(psutil.Error):
                leader.wait(timeout=max(deadline - time.monotonic(), 0.0))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        # Bounded even here: a process stuck in the kernel (uninterruptible I/O) dies only
        # when its I/O ends, and a ^C must not wait on that forever. Unreaped, it is reaped
        # by Popen's own bookkeeping or, at the latest, with this process.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILLED_WAIT_S)


# The ports free_port handed out lately. The kernel picks a bound-and-closed port at
# random (on Linux among the odd half of the ephemeral range: about 14,000), so two calls
# before either port is bound return the same one now and then: 1 lab in 200 that picks 11
# ports got a duplicate, and its second service could not bind.
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=4096)
_HANDED_OUT_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now and that this process has not handed out lately (the
    kernel's choice; another process may still take it before it is bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _HANDED_OUT_LOCK:
        for _ in range(1000):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.append(port)
                return port
    raise OSError(f"no free port on {host}: 1,000 of the kernel's picks were handed out lately")


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0
