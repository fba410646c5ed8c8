"""Every variant answers /healthz, and /info says what it runs on (loadlab.serverinfo)."""

from __future__ import annotations

import httpx
import pytest

from loadlab.launch import ServiceProcess

# Two more services started for what test_contract's test_healthz_and_json and
# test_info_describes_the_variant already hold on the same variants: in ``make test`` only.
pytestmark = pytest.mark.slow


def test_health_and_info(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    info = httpx.get(f"{service.url}/info").json()
    assert info["framework"] == service.cfg.framework
    assert info["worker_class"] == service.cfg.worker_class
    assert info["workers"] == service.cfg.workers
