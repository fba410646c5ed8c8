"""Multiprocess aggregation: the per-scrape collector, dead workers, a bounded directory.

Every worker writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multiprocess mode). Here:

* ``mark_dead(pid)`` drops a dead worker's live gauges (so its in-flight requests and its
  ``loadlab_workers`` 1 leave the sums) and merges its counter and histogram files into
  one archive file per type, so recycled workers (Gunicorn ``max_requests``) do not grow
  the directory without bound (prometheus/client_python #275, #568). Totals are kept
  exactly: the archive holds the sum of every dead worker.
* Gunicorn's master calls it from ``child_exit``; Uvicorn's supervisor has no hook, so
  every scrape first sweeps the directory for pids that are no longer alive.
* Merging and reading take an exclusive / shared ``flock`` on one lock file, so a scrape
  never sees a dead worker's samples twice (archive and own file) or not at all, and an
  aggregated counter never goes backwards.
* A sample file shorter than its header is skipped, not read: prometheus_client creates
  it empty and sizes it a moment later, so a scrape in between (a busy machine stretches
  the moment) failed whole, and a worker killed in between left it empty for good
  (client_python #1199). It holds no samples yet.

This module does not import the metric definitions: Gunicorn's master imports it for its
hook and must not create sample files of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from loadlab.procs import is_alive

ARCHIVE = "archive"  # <type>_archive.db holds the merged samples of dead workers
ARCHIVED_TYPES = ("counter", "histogram", "summary")
LOCK_FILE = ".lock"
HEADER_BYTES = 8  # a sample file's used-bytes word and its padding, there once it is sized


_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def use_cached_pid() -> None:
    """Make multiprocess values name their file by a pid cached per process.

    prometheus_client calls its process identifier on every write, to notice a fork;
    ``os.getpid()`` is a system call, five of them per request. A pid refreshed by an
    at-fork hook meets the library's rule (distinct in concurrent processes) for free.
    Must run before the first metric is created.
    """
    if metrics_dir() is not None:
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _pid[0])


def metrics_dir() -> Path | None:
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(configured) if configured else None


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    with open(path / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), operation)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def file_pid(name: str) -> int | None:
    """The worker pid in a sample file's name (``counter_123.db``, ``gauge_livesum_123.db``)."""
    if not name.endswith(".db"):
        return None
    last = name[:-3].rsplit("_", 1)[-1]
    return int(last) if last.isdigit() else None


def readable(file: str | Path) -> bool:
    """A sample file with its header: one still empty (being created, or left so by a
    worker killed while creating it) holds no samples and cannot be parsed."""
    try:
        return os.stat(file).st_size >= HEADER_BYTES
    except FileNotFoundError:
        return False


def readable_files(path: Path) -> list[str]:
    """The sample files a reader can parse, as prometheus_client's collector globs them."""
    return [f for f in glob.glob(os.path.join(path, "*.db")) if readable(f)]


def pids_with_files(path: Path) -> set[int]:
    return {pid for entry in os.scandir(path) if (pid := file_pid(entry.name)) is not None}


def _write_samples(target: Path, metrics: Iterable[Metric]) -> None:
    """Write merged, non-accumulated samples as one sample file (prometheus_client format)."""
    store = MmapedDict(str(target))
    try:
        for metric in metrics:
            for sample in metric.samples:
                labels = dict(sample.labels)
                key = mmap_key(metric.name, sample.name, list(labels), list(labels.values()),
                               metric.documentation)
                store.write_value(key, sample.value, 0.0)
    finally:
        store.close()


def _archive(path: Path, pid: int) -> None:
    for typ in ARCHIVED_TYPES:
        dead = path / f"{typ}_{pid}.db"
        if not readable(dead):
            dead.unlink(missing_ok=True)  # absent, or never sized: no samples to keep
            continue
        archive = path / f"{typ}_{ARCHIVE}.db"
        sources = [str(p) for p in (archive, dead) if p.exists()]
        merged = MultiProcessCollector.merge(sources, accumulate=False)
        # Not *.db until complete: a scrape never reads a half-written archive.
        staging = path / f".{typ}_{ARCHIVE}.tmp"
        staging.unlink(missing_ok=True)
        _write_samples(staging, merged)
        os.replace(staging, archive)
        dead.unlink()
    # Gauges of the other modes keep dead workers' values on purpose; the lab defines
    # none, so whatever is left of this pid goes and the directory stays bounded.
    for leftover in path.glob(f"gauge_*_{pid}.db"):
        leftover.unlink(missing_ok=True)


def mark_dead(pid: int, path: Path | None = None) -> None:
    """Bookkeeping for a worker that exited: drop its live gauges, archive its totals."""
    path = path or metrics_dir()
    if path is None or not path.is_dir():
        return
    with _locked(path, fcntl.LOCK_EX):
        mark_process_dead(pid, str(path))
        _archive(path, pid)


def sweep(path: Path, own_pid: int | None = None) -> list[int]:
    """Mark dead every pid that left files and no longer runs; returns those pids."""
    own = own_pid or os.getpid()
    dead = [pid for pid in pids_with_files(path) if pid != own and not is_alive(pid)]
    for pid in dead:
        mark_dead(pid, path)
    return dead


class LockedMultiProcessCollector(MultiProcessCollector):
    """prometheus_client's collector, reading under the shared lock (see module doc)."""

    def __init__(self, path: Path) -> None:
        super().__init__(None, str(path))
        self._dir = path

    def collect(self) -> Iterable[Metric]:
        with _locked(self._dir, fcntl.LOCK_SH):
            return list(self.merge(readable_files(self._dir), accumulate=True))
