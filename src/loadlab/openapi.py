"""The contract's OpenAPI document: FastAPI's own, plus the errors the core raises.

FastAPI cannot see the 413/415/422/502/503/504 answers that ``loadlab.contract`` raises, so
they are added here. ``python -m loadlab.openapi`` writes ``services/openapi.json``;
``--check`` exits 1 when the committed file is not what the app generates.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadlab import contract
from loadlab.paths import services_dir

_REF = "#/components/schemas/{model}"
_DB_DOWN = "database unavailable, or its pool exhausted past the timeout (Retry-After)"
# Errors an operation can answer besides 422, by path: the core raises them, not FastAPI.
_EXTRA_ERRORS = {
    "/echo": {"400": "malformed (chunked) body", "413": "body over the 1 MiB limit",
              "415": "content type is not JSON"},
    "/upstream": {"502": "upstream unreachable or not 200", "504": "upstream timed out"},
    "/cpu/process": {"503": "a pool process died: the pool is being replaced (Retry-After)"},
    **{path: {"503": _DB_DOWN} for path in ("/db", "/queries", "/db/sleep", "/db/blocking")},
}


def document_path() -> Path:
    return services_dir() / "openapi.json"


def _response(description: str, model: str) -> dict[str, Any]:
    schema = {"$ref": _REF.format(model=model)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def with_contract_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's 422 with the shared error body; add the core's own errors."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for model in (contract.ErrorItem, contract.ValidationErrorBody, contract.ErrorBody):
        schemas[model.__name__] = model.model_json_schema(ref_template=_REF)
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if operation.get("parameters") or operation.get("requestBody"):
                responses["422"] = _response("invalid input", "ValidationErrorBody")
            for status, description in _EXTRA_ERRORS.get(path, {}).items():
                responses[status] = _response(description, "ErrorBody")
    return doc


def _load_fastapi_app() -> Any:
    path = services_dir() / "fastapi" / "fastapi_app.py"
    spec = importlib.util.spec_from_file_location("loadlab_fastapi_app", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app()


def build() -> dict[str, Any]:
    return dict(_load_fastapi_app().openapi())


def render(doc: dict[str, Any]) -> str:
    """Sorted, indented, newline-terminated: the same bytes on every run."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadlab.openapi", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="default: services/openapi.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    out: Path = args.out or document_path()
    text = render(build())
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run python -m loadlab.openapi", file=sys.stderr)
            return 1
        return 0
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
