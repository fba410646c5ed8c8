"""Every variant answers /healthz, and /info says what it runs on (loadlab.serverinfo)."""

from __future__ import annotations

import httpx

from loadlab.launch import ServiceProcess


def test_health_and_info(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    info = httpx.get(f"{service.url}/info").json()
    assert info["framework"] == service.cfg.framework
    assert info["worker_class"] == service.cfg.worker_class
    assert info["workers"] == service.cfg.workers
