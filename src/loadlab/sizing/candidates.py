"""The configurations worth measuring for a CPU budget, from the textbook's starting points.

A branch is one way to serve (server and worker class, threads, pool size) whose workers
are walked upwards: one worker, workers = cores (one event loop or one process per core),
then 2·cores + 1 (Gunicorn's rule of thumb for workers that wait). Threads for I/O come
as gthread branches (4 and 16 threads that wait); event loops and greenlets need none.
On 2 cores that is 15 candidates for a WSGI app (sync, gthread ×4, gthread ×16, gevent,
Granian at 1, 2 and 5 workers) and 8 for an ASGI app; the search measures only those its
bounds cannot rule out (``search``). ``--candidates`` names an explicit set instead.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from loadlab.errors import UserError
from loadlab.servers import CLASSES, WORKER_CLASSES, classes_for, server_of

# Threads per gthread worker tried for I/O-bound apps (few for CPU, many for waiting).
IO_THREADS = (4, 16)
MAX_WORKERS = 64


class CandidateError(UserError, ValueError):
    """A --candidates entry that cannot be used (one line, exit 2)."""


@dataclass(frozen=True, order=True)
class Branch:
    """One way to serve; its workers are walked upwards by the search."""

    worker_class: str
    threads: int = 1
    db_pool_size: int | None = None

    def label(self) -> str:
        text = self.worker_class + (f" ×{self.threads} threads" if self.threads > 1 else "")
        return text + (f", pool {self.db_pool_size}" if self.db_pool_size else "")


@dataclass(frozen=True, order=True)
class Candidate:
    branch: Branch
    workers: int

    @property
    def worker_class(self) -> str:
        return self.branch.worker_class

    @property
    def threads(self) -> int:
        return self.branch.threads

    @property
    def db_pool_size(self) -> int | None:
        return self.branch.db_pool_size

    def label(self) -> str:
        """"gthread 2×8", "uvicorn ×2", "sync ×5 (pool 4)"."""
        b = self.branch
        shape = f"{self.workers}×{b.threads}" if b.threads > 1 else f"×{self.workers}"
        return f"{b.worker_class} {shape}" + (f" (pool {b.db_pool_size})"
                                               if b.db_pool_size else "")


def cores_of(cpus: float) -> int:
    """Whole cores in the budget (at least one)."""
    return max(1, math.floor(cpus + 1e-9))


def installed(worker_class: str) -> bool:
    """Whether the worker class's server can run here (Granian is optional)."""
    server = server_of(worker_class)
    module = {"uvicorn-worker": "uvicorn_worker"}.get(worker_class, server.name)
    if worker_class == "gevent":
        module = "gevent"
    return importlib.util.find_spec(module) is not None


def textbook(classes: Sequence[str], cpus: float,
             pool_sizes: Sequence[int] = ()) -> dict[Branch, list[int]]:
    """Each branch with the workers to walk, over the worker classes that fit the app
    (``serving_classes``)."""
    cores = cores_of(cpus)
    walk = sorted({1, cores, 2 * cores + 1})
    from_cores = sorted({cores, 2 * cores + 1})
    plan: dict[str, list[tuple[int, list[int]]]] = {
        "uvicorn": [(1, walk)],
        "uvicorn-worker": [(1, from_cores)],  # its one worker is uvicorn's
        "granian": [(1, walk)],
        "sync": [(1, walk)],
        "gthread": [(t, walk) for t in IO_THREADS],
        "gevent": [(1, walk)],
    }
    pools: list[int | None] = list(pool_sizes) or [None]
    out: dict[Branch, list[int]] = {}
    for klass in classes:
        if klass not in plan or not installed(klass):
            continue
        for threads, workers in plan[klass]:
            for pool in pools:
                out[Branch(klass, threads, pool)] = workers
    return out


_ENTRY = re.compile(r"^([a-z][a-z0-9-]*)[:\s]+(\d+)(?:x(\d+))?$")


def serving_classes(target: str, interface: str = "") -> tuple[str, ...]:
    """The worker classes that can serve a built-in ``target`` or an app's ``interface``."""
    return classes_for(interface) if interface else WORKER_CLASSES[target]


def parse_candidates(text: str, classes: Sequence[str], what: str,
                     pool_sizes: Sequence[int] = ()) -> dict[Branch, list[int]]:
    """``"sync:2,gthread:2x8,uvicorn:2"``: worker class, workers, threads (an explicit set;
    each branch still stops early when more workers no longer help)."""
    out: dict[Branch, list[int]] = {}
    pools: list[int | None] = list(pool_sizes) or [None]
    for raw in (p.strip() for p in text.split(",")):
        match = _ENTRY.match(raw)
        if match is None:
            raise CandidateError(f"--candidates {raw!r}: expected CLASS:WORKERS or "
                                 "CLASS:WORKERSxTHREADS, e.g. gthread:2x8")
        klass, workers = match[1], int(match[2])
        threads = int(match[3] or 1)
        if klass not in CLASSES or klass not in classes:
            raise CandidateError(f"--candidates {raw!r}: {klass!r} does not serve {what} "
                                 f"(one of {', '.join(classes)})")
        if not 1 <= workers <= MAX_WORKERS:
            raise CandidateError(f"--candidates {raw!r}: workers must be 1..{MAX_WORKERS}")
        if threads > 1 and klass not in ("gthread", "granian"):
            raise CandidateError(f"--candidates {raw!r}: threads mean nothing to {klass}")
        if not 1 <= threads <= 256:
            raise CandidateError(f"--candidates {raw!r}: threads must be 1..256")
        for pool in pools:
            walk = out.setdefault(Branch(klass, threads, pool), [])
            if workers not in walk:
                walk.append(workers)
                walk.sort()
    if not out:
        raise CandidateError("--candidates: name at least one")
    return out
