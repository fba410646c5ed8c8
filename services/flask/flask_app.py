"""The Flask service: a thin WSGI adapter over the loadlab core.

Run it with ``loadlab serve flask`` (Gunicorn: sync, gthread or gevent workers).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import requests
from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as WerkzeugResponse

from loadlab import contract, metrics, service_db, workloads
from loadlab.requestinfo import describe_request
from loadlab.serverinfo import server_info, with_gil_state
from loadlab.settings import ServiceSettings, upstream_target

FRAMEWORK = "flask"


def _query(model: type[contract.M]) -> contract.M:
    return contract.parse_query(model, list(request.args.items(multi=True)))


class StarletteStyleJSON(DefaultJSONProvider):
    """JSON written byte for byte as Starlette writes it: compact, UTF-8, no newline."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=self.default)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return cast(Response, self._app.response_class(self.dumps(obj), mimetype=self.mimetype))


def _body() -> bytes:
    # Gunicorn de-chunks wsgi.input; Werkzeug would drop a body sent without Content-Length.
    return contract.read_limited(request.environ["wsgi.input"].read)


def _upstream_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _local_address() -> tuple[str, int] | None:
    """The local end of this request's connection as the server reports it (Gunicorn's
    socket). Not SERVER_NAME: Gunicorn fills that from the client's Host header."""
    sock = request.environ.get("gunicorn.socket")
    try:
        host, port = sock.getsockname()[:2] if sock is not None else (None, None)
    except (OSError, ValueError, TypeError):
        return None
    return (str(host), int(port)) if host is not None and port is not None else None


def create_app(settings: ServiceSettings | None = None) -> Flask:
    settings = settings or ServiceSettings()
    info = server_info(FRAMEWORK, settings)
    http = _upstream_session(max(10, settings.threads))
    # Gunicorn calls the factory in each worker, after the fork: one pool per process.
    database = service_db.SyncDatabase(settings).open()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = contract.MAX_BODY_BYTES
    # The contract lists GET and POST only; FastAPI answers OPTIONS and HEAD with 405 too.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json = StarletteStyleJSON(app)

    @app.errorhandler(contract.ContractError)
    def _contract_error(exc: contract.ContractError) -> tuple[Response, int, dict[str, str]]:
        return jsonify(exc.body), exc.status, exc.headers

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        return jsonify({"detail": contract.TOO_LARGE}), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> WerkzeugResponse:
        response = exc.get_response()
        response.data = app.json.dumps({"detail": exc.name})
        response.content_type = "application/json"
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return contract.Health().model_dump()

    @app.get("/json")
    def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @app.get("/io")
    def io() -> dict[str, Any]:
        params = _query(contract.IoParams)
        workloads.io_wait_sync(params.ms)
        return contract.Slept(slept_ms=params.ms).model_dump()

    def _cpu() -> dict[str, Any]:
        params = _query(contract.CpuParams)
        result = workloads.cpu_work(params.work)
        return contract.CpuResult(work=params.work, result=result).model_dump()

    # A sync worker has no event loop to block and no process pool: all three are one.
    app.add_url_rule("/cpu", "cpu", _cpu)
    app.add_url_rule("/cpu/blocking", "cpu_blocking", _cpu)
    app.add_url_rule("/cpu/process", "cpu_process", _cpu)

    @app.get("/mixed")
    def mixed() -> dict[str, Any]:
        params = _query(contract.MixedParams)
        workloads.io_wait_sync(params.ms)
        result = workloads.cpu_work(params.work)
        mixed = contract.MixedResult(slept_ms=params.ms, work=params.work, result=result)
        return mixed.model_dump()

    @app.get("/db")
    def db_() -> dict[str, int]:
        return database.world()

    @app.get("/queries")
    def queries() -> list[dict[str, int]]:
        return database.worlds(_query(contract.QueriesParams).n)

    def _db_sleep() -> dict[str, Any]:
        params = _query(contract.IoParams)
        database.sleep(params.ms)
        return contract.Slept(slept_ms=params.ms).model_dump()

    # A sync worker's driver blocks only its own request: the mistake has nothing to break.
    app.add_url_rule("/db/sleep", "db_sleep", _db_sleep)
    app.add_url_rule("/db/blocking", "db_blocking", _db_sleep)

    @app.get("/upstream")
    def upstream() -> dict[str, Any]:
        params = _query(contract.UpstreamParams)
        url = upstream_target(settings, None if settings.bind else _local_address())
        if url is None:
            raise contract.unavailable("no upstream: set UPSTREAM_URL")
        started = time.perf_counter()
        reply = contract.get_upstream(
            lambda: http.get(url, params={"ms": params.ms}, timeout=settings.upstream_timeout_s),
            requests.RequestException)
        return contract.upstream_result(url, reply.status_code, params.ms, started).model_dump()

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        contract.check_json_request(request.headers.get("Content-Type"),
                                    request.headers.get("Content-Length"))
        return contract.echo(contract.parse_body(contract.EchoItem, _body())).model_dump()

    @app.get("/request")
    def request_() -> dict[str, Any]:
        client = (request.remote_addr, request.environ.get("REMOTE_PORT"))
        port = client[1]
        return describe_request(
            method=request.method,
            path=request.path,
            query=request.args.items(multi=True),
            headers=request.headers.items(),
            cookies=request.cookies,
            client=(client[0], int(port) if port else None) if client[0] else None,
            content_type=request.content_type,
            content_length=request.content_length,
        ).model_dump()

    @app.get("/info")
    def info_() -> dict[str, Any]:
        return with_gil_state(info).model_dump()

    @app.get("/metrics")
    def metrics_() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, content_type=content_type)

    for rule in app.url_map.iter_rules():
        rule.methods.discard("HEAD")  # type: ignore[union-attr]
    metrics.register_server_info(FRAMEWORK, settings)
    app.wsgi_app = metrics.WSGIMetricsMiddleware(app.wsgi_app, app.url_map)  # type: ignore[method-assign]
    return app
