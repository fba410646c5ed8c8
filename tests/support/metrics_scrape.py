"""Helpers for the metrics tests: scrape and parse /metrics, find a service's workers."""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from loadlab.launch import ServiceProcess
from loadlab.metrics import tally
from support.polling import wait_for as wait_for  # the metrics tests import it from here
from support.system_tools import require_tool


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: list[tuple[str, dict[str, str], float]]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(v for n, lab, v in self.samples
                   if n == name and all(lab.get(k) == x for k, x in labels.items()))

    def has(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.samples)

    def labelsets(self, name: str) -> list[dict[str, str]]:
        return [lab for n, lab, _ in self.samples if n == name]


def scrape(url: str) -> Scrape:
    reply = httpx.get(f"{url}/metrics", timeout=10)
    reply.raise_for_status()
    samples, types = [], {}
    for family in text_string_to_metric_families(reply.text):
        types[family.name] = family.type
        samples += [(s.name, dict(s.labels), s.value) for s in family.samples]
    return Scrape(reply.text, samples, types)


_REQUEST_SERIES = ("http_requests_total", "http_request_duration_seconds_count",
                   "http_requests_in_progress")


SETTLE_GAP_S = max(1.2, tally.FLUSH_INTERVAL_S * 12)


def settled_scrape(url: str, timeout_s: float = 15) -> Scrape:
    """A scrape once every worker has passed on what it served.

    Workers hand their request tallies to the shared metrics at a scrape they answer and
    every ``tally.FLUSH_INTERVAL_S``; the figures are settled when two scrapes
    ``SETTLE_GAP_S`` apart agree on every request series. The gap is many flush intervals:
    on a loaded machine a worker's flusher thread can wait its turn for longer than one
    (two scrapes 0.12 s apart could agree before the second worker had passed its on).
    """
    def key(result: Scrape) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        return sorted((n, tuple(sorted(lab.items())), v) for n, lab, v in result.samples
                      if n in _REQUEST_SERIES)

    deadline = time.monotonic() + timeout_s
    last = scrape(url)
    while True:
        time.sleep(SETTLE_GAP_S)
        result = scrape(url)
        if key(result) == key(last):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"request metrics of {url} still moving after {timeout_s}s")
        last = result


def promtool_check(text: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("promtool"), "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)


def server_master(service: ServiceProcess) -> psutil.Process:
    """``loadlab serve`` runs the server (Gunicorn's master, Uvicorn) as its only child."""
    return psutil.Process(service.pid).children()[0]


def worker_pids(service: ServiceProcess) -> set[int]:
    """Live worker processes: the master's children, without multiprocessing's helpers."""
    pids = set()
    for child in server_master(service).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if any("resource_tracker" in part for part in child.cmdline()):
                continue
        except psutil.Error:
            continue
        pids.add(child.pid)
    return pids


def metrics_dir(service: ServiceProcess) -> Path:
    return Path(server_master(service).environ()["PROMETHEUS_MULTIPROC_DIR"])


def sample_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.db"))


def fetch(url: str, path: str, method: str = "GET", timeout_s: float = 30) -> tuple[int, bytes]:
    """One request on a fresh connection (the kernel spreads those over the workers);
    http.client, not an httpx client per call, which costs milliseconds to build."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def get_all(url: str, paths: Iterable[str]) -> list[int]:
    """Status codes of GETs, one fresh connection each."""
    return [fetch(url, path)[0] for path in paths]
