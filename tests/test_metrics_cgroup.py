"""CPU limit and CFS throttling figures under a real cgroup quota (``serve --cpus``).

Needs a native quota mechanism (root on cgroup v1, or a delegated v2 tree), like the
cgroup tests of ``serve``; elsewhere skipped with the reason ``loadlab doctor`` gives.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.metrics_scrape import fetch, scrape
from support.services import start_service
from support.system_tools import require

from loadlab import cpulimit

CPUS = 0.5
BUSY_S = 2.0


def _burn(url: str) -> int:
    """/cpu requests back to back for BUSY_S seconds (bounded in count too)."""
    deadline, done = time.monotonic() + BUSY_S, 0
    while time.monotonic() < deadline and done < 500:
        assert fetch(url, "/cpu?work=3000")[0] == 200
        done += 1
    return done


@pytest.mark.slow
@pytest.mark.parametrize("framework,worker_class", [("flask", "sync"), ("fastapi", "uvicorn")])
def test_limit_and_throttling_under_a_quota(framework: str, worker_class: str) -> None:
    mechanism = cpulimit.native_mechanism()
    require("cgroup", None if mechanism in ("cgroup-v1", "cgroup-v2")
            else f"no writable cgroup here (only {mechanism})")
    service = start_service(framework=framework, worker_class=worker_class, workers=2,
                            cpus=CPUS)
    try:
        before = scrape(service.url)
        assert before.value("loadlab_cpu_limit_cores") == CPUS
        [info] = before.labelsets("loadlab_server_info")
        assert info["cpus"] == f"{CPUS:g}"
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # two workers busy against half a core
            assert sum(pool.map(_burn, [service.url] * 2)) > 0
        wall = time.monotonic() - started
        after = scrape(service.url)

        def delta(name: str) -> float:
            return after.value(name) - before.value(name)

        used = delta("loadlab_cpu_usage_seconds_total")
        # Never more than the quota (with slack for period edges); a floor would only test
        # how busy the rest of this shared machine is.
        assert 0 < used < 1.3 * CPUS * wall, (used, wall)
        throttled = delta("loadlab_cpu_throttled_periods_total")
        assert delta("loadlab_cpu_periods_total") >= throttled > 0
        assert delta("loadlab_cpu_throttled_seconds_total") > 0
    finally:
        service.stop()
