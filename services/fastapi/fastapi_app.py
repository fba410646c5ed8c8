"""The FastAPI service: a thin ASGI adapter over the loadlab core.

Run it with ``loadlab serve fastapi`` (Uvicorn, or Gunicorn with the uvicorn-worker class).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from loadlab import contract, metrics, service_db, workloads
from loadlab.openapi import with_contract_errors
from loadlab.requestinfo import describe_request
from loadlab.serverinfo import server_info, with_gil_state
from loadlab.settings import ServiceSettings, upstream_target

FRAMEWORK = "fastapi"
_PARAM_NAMES = {"ms", "work", "n"}
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class RequestGuard:
    """Checks made before routing, as a pure ASGI layer: Gunicorn's request-line and header
    limits (which Uvicorn's httptools lacks), and repeated contract parameters.

    The duplicate check runs here rather than as a FastAPI dependency: a request without a
    query string (``/json``, ``/healthz``) then pays nothing for it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        # A plain function handing back the awaitable of the layer it picks, not a
        # coroutine of its own: a request then pays for no extra coroutine and frame here
        # (about 1 µs of a bare /json's 55, measured in-process).
        if scope["type"] == "http":
            target = len(scope["raw_path"]) + len(scope["query_string"]) + 1
            error = contract.request_limit_error(target, scope["headers"])
            if error is None and scope["query_string"]:
                error = _duplicate_params_error(scope["query_string"])
            if error is not None:
                return JSONResponse(error.body, status_code=error.status)(scope, receive, send)
        return self.app(scope, receive, send)


def _duplicate_params_error(query_string: bytes) -> contract.ContractError | None:
    items = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    errors = contract.duplicated_params(items, _PARAM_NAMES)
    return contract.unprocessable(errors) if errors else None


def _echo_openapi() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": contract.EchoItem.model_json_schema()}},
        }
    }


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    info = server_info(FRAMEWORK, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=settings.upstream_timeout_s) as client:
            app.state.http = client
            app.state.pool = ProcessPoolExecutor(max_workers=settings.process_pool_size)
            app.state.db = await service_db.AsyncDatabase(settings).open()
            # The textbook mistake's own pool, opened by its first request: it is not part
            # of the connections this service normally holds.
            app.state.blocking_db = service_db.SyncDatabase(settings, size=1,
                                                            name="loadlab-blocking")
            stop_probes = metrics.start_async_probes()
            try:
                yield
            finally:
                stop_probes()
                app.state.pool.shutdown(wait=False, cancel_futures=True)
                app.state.blocking_db.close()
                await app.state.db.close()

    app = FastAPI(
        title="loadlab service",
        version="1",
        description="The contract both loadlab services implement (FastAPI and Flask).",
        lifespan=lifespan,
        redirect_slashes=False,  # /io/ is 404 on both services, not a redirect on one
        # The lab exports Prometheus metrics and configures no OpenTelemetry provider, yet
        # FastAPI's native telemetry asks OpenTelemetry for three providers (each an
        # os.environ lookup) on every request: about 9% of /json's CPU, measured over HTTP.
        telemetry=NO_TELEMETRY,
    )

    @app.exception_handler(contract.ContractError)
    async def _contract_error(_: Request, exc: contract.ContractError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": contract.validation_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    # The framework-overhead baseline renders its answer per request, as a JSONResponse:
    # validating a constant through the Message model cost about 5% of /json throughput.
    # It is the first route the router tries (after FastAPI's own documentation routes):
    # each route tried before the one that matches costs about 1 µs.
    ok = {"model": contract.Message, "description": "Successful Response"}

    @app.get("/json", responses={200: ok})
    async def json_() -> JSONResponse:
        return JSONResponse({"message": "Hello, World!"})

    @app.get("/healthz", response_model=contract.Health)
    async def healthz() -> contract.Health:
        return contract.Health()

    @app.get("/io", response_model=contract.Slept)
    async def io(params: Annotated[contract.IoParams, Query()]) -> contract.Slept:
        await workloads.io_wait_async(params.ms)
        return contract.Slept(slept_ms=params.ms)

    @app.get("/cpu", response_model=contract.CpuResult)
    def cpu(params: Annotated[contract.CpuParams, Query()]) -> contract.CpuResult:
        # A plain def: Starlette runs it in the AnyIO thread pool (40 tokens).
        return contract.CpuResult(work=params.work, result=workloads.cpu_work(params.work))

    @app.get("/cpu/blocking", response_model=contract.CpuResult)
    async def cpu_blocking(params: Annotated[contract.CpuParams, Query()]) -> contract.CpuResult:
        # Deliberately wrong: CPU work on the event loop stalls every other request.
        return contract.CpuResult(work=params.work, result=workloads.cpu_work(params.work))

    @app.get("/cpu/process", response_model=contract.CpuResult)
    async def cpu_process(
        request: Request, params: Annotated[contract.CpuParams, Query()]
    ) -> contract.CpuResult:
        pool = request.app.state.pool
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                pool, workloads.cpu_work, params.work)
        except BrokenProcessPool:
            # A pool process died (OOM kill, segfault): the executor is unusable for good.
            # Replace it once (concurrent failures see it replaced already) and answer 503;
            # the next request runs on the new pool.
            if request.app.state.pool is pool:
                request.app.state.pool = ProcessPoolExecutor(
                    max_workers=settings.process_pool_size)
                pool.shutdown(wait=False, cancel_futures=True)
            raise contract.unavailable("process pool restarting") from None
        return contract.CpuResult(work=params.work, result=result)

    @app.get("/mixed", response_model=contract.MixedResult)
    async def mixed(params: Annotated[contract.MixedParams, Query()]) -> contract.MixedResult:
        # The wait on the event loop, then the work in the thread pool as /cpu's: CPU work
        # on the loop would stall every other request (that mistake is /cpu/blocking's).
        await workloads.io_wait_async(params.ms)
        result = await run_in_threadpool(workloads.cpu_work, params.work)
        return contract.MixedResult(slept_ms=params.ms, work=params.work, result=result)

    # The database answers render as JSONResponse, as /json does: validating rows the
    # core has already shaped through the model again would cost on the hot path.
    row = {"model": contract.World, "description": "Successful Response"}
    rows = {"model": list[contract.World], "description": "Successful Response"}

    @app.get("/db", responses={200: row})
    async def db_(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.db.world())

    @app.get("/queries", responses={200: rows})
    async def queries(
        request: Request, params: Annotated[contract.QueriesParams, Query()]
    ) -> JSONResponse:
        return JSONResponse(await request.app.state.db.worlds(params.n))

    slept = {"model": contract.Slept, "description": "Successful Response"}

    @app.get("/db/sleep", responses={200: slept})
    async def db_sleep(
        request: Request, params: Annotated[contract.IoParams, Query()]
    ) -> JSONResponse:
        await request.app.state.db.sleep(params.ms)
        return JSONResponse({"slept_ms": params.ms})

    @app.get("/db/blocking", responses={200: slept})
    async def db_blocking(
        request: Request, params: Annotated[contract.IoParams, Query()]
    ) -> JSONResponse:
        # Deliberately wrong: the sync driver inside async def holds the event loop for
        # the whole query, as /cpu/blocking does with CPU work.
        request.app.state.blocking_db.open().sleep(params.ms)
        return JSONResponse({"slept_ms": params.ms})

    @app.get("/upstream", response_model=contract.UpstreamResult)
    async def upstream(
        request: Request, params: Annotated[contract.UpstreamParams, Query()]
    ) -> contract.UpstreamResult:
        # The server's own address (the local end of this connection), never the Host header.
        server = request.scope.get("server")
        url = upstream_target(settings, (str(server[0]), int(server[1])) if server else None)
        if url is None:
            raise contract.unavailable("no upstream: set UPSTREAM_URL")
        started = time.perf_counter()
        client: httpx.AsyncClient = request.app.state.http
        reply = await contract.get_upstream_async(
            lambda: client.get(url, params={"ms": params.ms}), httpx.HTTPError)
        return contract.upstream_result(url, reply.status_code, params.ms, started)

    @app.post("/echo", response_model=contract.EchoResult, openapi_extra=_echo_openapi())
    async def echo(request: Request) -> contract.EchoResult:
        contract.check_json_request(request.headers.get("content-type"),
                                    request.headers.get("content-length"))
        body = bytearray()
        try:
            async for chunk in request.stream():
                contract.append_limited(body, chunk)
        except ClientDisconnect:
            # The server stopped the body midway: Granian reports bad chunking to the app as
            # a disconnect (Uvicorn answers 400 itself). If the client did go, nobody reads it.
            raise contract.ContractError(400, "malformed request body") from None
        return contract.echo(contract.parse_body(contract.EchoItem, bytes(body)))

    @app.get("/request", response_model=contract.RequestInfo)
    async def request_(request: Request) -> contract.RequestInfo:
        length = request.headers.get("content-length")
        return describe_request(
            method=request.method,
            path=request.url.path,
            query=request.query_params.multi_items(),
            headers=request.headers.items(),
            cookies=request.cookies,
            client=(request.client.host, request.client.port) if request.client else None,
            content_type=request.headers.get("content-type"),
            content_length=int(length) if length and length.isdigit() else None,
        )

    @app.get("/info", response_model=contract.ServerInfo)
    async def info_() -> contract.ServerInfo:
        return with_gil_state(info)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    generated = app.openapi
    app.openapi = lambda: with_contract_errors(generated())  # type: ignore[method-assign]
    app.add_middleware(RequestGuard)
    metrics.register_server_info(FRAMEWORK, settings)
    app.add_middleware(metrics.ASGIMetricsMiddleware)
    return app
