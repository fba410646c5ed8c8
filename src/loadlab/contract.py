"""The service contract: parameter limits, request/response models and the error body.

Both services validate through these models, so limits and error shapes live here only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

MAX_IO_MS = 10_000
MAX_CPU_WORK = 50_000
MAX_BODY_BYTES = 1024 * 1024
# Gunicorn's defaults (limit_request_line, _fields, _field_size), applied by FastAPI too:
# Uvicorn's httptools parser takes headers and URLs of any size.
MAX_REQUEST_TARGET = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190
DEFAULT_UPSTREAM_MS = 100
MAX_QUERIES = 500
# Bounds of a variant and of a load, read by every parser (serve, run, matrix, Locust,
# Gunicorn's settings): one place, so a value one accepts the next cannot refuse.
MAX_WORKERS = 256
MAX_THREADS = 1024
MAX_USERS = 100_000
MAX_DB_POOL_SIZE = 1000
MAX_WORKER_CONNECTIONS = 10_000
# Seconds a client should wait before retrying a 503 (database down or pool exhausted).
RETRY_AFTER_S = 1


class QueryModel(BaseModel):
    # Unknown query parameters are ignored (cache-busters, tracing), wrong ones are not.
    model_config = ConfigDict(extra="ignore", frozen=True)


class IoParams(QueryModel):
    ms: int = Field(ge=0, le=MAX_IO_MS, description="milliseconds to wait")


class CpuParams(QueryModel):
    work: int = Field(ge=0, le=MAX_CPU_WORK, description="units of CPU work (~0.1 ms each)")


class MixedParams(QueryModel):
    ms: int = Field(ge=0, le=MAX_IO_MS, description="milliseconds to wait first")
    work: int = Field(ge=0, le=MAX_CPU_WORK, description="units of CPU work after the wait")


class UpstreamParams(QueryModel):
    ms: int = Field(
        default=DEFAULT_UPSTREAM_MS, ge=0, le=MAX_IO_MS, description="upstream wait in ms"
    )


class QueriesParams(QueryModel):
    n: int = Field(ge=1, le=MAX_QUERIES, description="rows to read, one query each")


class Reply(BaseModel):
    # Response bodies carry exactly these fields: the OpenAPI document says so too.
    model_config = ConfigDict(extra="forbid")


class Health(Reply):
    status: str = "ok"


class Message(Reply):
    message: str


class Slept(Reply):
    slept_ms: int


class CpuResult(Reply):
    work: int
    result: int


class MixedResult(Reply):
    slept_ms: int
    work: int
    result: int


class World(Reply):
    """A row of TechEmpower's ``world`` table, named as their benchmarks answer it."""

    id: int
    randomNumber: int  # the benchmark's field name


class UpstreamResult(Reply):
    upstream: str
    status: int
    slept_ms: int
    elapsed_ms: float


class EchoItem(BaseModel):
    # Strict: JSON types as the document gives them (no false for 0, no "1" for 1).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    name: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=0, le=1_000_000)
    price: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    tags: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )

    @field_validator("tags")
    @classmethod
    def _normalise_tags(cls, tags: list[str]) -> list[str]:
        # Items arrive stripped and length-checked; normalise to a sorted, lower-case set.
        return sorted({t.lower() for t in tags})


class EchoResult(EchoItem):
    total: float


class ClientInfo(Reply):
    host: str | None
    port: int | None


class RequestInfo(Reply):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    cookies: dict[str, str]
    client: ClientInfo
    content_type: str | None
    content_length: int | None


class PythonInfo(Reply):
    """The interpreter: CPython or another, its version, and whether it is a free-threaded
    build (one that can run without the GIL: PEP 703, CPython 3.13t and later)."""

    implementation: str
    version: str
    free_threaded: bool


class ServerInfo(Reply):
    framework: str
    server: str
    worker_class: str
    workers: int
    threads: int
    cpu_limit_cores: float
    db_pool_size: int
    pid: int
    versions: dict[str, str]
    python: PythonInfo
    # Whether the GIL is on in this process now (a free-threaded build may turn it back on,
    # e.g. for an extension that needs it); read at each request. True on GIL builds.
    gil_enabled: bool
    # Where this service's metrics are scraped outside its worker pool (``loadlab serve``'s
    # side port); None when no supervisor serves them: use /metrics on this port.
    metrics_url: str | None


def echo(item: EchoItem) -> EchoResult:
    return EchoResult(**item.model_dump(), total=round(item.quantity * item.price, 2))


# --- errors -----------------------------------------------------------------------------

class ErrorItem(Reply):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(Reply):
    """422: every reason the request was refused, never the input itself."""

    detail: list[ErrorItem]


class ErrorBody(Reply):
    """404, 405, 413, 415, 502, 503, 504: one sentence."""

    detail: str


class ContractError(Exception):
    """A request that breaks the contract; carries the status and the shared error body."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    @property
    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


def error_item(loc: Sequence[str | int], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


def validation_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[dict]:
    """Pydantic/FastAPI error dicts -> the shared shape: loc, msg, type (no echoed input)."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if prefix and (not loc or loc[0] != prefix):
            loc = [prefix, *loc]
        out.append(error_item(loc, str(err.get("msg", "")), str(err.get("type", ""))))
    return out


def unprocessable(errors: list[dict[str, Any]]) -> ContractError:
    return ContractError(422, errors)


def duplicated_params(items: Iterable[tuple[str, str]], names: Iterable[str]) -> list[dict]:
    """Errors for contract parameters given more than once (``?ms=1&ms=2`` is ambiguous)."""
    wanted = set(names)
    seen: dict[str, int] = {}
    for key, _ in items:
        if key in wanted:
            seen[key] = seen.get(key, 0) + 1
    return [
        error_item(["query", key], "parameter given more than once", "duplicated")
        for key, count in sorted(seen.items())
        if count > 1
    ]


def parse_query(model: type[M], items: Sequence[tuple[str, str]]) -> M:
    """Validate query items against ``model``: the path used by the sync adapter."""
    errors = duplicated_params(items, model.model_fields)
    if errors:
        raise unprocessable(errors)
    try:
        return model.model_validate(dict(items))
    except ValidationError as exc:
        raise unprocessable(validation_errors(exc.errors(), "query")) from None


TOO_LARGE = "request body too large"


def check_json_request(content_type: str | None, content_length: str | None) -> None:
    """415 for a body that is not JSON, 413 for a declared length over the limit."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ContractError(415, "content type must be application/json")
    if content_length and content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        raise ContractError(413, TOO_LARGE)


def upstream_unreachable(exc: Exception) -> ContractError:
    """502 when the upstream cannot be reached, 504 when it did not answer in time.

    httpx and requests name their timeouts alike (``ConnectTimeout``, ``ReadTimeout``), so
    the class name gives both services the same status and the same words.
    """
    if "Timeout" in type(exc).__name__:
        return ContractError(504, "upstream timed out")
    return ContractError(502, "upstream unreachable")


def upstream_retryable(exc: Exception) -> bool:
    """Whether a failed upstream GET goes once more: yes, unless it timed out.

    A server closes a kept-alive connection when its keep-alive timeout ends, and a request
    the pooled client sends on it at that moment is reset with no answer (measured, requests
    sent just past a 1 s keep-alive on a busy 2-core machine: 1 in 33 to Gunicorn's
    gthread, 1 in 5 to Uvicorn; docs/contract.md). The client cannot see it coming, and the
    GET is idempotent, so it goes once more on a new connection, as browsers and Go's
    net/http do. A timeout is never repeated: that would double the wait before the 504.
    """
    return "Timeout" not in type(exc).__name__


def get_upstream(get: Callable[[], R], errors: type[Exception]) -> R:
    """``get()``, once more if it raised one of ``errors`` other than a timeout; what it
    still raises becomes the contract's 502 or 504."""
    try:
        return get()
    except errors as exc:
        if not upstream_retryable(exc):
            raise upstream_unreachable(exc) from None
    try:
        return get()
    except errors as exc:
        raise upstream_unreachable(exc) from None


async def get_upstream_async(get: Callable[[], Awaitable[R]], errors: type[Exception]) -> R:
    """:func:`get_upstream` for an async client."""
    try:
        return await get()
    except errors as exc:
        if not upstream_retryable(exc):
            raise upstream_unreachable(exc) from None
    try:
        return await get()
    except errors as exc:
        raise upstream_unreachable(exc) from None


def unavailable(detail: str) -> ContractError:
    """503 with ``Retry-After``: a dependency down or a pool exhausted past its timeout."""
    return ContractError(503, detail, {"Retry-After": str(RETRY_AFTER_S)})


def upstream_result(url: str, status: int, ms: int, started: float) -> UpstreamResult:
    if status != 200:
        raise ContractError(502, f"upstream answered {status}")
    elapsed = (time.perf_counter() - started) * 1000
    return UpstreamResult(upstream=url, status=status, slept_ms=ms, elapsed_ms=round(elapsed, 3))


def append_limited(body: bytearray, chunk: bytes) -> None:
    """Grow ``body`` by ``chunk``; 413 as soon as it passes the limit (chunked uploads)."""
    body += chunk
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(413, TOO_LARGE)


def read_limited(read: Callable[[int], bytes], size: int = 64 * 1024) -> bytes:
    """Read a sync stream to its end, never holding more than the limit plus one chunk."""
    body = bytearray()
    while True:
        try:
            chunk = read(size)
        except Exception as exc:  # the server's own reader: bad chunking, early disconnect
            raise ContractError(400, "malformed request body") from exc
        if not chunk:
            return bytes(body)
        append_limited(body, chunk)


def request_limit_error(
    target_bytes: int, headers: Sequence[tuple[bytes, bytes]]
) -> ContractError | None:
    """414/431 for a request over the limits Gunicorn enforces; None when it fits.

    Runs on every FastAPI request, so it is a plain loop (0.4 µs for five headers here).
    """
    if target_bytes > MAX_REQUEST_TARGET:
        return ContractError(414, "request target too long")
    if len(headers) > MAX_HEADER_FIELDS:
        return ContractError(431, "request header fields too large")
    for name, value in headers:
        if len(name) + len(value) + 2 > MAX_HEADER_FIELD_BYTES:  # "name: value"
            return ContractError(431, "request header fields too large")
    return None


def parse_body(model: type[M], raw: bytes) -> M:
    if len(raw) > MAX_BODY_BYTES:
        raise ContractError(413, TOO_LARGE)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise unprocessable(validation_errors(exc.errors(), "body")) from None
