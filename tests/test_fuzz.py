"""Fuzz every path of both services from the committed OpenAPI document.

Schemathesis runs as a real HTTP client (its CLI, in a subprocess) against each variant,
behind a real database, in positive and negative modes, with bounded examples and a
request timeout: no 5xx, no hang, every answer as documented, invalid input refused.
The seed is fixed so CI is repeatable; set LOADLAB_FUZZ_SEED to explore further.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.contract_check import document
from support.metrics_scrape import fetch
from support.services import VARIANTS, db_service

from loadlab.launch import ServiceProcess
from loadlab.openapi import document_path

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")
MAX_EXAMPLES = 10
REQUEST_TIMEOUT_S = 10


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def service(request: pytest.FixtureRequest, database_url: str) -> Iterator[ServiceProcess]:
    """Every variant behind a real database: its paths answer rows, not 503s (the fuzz's
    not_a_server_error check then holds the database paths to real answers)."""
    with db_service(database_url, **VARIANTS[request.param]) as proc:
        for path in ("/db", "/queries?n=2", "/db/sleep?ms=1"):
            assert fetch(proc.url, path)[0] == 200, path
        yield proc


@pytest.mark.slow
def test_fuzz_from_the_document(service: ServiceProcess, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    tests_dir = str(Path(__file__).parent)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "support.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    argv = [
        str(Path(sys.executable).parent / "st"), "run", str(document_path()),
        "--url", service.url, "--mode", "all", "--max-examples", str(MAX_EXAMPLES),
        "--seed", os.environ.get("LOADLAB_FUZZ_SEED", "1124"), "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--checks", ",".join(CHECKS),
        "--request-timeout", str(REQUEST_TIMEOUT_S), "--continue-on-failure",
        "--report", "json", "--report-json-path", str(report),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                            check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads(report.read_text())
    operations = sum(len(methods) for methods in document()["paths"].values())
    assert summary["operations"]["tested"] == operations
    assert summary["test_cases"]["generated"] >= operations * 2
    assert not summary["failures"] and not summary["errors"]
