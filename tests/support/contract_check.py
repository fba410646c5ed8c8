"""Checks shared by the contract tests: every answer is held against the committed document.

A documented answer must match its schema; an undocumented one may only be one of the
router's own errors (404, 405), whose bytes are fixed here for both services.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import psutil
import requests
import schemathesis

from loadlab.launch import ServiceProcess
from loadlab.openapi import document_path

NOT_FOUND = b'{"detail":"Not Found"}'
NOT_ALLOWED = b'{"detail":"Method Not Allowed"}'
TOO_LARGE = b'{"detail":"request body too large"}'
NOT_JSON = b'{"detail":"content type must be application/json"}'


@functools.cache
def document() -> dict[str, Any]:
    return dict(json.loads(document_path().read_text()))


@functools.cache
def schema() -> Any:
    return schemathesis.openapi.from_path(str(document_path()))


def check(response: httpx.Response) -> httpx.Response:
    """Assert ``response`` is what the document allows for its request; return it.

    The only 5xx the document lists are /upstream's 502 and 504 (the upstream's fault) and
    the database paths' 503 (the database down or the pool exhausted).
    """
    method = response.request.method.lower()
    path = response.request.url.path
    status = response.status_code
    operation = document()["paths"].get(path, {}).get(method)
    if operation is None or str(status) not in operation["responses"]:
        # Only the router answers what the document does not list.
        assert (status, response.content) in {(404, NOT_FOUND), (405, NOT_ALLOWED)}, (
            f"{method.upper()} {path} -> undocumented {status}: {response.content[:200]!r}"
        )
        assert response.headers["content-type"] == "application/json"
        return response
    # Built by hand: schemathesis' own conversion cannot read a streamed (chunked) request.
    answer = schemathesis.Response(
        status_code=status, headers={k: [v] for k, v in response.headers.items()},
        content=response.content, elapsed=response.elapsed.total_seconds(),
        request=requests.Request(method, str(response.request.url)).prepare(),
        message=response.reason_phrase, encoding=response.encoding,
        http_version=response.http_version, verify=True,
    )
    schema()[path][method.upper()].validate_response(answer)
    return response


def service_pids(service: ServiceProcess) -> set[int]:
    """The serve process and every process below it (server, workers, pools)."""
    root = psutil.Process(service.pid)
    return {root.pid, *(child.pid for child in root.children(recursive=True))}
