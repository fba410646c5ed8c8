"""The multiprocess directory stays bounded while workers come and go, and totals stay exact.

prometheus_client leaves a counter and a histogram file per worker pid for good
(client_python #275, #568): with recycled workers the directory, and every scrape's
work, grows without bound. The lab merges a dead worker's files into one archive per type.
"""

from __future__ import annotations

import http.client
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from support.metrics_scrape import (
    fetch,
    metrics_dir,
    sample_files,
    scrape,
    settled_scrape,
    wait_for,
)
from support.services import start_service

from loadlab.metrics.multiprocess import LockedMultiProcessCollector, mark_dead

REQUESTS = 160
MAX_REQUESTS = 10  # per worker before Gunicorn recycles it
UVICORN_MAX_REQUESTS = 10  # checked on a 100 ms tick, so a worker serves a few more
UVICORN_MAX_SENT = 600  # requests until a replacement worker has answered, at most

# One "worker": counts and observes, then exits, leaving its files like a real worker.
_WORKER = """
import sys
from prometheus_client import CollectorRegistry, Counter, Histogram
reg = CollectorRegistry()
c = Counter("jobs_total", "jobs", ["kind"], registry=reg)
h = Histogram("job_seconds", "job time", buckets=(0.1, 1.0), registry=reg)
n = int(sys.argv[1])
for i in range(n):
    c.labels("a" if i % 2 else "b").inc()
    h.observe(0.05 if i % 3 else 0.5)
print(__import__("os").getpid())
"""


def _run_worker(directory: Path, n: int) -> int:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
    out = subprocess.run([sys.executable, "-c", _WORKER, str(n)], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    return int(out.stdout)


def _totals(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in LockedMultiProcessCollector(directory).collect()
            for s in family.samples}


def test_archive_keeps_totals_exactly(tmp_path: Path) -> None:
    pids = [_run_worker(tmp_path, n) for n in (5, 7, 11)]
    before = _totals(tmp_path)
    assert before[("jobs_total", (("kind", "a"),))] == 2 + 3 + 5
    for pid in pids:
        mark_dead(pid, tmp_path)
        assert _totals(tmp_path) == pytest.approx(before)  # sums: float addition order
    assert sample_files(tmp_path) == ["counter_archive.db", "histogram_archive.db"]
    mark_dead(pids[0], tmp_path)  # twice (hook and sweep both saw it): no change
    assert _totals(tmp_path) == pytest.approx(before)
    assert before[("job_seconds_count", ())] == 23
    assert before[("job_seconds_bucket", (("le", "0.1"),))] == sum(
        sum(1 for i in range(n) if i % 3) for n in (5, 7, 11))


def test_a_sample_file_not_yet_sized_is_skipped_and_swept(tmp_path: Path) -> None:
    """prometheus_client creates a worker's sample file empty and sizes it a moment later;
    a scrape in that moment (a busy machine stretches it) failed whole, with a 500 from the
    side port, and a worker killed in it left the file empty for good (client_python #1199)."""
    pids = [_run_worker(tmp_path, n) for n in (5, 7)]
    before = _totals(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True, timeout=60)
    ghost = int(gone.stdout)  # exited: as a worker killed while creating its files
    (tmp_path / f"counter_{ghost}.db").touch()
    (tmp_path / f"histogram_{ghost}.db").write_bytes(b"\0" * 4)  # half the header
    with pytest.raises(struct.error):  # what the library's own collector does with them
        list(MultiProcessCollector(None, str(tmp_path)).collect())
    assert _totals(tmp_path) == before
    mark_dead(ghost, tmp_path)
    assert sorted(sample_files(tmp_path)) == sorted(
        f"{typ}_{pid}.db" for typ in ("counter", "histogram") for pid in pids)
    assert _totals(tmp_path) == before


@pytest.mark.slow
def test_recycled_workers_keep_the_directory_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADLAB_MAX_REQUESTS", str(MAX_REQUESTS))
    service = start_service(framework="flask", worker_class="sync", workers=2)
    try:
        directory = metrics_dir(service)
        pids = set()
        largest = 0
        for _ in range(REQUESTS):
            status, body = fetch(service.url, "/info")
            assert status == 200
            pids.add(json.loads(body)["pid"])
            largest = max(largest, len(sample_files(directory)))
        # No scrape so far: Gunicorn's child_exit hook alone kept the directory bounded.
        assert len(pids) >= REQUESTS // MAX_REQUESTS // 2, "workers were not recycled"
        # per live worker: counter, histogram, live gauges; plus one archive per type;
        # plus at most one worker between its exit and the master's reaping.
        assert largest <= 3 * 3 + 2, sample_files(directory)
        result = settled_scrape(service.url)
        assert result.value("http_requests_total", handler="/info", status="200") == REQUESTS
        assert result.value("http_request_duration_seconds_count", handler="/info") == REQUESTS
        # The last recycled worker's replacement may still be loading the app.
        wait_for(lambda: scrape(service.url).value("loadlab_workers") == 2, 10, "2 workers")
        assert result.value("http_requests_in_progress") == 0
    finally:
        service.stop()


@pytest.mark.slow
def test_recycled_uvicorn_workers_are_replaced_and_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same knob under Uvicorn (--limit-max-requests): a worker leaves after its share,
    passes its tallies on at lifespan shutdown, the supervisor starts another, and the
    scrape's sweep merges the dead worker's files (Uvicorn has no child_exit hook).

    An exiting Uvicorn worker closes the connections it accepted but had not read a request
    from yet, so a client can see the connection closed without an answer (docs/soak.md).
    Those requests never reached the application: the counts must equal the answers."""
    monkeypatch.setenv("LOADLAB_MAX_REQUESTS", str(UVICORN_MAX_REQUESTS))
    monkeypatch.setenv("LOADLAB_MAX_REQUESTS_JITTER", "2")
    service = start_service(framework="fastapi", worker_class="uvicorn", workers=2)
    try:
        directory = metrics_dir(service)
        pids = set()
        answered = dropped = 0
        deadline = time.monotonic() + 60
        while len(pids) < 3 and answered + dropped < UVICORN_MAX_SENT \
                and time.monotonic() < deadline:
            try:
                status, body = fetch(service.url, "/info")
            except (http.client.RemoteDisconnected, ConnectionResetError):
                dropped += 1
                continue
            assert status == 200
            answered += 1
            pids.add(json.loads(body)["pid"])
        assert len(pids) >= 3, f"no worker was replaced: {pids}"
        assert dropped <= answered // 4, f"{dropped} dropped, {answered} answered"
        result = settled_scrape(service.url)
        assert result.value("http_requests_total", handler="/info", status="200") == answered
        assert result.value("http_request_duration_seconds_count", handler="/info") == answered
        # Swept at that scrape: two live workers' files and the archives, not one set per pid.
        assert len(sample_files(directory)) <= 3 * 3 + 2, sample_files(directory)
        wait_for(lambda: scrape(service.url).value("loadlab_workers") == 2, 15, "2 workers")
    finally:
        service.stop()
