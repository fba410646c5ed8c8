"""The listening socket's accept queue: connections the kernel has completed and the server
has not yet ``accept()``ed, read at scrape time.

For a LISTEN socket ``/proc/net/tcp`` (and ``tcp6``) reports the accept queue's current
length as ``rx_queue``. The sockets are the service's own: those among the open files of
the process that listens (Gunicorn's master and its workers, Uvicorn's process or its
supervisor and workers), matched by inode, so another program on the same port never
counts. The queue's limit is not in ``/proc/net/tcp``: it is the backlog the server asked
for, capped by ``net.core.somaxconn`` as the kernel does at ``listen()``.

What it can see: requests waiting for a free worker when the server accepts only when it
is free (Gunicorn sync, one connection per worker) and when an event loop is too busy to
accept (a blocked Uvicorn loop). What it cannot: connections already accepted and waiting
inside the server (a gthread worker's keep-alive connections wait in its own queue;
Uvicorn and gevent accept eagerly, so their waiting requests sit in the event loop and
the kernel queue stays near 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
_LISTEN = " 0A "  # the state column; the only two-character hex field of a row


@dataclass(frozen=True)
class AcceptQueue:
    connections: int  # completed, not yet accepted, summed over the service's sockets
    limit: int  # the most the kernel keeps before it drops or resets (all sockets)
    sockets: int


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets among ``pid``'s open files (empty if it is gone or not ours)."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listen_rows(tables: tuple[str, ...] = TCP_TABLES) -> dict[int, int]:
    """inode -> accept-queue length of every LISTEN socket in this network namespace."""
    rows: dict[int, int] = {}
    for table in tables:
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                next(fh, None)  # header
                for line in fh:
                    if _LISTEN not in line:
                        continue
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != "0A":
                        continue
                    rows[int(fields[9])] = int(fields[4].split(":")[1], 16)
        except OSError:
            continue
    return rows


def effective_backlog(requested: int, somaxconn: Path = SOMAXCONN) -> int:
    """The limit ``listen(fd, requested)`` gets: the kernel caps it at net.core.somaxconn."""
    try:
        cap = int(somaxconn.read_text().strip())
    except (OSError, ValueError):
        return requested
    return min(requested, cap) if cap > 0 else requested


class AcceptQueueReader:
    """Reads the accept queue of the sockets ``pid`` listens on; remembers their inodes
    (listening sockets live as long as the server) and looks again when they are gone."""

    def __init__(self, pid: int, backlog: int,
                 tables: tuple[str, ...] = TCP_TABLES) -> None:
        self.pid = pid
        self.backlog = backlog
        self.tables = tables
        self._inodes: set[int] = set()

    def read(self) -> AcceptQueue | None:
        """The queue now, or None when ``pid`` listens on nothing (yet)."""
        rows = listen_rows(self.tables)
        mine = self._inodes & rows.keys()
        if not mine:
            self._inodes = socket_inodes(self.pid) & rows.keys()
            mine = self._inodes
        if not mine:
            return None
        return AcceptQueue(connections=sum(rows[i] for i in mine),
                           limit=effective_backlog(self.backlog) * len(mine),
                           sockets=len(mine))
