"""What the FastAPI service's /json does per request beyond a bare app's, in process.

The figures are the benchmark's (benchmarks/bench_metrics_overhead.py); these tests hold
the behaviour behind them: no OpenTelemetry lookups per request, /json matched first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from opentelemetry import _logs, metrics, trace

SERVICE_DIR = Path(__file__).resolve().parent.parent / "services" / "fastapi"


@pytest.fixture()
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.syspath_prepend(str(SERVICE_DIR))
    import fastapi_app

    yield fastapi_app.create_app()


@pytest.fixture()
def provider_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every OpenTelemetry provider lookup made from now on, by kind."""
    seen: list[str] = []

    def spy(kind: str, real: Callable[[], Any]) -> Callable[[], Any]:
        def lookup() -> Any:
            seen.append(kind)
            return real()
        return lookup

    monkeypatch.setattr(trace, "get_tracer_provider", spy("trace", trace.get_tracer_provider))
    monkeypatch.setattr(metrics, "get_meter_provider", spy("metrics", metrics.get_meter_provider))
    monkeypatch.setattr(_logs, "get_logger_provider", spy("logs", _logs.get_logger_provider))
    return seen


def test_a_bare_app_looks_up_the_providers_on_every_request(provider_lookups: list[str]) -> None:
    """The control: FastAPI's default does ask, so the spies see the lookups."""
    bare = FastAPI()

    @bare.get("/json")
    async def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    client = TestClient(bare)
    assert client.get("/json").status_code == 200
    before = len(provider_lookups)
    assert client.get("/json").status_code == 200
    assert len(provider_lookups) > before


def test_the_service_makes_no_provider_lookup_per_request(
        service: FastAPI, provider_lookups: list[str]) -> None:
    client = TestClient(service)
    for path in ("/json", "/healthz", "/nope"):
        client.get(path)
    reply = client.get("/json")
    assert (reply.status_code, reply.json()) == (200, {"message": "Hello, World!"})
    assert provider_lookups == []


def test_json_is_the_first_route_of_the_service(service: FastAPI) -> None:
    """Starlette tries routes in order: /json, the overhead baseline, comes before the rest
    of the contract (FastAPI's own documentation routes are added before any)."""
    api_paths = [r.path for r in service.router.routes if isinstance(r, APIRoute)]
    assert api_paths[0] == "/json"
