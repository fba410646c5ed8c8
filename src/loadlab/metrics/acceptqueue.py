"""The listening socket's accept queue: connections the kernel has completed and the server
has not yet ``accept()``ed, read at scrape time.

For a LISTEN socket the kernel reports the accept queue's current length and its limit
(the ``listen()`` backlog, capped by ``net.core.somaxconn``): ``ss -lnt`` shows them as
Recv-Q and Send-Q. They are read with the kernel's socket-diagnostics netlink interface
(``NETLINK_SOCK_DIAG``, asking for LISTEN sockets only, so the cost does not grow with the
thousands of TIME_WAIT connections a load test leaves), else from ``/proc/net/tcp`` and
``tcp6`` (``rx_queue`` of the LISTEN row; the limit is then the backlog the server asked
for, capped by ``net.core.somaxconn`` as the kernel does). Only the service's own sockets
count: those among the open files of the process that listens (Gunicorn's master and its
workers, Uvicorn's process or its supervisor and workers; Granian's workers, each with a
socket of its own on the shared port), matched by inode, so another program on the same
port never counts.

What it can see: requests waiting for a free worker when the server accepts only when it
is free (Gunicorn sync, one connection per worker) and when an event loop is too busy to
accept (a blocked Uvicorn loop). What it cannot: connections already accepted and waiting
inside the server (a gthread worker's keep-alive connections wait in its own queue;
Uvicorn and gevent accept eagerly, so their waiting requests sit in the event loop and
the kernel queue stays near 0).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
_LISTEN = " 0A "  # the state column; the only two-character hex field of a row

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes).
_REQUEST = struct.Struct("=BBBBI48s")
# inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
_DIAG_MSG = struct.Struct("=BBBB48sIIIII")


@dataclass(frozen=True)
class AcceptQueue:
    connections: int  # completed, not yet accepted, summed over the service's sockets
    limit: int  # the most the kernel keeps before it drops or resets (all sockets)
    sockets: int


def netlink_listeners() -> dict[int, tuple[int, int]] | None:
    """inode -> (queue, limit) of every TCP LISTEN socket in this network namespace, from
    NETLINK_SOCK_DIAG; None where that interface is not available."""
    found: dict[int, tuple[int, int]] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(2.0)
            for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
                body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN,
                                     bytes(48))
                header = _NLMSG.pack(_NLMSG.size + len(body), _SOCK_DIAG_BY_FAMILY,
                                     _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0)
                sock.sendto(header + body, (0, 0))
                if not _read_dump(sock, seq, found):
                    return None
    except OSError:
        return None
    return found


def _read_dump(sock: socket.socket, seq: int, found: dict[int, tuple[int, int]]) -> bool:
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, kind, _flags, got_seq, _pid = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                return False
            if got_seq == seq:
                if kind == _NLMSG_DONE:
                    return True
                if kind == _NLMSG_ERROR:
                    return False
                if kind == _SOCK_DIAG_BY_FAMILY and length >= _NLMSG.size + _DIAG_MSG.size:
                    fields = _DIAG_MSG.unpack_from(data, offset + _NLMSG.size)
                    rqueue, wqueue, inode = fields[6], fields[7], fields[9]
                    found[inode] = (rqueue, wqueue)
            offset += (length + 3) & ~3


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


def child_pids(pid: int) -> list[int]:
    """``pid``'s children (all its threads'), from /proc; empty if it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
    return found


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

    def __init__(self, pid: int, backlog: int, tables: tuple[str, ...] = TCP_TABLES,
                 netlink: bool = True) -> None:
        self.pid = pid
        self.backlog = backlog  # the limit when only /proc/net/tcp can be read
        self.tables = tables
        self.netlink = netlink
        self._inodes: set[int] = set()
        self._per_worker = False

    def read(self) -> AcceptQueue | None:
        """The queue now, or None when ``pid`` listens on nothing (yet)."""
        diag = netlink_listeners() if self.netlink else None
        if diag is None:
            limit = effective_backlog(self.backlog)
            diag = {inode: (queue, limit) for inode, queue in listen_rows(self.tables).items()}
        mine = self._inodes & diag.keys()
        if not mine or self._per_worker:
            self._inodes = socket_inodes(self.pid) & diag.keys()
            self._per_worker = not self._inodes
            if self._per_worker:
                # Each worker binds its own socket (Granian, SO_REUSEPORT): the root holds
                # none, its children do, and they come, go and respawn: look every time.
                for child in child_pids(self.pid):
                    self._inodes |= socket_inodes(child) & diag.keys()
            mine = self._inodes
        if not mine:
            return None
        return AcceptQueue(connections=sum(diag[i][0] for i in mine),
                           limit=sum(diag[i][1] for i in mine), sockets=len(mine))
