"""services/openapi.json: generated from the FastAPI app, current, and complete.

Both services are held against it response by response in the contract suite
(``support.contract_check.check``) and by the fuzzer (test_fuzz.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.contract_check import document

from loadlab.openapi import document_path

PATHS = ["/healthz", "/json", "/io", "/cpu", "/cpu/blocking", "/cpu/process", "/mixed",
         "/upstream", "/echo", "/request", "/info", "/metrics", "/db", "/queries", "/db/sleep",
         "/db/blocking"]
DB_PATHS = ["/db", "/queries", "/db/sleep", "/db/blocking"]


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadlab.openapi", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_committed_document_is_current() -> None:
    result = _generate("--check")
    assert result.returncode == 0, result.stderr


def test_generation_is_deterministic_and_check_sees_drift(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert _generate("--out", str(out)).returncode == 0
    assert out.read_bytes() == document_path().read_bytes()
    out.write_text(out.read_text() + " ")
    drift = _generate("--check", "--out", str(out))
    assert drift.returncode == 1
    assert "stale" in drift.stderr


def test_every_contract_path_is_documented() -> None:
    paths = document()["paths"]
    assert sorted(paths) == sorted(PATHS)
    assert list(paths["/echo"]) == ["post"]
    assert all(list(paths[p]) == ["get"] for p in PATHS if p != "/echo")


def _status_schema(path: str, method: str, status: str) -> str:
    response = document()["paths"][path][method]["responses"][status]
    return str(response["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_errors_are_documented() -> None:
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            assert ("422" in operation["responses"]) == takes_input, (path, method)
            if takes_input:
                assert _status_schema(path, method, "422") == "ValidationErrorBody"
    for status in ("413", "415"):
        assert _status_schema("/echo", "post", status) == "ErrorBody"
    for status in ("502", "504"):
        assert _status_schema("/upstream", "get", status) == "ErrorBody"
    for path in DB_PATHS:
        assert _status_schema(path, "get", "503") == "ErrorBody"
    error = document()["components"]["schemas"]["ErrorItem"]
    assert sorted(error["required"]) == ["loc", "msg", "type"]
    assert error["additionalProperties"] is False


def test_limits_come_from_the_contract() -> None:
    from loadlab import contract

    io = document()["paths"]["/io"]["get"]["parameters"][0]["schema"]
    assert (io["minimum"], io["maximum"]) == (0, contract.MAX_IO_MS)
    cpu = document()["paths"]["/cpu"]["get"]["parameters"][0]["schema"]
    assert cpu["maximum"] == contract.MAX_CPU_WORK
    queries = document()["paths"]["/queries"]["get"]["parameters"][0]["schema"]
    assert (queries["minimum"], queries["maximum"]) == (1, contract.MAX_QUERIES)
    assert json.loads(document_path().read_text()) == document()
