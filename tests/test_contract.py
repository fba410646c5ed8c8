"""One contract suite for both services: every path, the same JSON, the same errors.

Runs against every variant of the ``service`` fixture (real servers, 2 workers each). Each
answer also passes through ``check``, which holds it against services/openapi.json.
Expected bodies are computed from the core (``loadlab.contract``, ``loadlab.workloads``),
so both services must give exactly what the one shared implementation gives.
"""

from __future__ import annotations

import math
import platform
import sys
import sysconfig
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import httpx
import pytest
from support.contract_check import (
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_JSON,
    TOO_LARGE,
    check,
    document,
    service_pids,
)
from support.services import FT_VARIANTS, VARIANTS, start_service, variant_params

from loadlab import cgroup, contract, servers, workloads
from loadlab.launch import ServiceProcess

LIMIT = contract.MAX_BODY_BYTES


@pytest.fixture(scope="module", params=variant_params(sorted(VARIANTS) + sorted(FT_VARIANTS)))
def service(request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """The contract suite on every variant, and on free-threaded CPython 3.13t for the
    servers that run there (skipped until .ci/build-python-ft has built it)."""
    proc = start_service(**{**VARIANTS, **FT_VARIANTS}[request.param])
    try:
        yield proc
    finally:
        proc.stop()


def get(client: httpx.Client, url: str, **kwargs: object) -> httpx.Response:
    return check(client.get(url, **kwargs))  # type: ignore[arg-type]


# --- every path -------------------------------------------------------------------------

def test_healthz_and_json(client: httpx.Client) -> None:
    assert get(client, "/healthz").json() == {"status": "ok"}
    assert get(client, "/json").json() == {"message": "Hello, World!"}


def test_io_really_waits(client: httpx.Client) -> None:
    started = time.perf_counter()
    reply = get(client, "/io", params={"ms": 150})
    assert time.perf_counter() - started >= 0.15
    assert reply.json() == {"slept_ms": 150}


@pytest.mark.parametrize("path", ["/cpu", "/cpu/blocking", "/cpu/process"])
def test_cpu_result_is_the_cores(client: httpx.Client, path: str) -> None:
    for work in (0, 7):
        reply = get(client, path, params={"work": work})
        assert reply.json() == {"work": work, "result": workloads.cpu_work(work)}


def test_mixed_waits_then_works(client: httpx.Client) -> None:
    started = time.perf_counter()
    reply = get(client, "/mixed", params={"ms": 60, "work": 3})
    assert time.perf_counter() - started >= 0.06
    assert reply.json() == {"slept_ms": 60, "work": 3, "result": workloads.cpu_work(3)}


def test_upstream_calls_own_io_by_default(client: httpx.Client, service: ServiceProcess) -> None:
    body = get(client, "/upstream", params={"ms": 40}).json()
    assert body["upstream"] == f"{service.url}/io"
    assert (body["status"], body["slept_ms"]) == (200, 40)
    assert body["elapsed_ms"] >= 40
    # The default wait applies when ms is left out.
    assert get(client, "/upstream").json()["slept_ms"] == contract.DEFAULT_UPSTREAM_MS


def test_echo_normalises(client: httpx.Client) -> None:
    item = {"name": "  widget ", "quantity": 3, "price": 2.5, "tags": ["B", " a", "b "]}
    reply = check(client.post("/echo", json=item))
    assert reply.json() == {
        "name": "widget", "quantity": 3, "price": 2.5, "tags": ["a", "b"], "total": 7.5,
    }
    # Parameters on the media type are fine; a chunked body is read like any other.
    chunked = check(client.post(
        "/echo", content=iter([b'{"name":"x",', b'"quantity":1,"price":1}']),
        headers={"content-type": "application/json; charset=utf-8"},
    ))
    assert chunked.json() == {"name": "x", "quantity": 1, "price": 1.0, "tags": [], "total": 1.0}


def test_request_reports_and_masks(client: httpx.Client, service: ServiceProcess) -> None:
    secret = "s3cr3t-t0ken"
    reply = get(
        client, "/request?a=1&a=2&b=x",
        headers={"Authorization": f"Bearer {secret}", "X-Probe": "hello",
                 "Proxy-Authorization": f"Basic {secret}", "Cookie": f"session={secret}"},
    )
    assert secret not in reply.text
    body = reply.json()
    assert (body["method"], body["path"]) == ("GET", "/request")
    assert body["query"] == {"a": ["1", "2"], "b": ["x"]}
    assert body["headers"]["x-probe"] == "hello"
    assert body["headers"]["authorization"] == "Bearer ***"
    assert body["headers"]["proxy-authorization"] == "Basic ***"
    assert body["cookies"] == {"session": "***"}
    assert body["client"]["host"] == "127.0.0.1"
    server = servers.server_of(service.cfg.worker_class)
    if servers.INTERFACES[service.cfg.framework] in server.client_port:
        assert 0 < body["client"]["port"] < 65536
    else:
        assert body["client"]["port"] is None
    assert (body["content_type"], body["content_length"]) == (None, None)


def test_request_masks_credentials_by_the_shape_of_their_name(client: httpx.Client) -> None:
    secret = "s3cr3t-v4lue"
    names = ["X-Auth-Token", "X-Amz-Security-Token", "Api-Key", "X-Vault-Token", "X-Api-Key",
             "X-CSRF-Token", "X-Session-Id", "X-Client-Secret", "X-Password", "Set-Cookie"]
    query = ["access_token", "api_key", "X-Amz-Signature", "X-Amz-Credential", "password",
             "sessionid", "client_secret", "apiKey", "auth"]
    reply = get(client, "/request?" + "&".join(f"{name}={secret}" for name in query)
                + "&page=2", headers={**{name: secret for name in names}, "X-Probe": "hello"})
    assert secret not in reply.text
    body = reply.json()
    assert {name.lower(): body["headers"][name.lower()] for name in names} == {
        name.lower(): "***" for name in names}
    assert body["query"] == {**{name: ["***"] for name in query}, "page": ["2"]}
    assert body["headers"]["x-probe"] == "hello"


def test_request_reports_the_peer_not_what_a_header_claims(client: httpx.Client) -> None:
    """A client on loopback cannot pass itself off as another address: no server trusts
    X-Forwarded-For (Uvicorn did from 127.0.0.1) unless FORWARDED_ALLOW_IPS names a proxy."""
    body = get(client, "/request", headers={"X-Forwarded-For": "6.6.6.6",
                                             "Forwarded": "for=6.6.6.6",
                                             "X-Forwarded-Proto": "https"}).json()
    assert body["client"]["host"] == "127.0.0.1"


def test_request_reports_body_headers(client: httpx.Client) -> None:
    reply = check(client.request("GET", "/request", content=b"abc",
                                 headers={"content-type": "text/plain", "Authorization": "opaque"}))
    body = reply.json()
    assert (body["content_type"], body["content_length"]) == ("text/plain", 3)
    assert body["headers"]["authorization"] == "***"


def test_info_describes_the_variant(client: httpx.Client, service: ServiceProcess) -> None:
    cfg = service.cfg
    info = get(client, "/info").json()
    assert (info["framework"], info["server"], info["worker_class"]) == (
        cfg.framework, cfg.server, cfg.worker_class)
    assert (info["workers"], info["threads"]) == (cfg.workers, cfg.threads)
    # Its own limit when it has one, else the one it inherits from this process's cgroup
    # (0 when there is none).
    assert info["cpu_limit_cores"] == (cfg.cpus or cgroup.own_cpu_limit())
    assert info["pid"] in service_pids(service) - {service.pid}
    assert {"python", "pydantic", cfg.framework} <= set(info["versions"])
    if cfg.python == "ft":  # free-threaded 3.13t: the GIL stays off inside a request
        assert info["python"]["free_threaded"] is True and info["gil_enabled"] is False
        assert info["python"]["version"].startswith("3.13")
    else:
        assert info["python"] == {
            "implementation": platform.python_implementation(),
            "version": platform.python_version(),
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED"))}
        assert info["gil_enabled"] is getattr(sys, "_is_gil_enabled", lambda: True)()
    assert info["metrics_url"] == service.metrics_url
    side = httpx.get(info["metrics_url"], timeout=10)
    assert f'framework="{cfg.framework}"' in side.text and "loadlab_workers" in side.text


def test_metrics_responds(client: httpx.Client) -> None:
    reply = get(client, "/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text.strip()


def _capacity(service: ServiceProcess) -> float:
    """Requests a variant can wait on at once: unbounded for an event loop or greenlets."""
    cfg = service.cfg
    if cfg.worker_class == "sync":
        return cfg.workers
    if cfg.worker_class == "gthread":
        return cfg.workers * cfg.threads
    return math.inf


def test_concurrent_waits(service: ServiceProcess) -> None:
    """N concurrent waits take about one wait on async stacks, and N/slots waits on sync ones."""
    count, ms = 10, 500
    limits = httpx.Limits(max_connections=count)
    with httpx.Client(base_url=service.url, timeout=30, limits=limits) as shared, \
            ThreadPoolExecutor(count) as pool:
        started = time.perf_counter()
        statuses = list(pool.map(lambda _: shared.get(f"/io?ms={ms}").status_code, range(count)))
        elapsed = time.perf_counter() - started
    assert statuses == [200] * count
    capacity = _capacity(service)
    rounds = math.ceil(count / capacity) if capacity != math.inf else 1
    assert elapsed >= 0.95 * rounds * ms / 1000
    if capacity == math.inf:
        # Generous: what two sync workers would need, five times one wait.
        assert elapsed < count * ms / 1000 / service.cfg.workers


# --- bad input: 422 with the body the core itself gives --------------------------------

def _expected_query_error(model: type[contract.QueryModel], query: str) -> dict[str, object]:
    with pytest.raises(contract.ContractError) as caught:
        contract.parse_query(model, parse_qsl(query, keep_blank_values=True))
    assert caught.value.status == 422
    return caught.value.body


BAD_QUERIES = [
    ("/io", contract.IoParams, ""),
    ("/io", contract.IoParams, "ms=abc"),
    ("/io", contract.IoParams, "ms="),
    ("/io", contract.IoParams, "ms=1.5"),
    ("/io", contract.IoParams, "ms=1e3"),
    ("/io", contract.IoParams, "ms=-1"),
    ("/io", contract.IoParams, f"ms={contract.MAX_IO_MS + 1}"),
    ("/io", contract.IoParams, "ms=" + "9" * 30),
    ("/io", contract.IoParams, "ms=" + "9" * 4000),  # gunicorn takes lines < 4 KiB
    ("/io", contract.IoParams, "ms=1&ms=2"),
    ("/io", contract.IoParams, "ms=%00"),
    ("/cpu", contract.CpuParams, f"work={contract.MAX_CPU_WORK + 1}"),
    ("/cpu/blocking", contract.CpuParams, "work=0x10"),
    ("/cpu/process", contract.CpuParams, "work=1&work=1"),
    ("/mixed", contract.MixedParams, ""),
    ("/mixed", contract.MixedParams, "ms=5&work=x"),
    ("/upstream", contract.UpstreamParams, "ms=-5"),
]


@pytest.mark.parametrize(("path", "model", "query"), BAD_QUERIES,
                         ids=[f"{p}?{q[:20]}" for p, _, q in BAD_QUERIES])
def test_bad_query_is_422_with_the_shared_body(
    client: httpx.Client, path: str, model: type[contract.QueryModel], query: str
) -> None:
    reply = get(client, f"{path}?{query}")
    assert reply.status_code == 422
    assert reply.json() == _expected_query_error(model, query)


def test_query_errors_carry_loc_and_type(client: httpx.Client) -> None:
    detail = get(client, "/mixed?ms=1&ms=2&work=x").json()["detail"]
    assert detail == [{"loc": ["query", "ms"], "msg": "parameter given more than once",
                       "type": "duplicated"}]
    detail = get(client, "/io?ms=abc").json()["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [(["query", "ms"], "int_parsing")]


BAD_BODIES = [b"{bad", b"", b"[]", b"null", b'{"name":"x"}', b"\xff\xfe",
              b'{"name":"x","quantity":1,"price":1,"extra":1}',
              b'{"name":"x","quantity":1,"price":"NaN"}',
              b'{"name":"x","quantity":1,"price":1e999}',
              b'{"name":"x","quantity":false,"price":1}', b'{"name":"x","quantity":"1","price":1}',
              b'{"name":" ","quantity":1,"price":1,"tags":[" "]}', b"[" * 5000 + b"]" * 5000]


@pytest.mark.parametrize("raw", BAD_BODIES, ids=[repr(b[:16]) for b in BAD_BODIES])
def test_bad_json_body_is_422(client: httpx.Client, raw: bytes) -> None:
    with pytest.raises(contract.ContractError) as caught:
        contract.parse_body(contract.EchoItem, raw)
    reply = check(client.post("/echo", content=raw, headers={"content-type": "application/json"}))
    assert reply.status_code == 422
    assert reply.json() == caught.value.body


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/jsonx",
                                          "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = check(client.post("/echo", content=b'{"name":"x","quantity":1,"price":1}',
                              headers=headers))
    assert (reply.status_code, reply.content) == (415, NOT_JSON)


# Granian 2.7.9, the newest with a free-threaded (3.13t) wheel, leaves about 1 in 20 POSTs
# of a 1 MiB body to its ASGI app unanswered (measured: 2 of 40 on one service; 0 of 40 for
# Granian 2.8.9 with the GIL and for its WSGI app free-threaded), whether the app reads the
# body or answers 413 part-way (a chunked 1.1 MiB body: 3 of 40; one declared over the
# limit, refused before it is read: 0 of 40). An upstream defect the lab documents
# (docs/serve.md); any other outcome than that hang fails.
GRANIAN_FT_BODY_HANG = pytest.mark.xfail(
    reason="Granian 2.7.9 free-threaded: a 1 MiB ASGI body sometimes hangs",
    raises=httpx.ReadTimeout, strict=False)


def expect_granian_ft_body_hang(service: ServiceProcess, request: pytest.FixtureRequest) -> None:
    """The 1 MiB-body tests on FastAPI under free-threaded Granian: a hang is the known one."""
    cfg = service.cfg
    if (cfg.framework, cfg.worker_class, cfg.python) == ("fastapi", "granian", "ft"):
        request.applymarker(GRANIAN_FT_BODY_HANG)


def test_body_over_limit_is_413_declared(client: httpx.Client) -> None:
    reply = check(client.post("/echo", content=b" " * (LIMIT + 1),
                              headers={"content-type": "application/json"}))
    assert (reply.status_code, reply.content) == (413, TOO_LARGE)


def test_body_over_limit_is_413_chunked(client: httpx.Client, service: ServiceProcess,
                                        request: pytest.FixtureRequest) -> None:
    expect_granian_ft_body_hang(service, request)
    chunks = iter([b" " * 65536] * (LIMIT // 65536 + 2))  # no Content-Length: chunked
    reply = check(client.post("/echo", content=chunks,
                              headers={"content-type": "application/json"}))
    assert (reply.status_code, reply.content) == (413, TOO_LARGE)


def test_body_at_limit_is_read(client: httpx.Client, service: ServiceProcess,
                               request: pytest.FixtureRequest) -> None:
    expect_granian_ft_body_hang(service, request)
    raw = b'{"name":"x","quantity":1,"price":1}'
    padded = raw + b" " * (LIMIT - len(raw))
    reply = check(client.post("/echo", content=padded,
                              headers={"content-type": "application/json"}))
    assert reply.status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/io/", "/cpu/", "/echo/x", "/%ff", "/openapi.jsonx"])
def test_unknown_path_is_404(client: httpx.Client, path: str) -> None:
    reply = check(client.get(path))
    assert (reply.status_code, reply.content) == (404, NOT_FOUND)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/io", "GET"), ("DELETE", "/json", "GET"), ("PUT", "/healthz", "GET"),
    ("PATCH", "/cpu", "GET"), ("OPTIONS", "/info", "GET"), ("GET", "/echo", "POST"),
])
def test_wrong_method_is_405(client: httpx.Client, method: str, path: str, allowed: str) -> None:
    reply = check(client.request(method, path))
    assert (reply.status_code, reply.content) == (405, NOT_ALLOWED)
    assert reply.headers["allow"] == allowed


def test_head_is_405_without_body(client: httpx.Client) -> None:
    reply = client.head("/json")
    assert (reply.status_code, reply.content) == (405, b"")


def test_fastapi_serves_the_committed_document(client: httpx.Client,
                                               service: ServiceProcess) -> None:
    if service.cfg.framework != "fastapi":
        pytest.skip("Flask does not serve the document; it is held against it")
    assert client.get("/openapi.json").json() == document()
