"""The bare Flask hello-world app the lab service is compared with (and with metrics)."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/json")
    def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    return app


def create_instrumented_app() -> Flask:
    """The bare app plus only the lab's metrics middleware: the instrumentation's own cost."""
    from loadlab import metrics
    from loadlab.settings import ServiceSettings

    app = create_app()
    metrics.register_server_info("flask", ServiceSettings())
    app.wsgi_app = metrics.WSGIMetricsMiddleware(app.wsgi_app, app.url_map)  # type: ignore[method-assign]
    return app
