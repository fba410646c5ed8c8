"""The bare FastAPI hello-world app the lab service is compared with (and with metrics)."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/json")
    async def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    return app


def create_instrumented_app() -> FastAPI:
    """The bare app plus only the lab's metrics middleware: the instrumentation's own cost."""
    from loadlab import metrics
    from loadlab.settings import ServiceSettings

    app = create_app()
    metrics.register_server_info("fastapi", ServiceSettings())
    app.add_middleware(metrics.ASGIMetricsMiddleware)
    return app
