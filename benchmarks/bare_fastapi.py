"""The bare FastAPI hello-world app the lab service is compared with (and with metrics).

FastAPI's defaults throughout, its per-request OpenTelemetry hooks included (the lab service
turns them off: it configures no provider), so lab / bare reads what the lab costs against
a default app; docs/metrics.md#cost gives the like-for-like figure as well.
"""

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
