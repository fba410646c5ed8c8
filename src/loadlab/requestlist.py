"""``--request "GET /items/{id}"``: a load written as a list of request templates.

One template per option: ``[WEIGHT*]METHOD /path [@body.json]``. In the path, ``{id}``
is a counter (1, 2, 3, ... per load-generator process) and ``{random}`` a random whole
number from 1 to 10,000 (``{random:N}``: from 1 to N). A body file is read when the
option is read (bad JSON is refused then, before anything starts) and sent as JSON.
Locust's user class is made from the list by locust/loadlab_requests.py; the runner
passes the parsed list in ``LOADLAB_REQUESTS`` (JSON), so workers need no files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadlab.errors import UserError

ENV = "LOADLAB_REQUESTS"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_WEIGHT = 1000
MAX_BODY_BYTES = 1 << 20
MAX_TEMPLATES = 100
DEFAULT_RANDOM_MAX = 10_000
_TEMPLATE = re.compile(r"^(?:(?P<weight>\d+)\s*\*\s*)?(?P<method>[A-Za-z]+)\s+(?P<path>/\S*)"
                       r"(?:\s+@(?P<body>\S.*))?$")
_FIELD = re.compile(r"\{([^{}]*)\}")


class RequestError(UserError, ValueError):
    """A --request that cannot be used (one line, exit 2)."""


@dataclass(frozen=True)
class Template:
    """One request of the list: ``name`` is what Locust's statistics call it."""

    method: str
    path: str
    weight: int = 1
    body: Any = None  # JSON to send, or None

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    def fields(self) -> list[str]:
        return _FIELD.findall(self.path)


def _check_field(field: str, text: str) -> None:
    if field in ("id", "random"):
        return
    kind, _, bound = field.partition(":")
    if kind == "random" and bound.isdigit() and 1 <= int(bound) <= 10**12:
        return
    raise RequestError(f"--request {text!r}: unknown field {{{field}}} (use {{id}}, "
                       "{random} or {random:N})")


def parse(text: str, base: Path | None = None) -> Template:
    """One ``--request`` option; a body file is read relative to ``base`` (the cwd)."""
    match = _TEMPLATE.match(text.strip())
    if match is None:
        raise RequestError(f"--request {text!r}: expected \"[WEIGHT*]METHOD /path "
                           "[@body.json]\", e.g. \"3*GET /items/{id}\"")
    method = match["method"].upper()
    if method not in METHODS:
        raise RequestError(f"--request {text!r}: unknown method {match['method']!r} "
                           f"(one of {', '.join(METHODS)})")
    weight = int(match["weight"]) if match["weight"] else 1
    if not 1 <= weight <= MAX_WEIGHT:
        raise RequestError(f"--request {text!r}: the weight must be 1..{MAX_WEIGHT}")
    path = match["path"]
    if "{" in _FIELD.sub("", path) or "}" in _FIELD.sub("", path):
        raise RequestError(f"--request {text!r}: unbalanced braces in the path")
    for field in _FIELD.findall(path):
        _check_field(field, text)
    body = None
    if match["body"]:
        file = Path(match["body"].strip())
        if base is not None and not file.is_absolute():
            file = base / file
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise RequestError(f"--request {text!r}: cannot read {file}: "
                               f"{exc.strerror or exc}") from None
        if len(raw) > MAX_BODY_BYTES:
            raise RequestError(f"--request {text!r}: {file} is over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(f"--request {text!r}: {file} is not JSON ({exc})") from None
    return Template(method=method, path=path, weight=weight, body=body)


def parse_all(texts: Sequence[str], base: Path | None = None) -> list[Template]:
    if len(texts) > MAX_TEMPLATES:
        raise RequestError(f"--request: at most {MAX_TEMPLATES} templates, got {len(texts)}")
    return [parse(t, base) for t in texts]


def to_json(templates: Sequence[Template]) -> str:
    return json.dumps([asdict(t) for t in templates], separators=(",", ":"))


def from_json(text: str) -> list[Template]:
    return [Template(**item) for item in json.loads(text or "[]")]


def fill(path: str, counter: int, randint: Any) -> str:
    """The path with its fields filled: ``randint(a, b)`` draws ``{random}``."""

    def one(match: re.Match[str]) -> str:
        field = match[1]
        if field == "id":
            return str(counter)
        _, _, bound = field.partition(":")
        return str(randint(1, int(bound) if bound else DEFAULT_RANDOM_MAX))

    return _FIELD.sub(one, path)
