"""The benchmarks' pinning helper puts every service it starts on the server core, the
second and later ones too (it once asked the cores after narrowing them to the load core,
so only the first service of a benchmark was pinned)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _reliability import LOAD_CPU, SERVER_CPU, can_pin, pinned_service

pytestmark = [pytest.mark.slow,  # a benchmark's services started one after another
              pytest.mark.skipif(not can_pin(), reason="needs cores 0 and 1")]


def tree_affinities(pid: int) -> set[frozenset[int]]:
    root = psutil.Process(pid)
    return {frozenset(p.cpu_affinity()) for p in [root, *root.children(recursive=True)]}


def test_consecutive_services_all_run_on_the_server_core() -> None:
    before = os.sched_getaffinity(0)
    try:
        for framework, worker_class in (("flask", "sync"), ("fastapi", "uvicorn")):
            with pinned_service({"framework": framework, "worker_class": worker_class,
                                 "workers": 2}) as service:
                assert tree_affinities(service.pid) == {frozenset({SERVER_CPU})}
                # The load this process starts next goes to the other core.
                assert os.sched_getaffinity(0) == {LOAD_CPU}
    finally:
        os.sched_setaffinity(0, before)
