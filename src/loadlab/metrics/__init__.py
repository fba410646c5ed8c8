"""Instrumentation shared by both services (names fixed in DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from loadlab.settings import ServiceSettings


class ASGIMetricsMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class WSGIMetricsMiddleware:
    def __init__(self, app: Any, url_map: Any) -> None:
        self.app = app
        self.url_map = url_map

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def register_server_info(framework: str, settings: ServiceSettings) -> None:
    return None


def start_async_probes() -> Callable[[], None]:
    return lambda: None
