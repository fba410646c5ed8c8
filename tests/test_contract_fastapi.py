"""FastAPI's offloading, as the contract states it: /mixed's work leaves the event loop
(the thread pool, as /cpu), and /cpu/process outlives a dead pool process (503 with the
contract's body while the pool is replaced, then answers again)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from support.metrics_scrape import fetch, scrape, wait_for
from support.services import start_service

from loadlab.contract import MAX_CPU_WORK
from loadlab.launch import ServiceProcess


@pytest.fixture(scope="module")
def fastapi_one() -> Iterator[ServiceProcess]:
    """One Uvicorn process: the app, its process pool and its thread pool all in one."""
    service = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    try:
        yield service
    finally:
        service.stop()


def _pool_processes(app_pid: int) -> list[psutil.Process]:
    """The app process's process-pool workers (forked: the same command line)."""
    app = psutil.Process(app_pid)
    return [child for child in app.children()
            if child.cmdline() == app.cmdline() and child.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow  # a real service held busy
def test_mixed_runs_its_work_in_the_thread_pool(fastapi_one: ServiceProcess) -> None:
    url = fastapi_one.url
    path = f"/mixed?ms=1&work={MAX_CPU_WORK}"
    with ThreadPoolExecutor(2) as pool:
        mixed = [pool.submit(fetch, url, path, "GET", 300) for _ in range(2)]
        # Both hold a thread-pool token, seen by the loop's own sampler: the loop is free.
        wait_for(lambda: scrape(url).value("loadlab_threadpool_busy") >= 2, 60,
                 "both /mixed requests working in the thread pool")
        assert fetch(url, "/healthz")[0] == 200
        assert not all(future.done() for future in mixed), "/healthz waited for /mixed"
        assert [future.result()[0] for future in mixed] == [200, 200]


def test_a_dead_pool_process_is_replaced(fastapi_one: ServiceProcess) -> None:
    url = fastapi_one.url
    assert fetch(url, "/cpu/process?work=10")[0] == 200
    app_pid = json.loads(fetch(url, "/info")[1])["pid"]
    before = _pool_processes(app_pid)
    assert before, "no process-pool worker found"
    victim = before[0]
    victim.kill()  # as the OOM killer would
    victim.wait(timeout=30)
    answers: list[httpx.Response] = []

    def served_again() -> bool:
        answers.append(httpx.get(f"{url}/cpu/process?work=10", timeout=30))
        return answers[-1].status_code == 200 and any(a.status_code == 503 for a in answers)

    wait_for(served_again, 60, "a 503 while the pool is replaced, then 200 again")
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 503:
            assert answer.json() == {"detail": "process pool restarting"}
            assert answer.headers["content-type"] == "application/json"
            assert "retry-after" in answer.headers
    after = {proc.pid for proc in _pool_processes(app_pid)}
    assert after and victim.pid not in after
    assert fetch(url, "/healthz")[0] == 200
