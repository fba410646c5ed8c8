"""A sweep described as data: a TOML file -> the list of cells to run.

```toml
[matrix]                      # the axes; every combination is a cell
targets = ["fastapi", "flask"]
scenarios = ["io"]
users = [10, 50]
workers = [1, 2]
cpus = [1]
worker_classes = { fastapi = ["uvicorn"], flask = ["sync", "gthread"] }
# or: servers = ["gunicorn", "granian"] (each server's default worker class per target)
threads = 1
pythons = ["default", "ft"]   # optional: the interpreters (ft: free-threaded 3.13t)
backpressure = 64             # optional: Granian's requests per worker at once
duration = "10s"
warmup = "2s"
io_ms = 100
db_pool_size = [1, 5, 10]     # optional: connections per service process (database scenarios)
rounds = 3                    # optional: rounds per cell, alternated (A B A B ...)
until_ci = 5                  # optional: stop adding rounds once rps is within ±5%

[gates]                       # optional, as the run options
max_p95_ms = 500

[[override]]                  # optional: settings for the cells that match
match = { target = "flask", worker_class = "gthread" }
threads = 4
```

Errors name the key and its line, so a typo is found at once.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadlab.contract import (
    MAX_CPU_WORK,
    MAX_DB_POOL_SIZE,
    MAX_IO_MS,
    MAX_THREADS,
    MAX_USERS,
    MAX_WORKERS,
)
from loadlab.jsontypes import JsonObject
from loadlab.runner.options import (
    TARGETS,
    Gates,
    OptionError,
    RunSpec,
    parse_cpus,
    parse_duration,
    parse_pct,
    parse_rate,
)
from loadlab.serve import MAX_BACKPRESSURE, PYTHONS, WORKER_CLASSES
from loadlab.servers import SERVERS, class_for, takes_backpressure, threaded_classes

AXES = {"targets", "scenarios", "users", "workers", "cpus", "worker_classes", "threads",
        "db_pool_size", "servers", "pythons"}
SCALARS = {"duration", "warmup", "spawn_rate", "arrival_rate", "io_ms", "cpu_work", "out",
           "name", "description", "extra", "rounds", "until_ci", "backpressure"}
SETTINGS = {"users", "workers", "cpus", "threads", "duration", "warmup", "spawn_rate",
            "arrival_rate", "io_ms", "cpu_work", "worker_class", "extra", "db_pool_size",
            "backpressure"}
MATCH_KEYS = {"target", "scenario", "worker_class", "users", "workers", "cpus", "threads",
              "db_pool_size", "python"}
GATE_KEYS = {"max_p95_ms", "max_p99_ms", "max_error_rate", "min_rps"}


class MatrixError(OptionError):
    """A matrix file that cannot be run; names the file, key and line."""


@dataclass(frozen=True)
class Matrix:
    name: str
    cells: list[RunSpec]
    gates: Gates
    out: str | None
    rounds: int | None = None
    until_ci: float | None = None


def _line_of(text: str, key: str, section: str | None = None, nth: int = 0) -> int | None:
    """The line of ``key = `` after the header of ``section`` (its nth occurrence)."""
    lines = text.splitlines()
    start = 0
    if section is not None:
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
        seen = -1
        for number, line in enumerate(lines):
            if header.match(line):
                seen += 1
                if seen == nth:
                    start = number
                    break
    pattern = re.compile(rf"(^|[{{,\s])\"?{re.escape(key)}\"?\s*=")
    for number in range(start, len(lines)):
        if number > start and section is not None and re.match(r"^\s*\[", lines[number]):
            break
        if pattern.search(lines[number]):
            return number + 1
    return None


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, message: str, section: str | None = None, nth: int = 0) -> None:
        line = _line_of(self.text, key.split(".")[-1], section, nth)
        where = f"{self.path.name}:{line}" if line else self.path.name
        raise MatrixError(f"{where}: {key}: {message}")

    def ints(self, value: Any, key: str, low: int, high: int, section: str,
             nth: int = 0) -> list[int]:
        values = value if isinstance(value, list) else [value]
        if not values or any(type(v) is not int or not low <= v <= high for v in values):
            self.fail(key, f"expected a whole number {low}-{high} or a list of them, "
                      f"got {value!r}", section, nth)
        return list(values)

    def strs(self, value: Any, key: str, allowed: tuple[str, ...], section: str,
             nth: int = 0) -> list[str]:
        values = value if isinstance(value, list) else [value]
        if not values or any(not isinstance(v, str) or v not in allowed for v in values):
            self.fail(key, f"expected one or a list of {', '.join(allowed)}, got {value!r}",
                      section, nth)
        return list(values)

    def cpus(self, value: Any, key: str, section: str, nth: int = 0) -> list[float]:
        values = value if isinstance(value, list) else [value]
        out: list[float] = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                self.fail(key, f"expected a CPU count or a list of them, got {value!r}",
                          section, nth)
            try:
                out.append(parse_cpus(v, key))
            except OptionError as exc:
                self.fail(key, str(exc).split(": ", 1)[-1], section, nth)
        if not out:
            self.fail(key, "empty list", section, nth)
        return out

    def duration(self, value: Any, key: str, section: str, nth: int = 0) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, f"expected a duration such as \"30s\", got {value!r}", section, nth)
        try:
            return parse_duration(str(value), key)
        except OptionError as exc:
            self.fail(key, str(exc).split(": ", 1)[-1], section, nth)
        raise AssertionError  # unreachable: fail() raises

    def rate(self, value: Any, key: str, section: str, nth: int = 0) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(key, f"expected a rate such as 20 or \"600/m\", got {value!r}",
                      section, nth)
        try:
            return parse_rate(str(value), key)
        except OptionError as exc:
            self.fail(key, str(exc).split(": ", 1)[-1], section, nth)
        raise AssertionError


def _settings(reader: _Reader, table: JsonObject, section: str, nth: int = 0,
              ) -> dict[str, Any]:
    """Scalar settings shared by [matrix] and [[override]], as RunSpec fields."""
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{section}.{name}"
        if name == "duration":
            out["duration_s"] = reader.duration(value, key, section, nth)
        elif name == "warmup":
            out["warmup_s"] = reader.duration(value, key, section, nth)
        elif name == "spawn_rate":
            out["spawn_rate"] = reader.rate(value, key, section, nth)
        elif name == "arrival_rate":
            out["arrival_rate"] = reader.rate(value, key, section, nth)
        elif name in ("io_ms", "cpu_work", "backpressure"):
            top = {"io_ms": MAX_IO_MS, "cpu_work": MAX_CPU_WORK,
                   "backpressure": MAX_BACKPRESSURE}[name]
            out[name] = reader.ints(value, key, 0, top, section, nth)[0]
            if isinstance(value, list):
                reader.fail(key, "expected one whole number, not a list", section, nth)
        elif name == "extra":
            if not isinstance(value, dict) or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool)
                for v in value.values()
            ):
                reader.fail(key, "expected a table of locustfile options", section, nth)
            out["extra"] = {str(k): str(v) for k, v in value.items()}
    return out


def parse_matrix(text: str, path: Path = Path("matrix.toml")) -> Matrix:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path.name}: not valid TOML: {exc}") from None
    reader = _Reader(path, text)
    for key in data:
        if key not in ("matrix", "gates", "override"):
            reader.fail(key, "unknown section (expected [matrix], [gates], [[override]])")
    table = data.get("matrix")
    if not isinstance(table, dict):
        raise MatrixError(f"{path.name}: needs a [matrix] table")
    axes = _axes(reader, table)
    gates = _gates(reader, data)
    overrides = _overrides(reader, data)
    cells = _cells(path, axes, overrides)
    if not cells:
        raise MatrixError(f"{path.name}: the matrix has no cells")
    name = str(table.get("name") or path.stem)
    rounds, until_ci = _rounds(reader, table)
    return Matrix(name=name, cells=cells, gates=gates, out=table.get("out"), rounds=rounds,
                  until_ci=until_ci)


@dataclass
class _Axes:
    """[matrix]'s lists (every combination is a cell) and its settings common to all."""

    targets: list[str]
    scenarios: list[str]
    users: list[int]
    workers: list[int]
    threads: list[int]
    cpus: list[float]
    pools: list[int | None]
    classes: dict[str, list[str]]
    pythons: list[str]
    common: dict[str, Any]


def _axes(reader: _Reader, table: JsonObject) -> _Axes:
    path = reader.path
    for key in table:
        if key not in AXES | SCALARS:
            reader.fail(f"matrix.{key}", "unknown key (expected one of "
                        f"{', '.join(sorted(AXES | SCALARS))})", "matrix")
    sec = "matrix"
    targets = reader.strs(table.get("targets", list(TARGETS)), "matrix.targets", TARGETS, sec)
    if "scenarios" not in table:
        raise MatrixError(f"{path.name}: [matrix] needs scenarios = [...]")
    from loadlab.scenarios import SCENARIOS

    scenarios = reader.strs(table["scenarios"], "matrix.scenarios", SCENARIOS, sec)
    users = reader.ints(table.get("users", 10), "matrix.users", 1, MAX_USERS, sec)
    workers = reader.ints(table.get("workers", 1), "matrix.workers", 1, MAX_WORKERS, sec)
    threads = reader.ints(table.get("threads", 1), "matrix.threads", 1, MAX_THREADS, sec)
    cpus = reader.cpus(table.get("cpus", 0), "matrix.cpus", sec)
    pools: list[int | None] = (
        list(reader.ints(table["db_pool_size"], "matrix.db_pool_size", 1, MAX_DB_POOL_SIZE, sec))
        if "db_pool_size" in table else [None])
    classes_raw = table.get("worker_classes", {})
    classes: dict[str, list[str]] = {}
    if isinstance(classes_raw, dict):
        for fw, value in classes_raw.items():
            if fw not in TARGETS:
                reader.fail(f"matrix.worker_classes.{fw}", "unknown target", sec)
            classes[fw] = reader.strs(value, f"matrix.worker_classes.{fw}",
                                      WORKER_CLASSES[fw], sec)
    else:
        reader.fail("matrix.worker_classes",
                    "expected a table such as { flask = [\"sync\", \"gthread\"] }", sec)
    if "servers" in table:
        if classes:
            reader.fail("matrix.servers", "give servers or worker_classes, not both", sec)
        names = reader.strs(table["servers"], "matrix.servers", tuple(SERVERS), sec)
        for fw in targets:
            classes[fw] = list(dict.fromkeys(
                k for k in (class_for(name, fw) for name in names) if k is not None))
            if not classes[fw]:
                reader.fail("matrix.servers", f"none of {', '.join(names)} serves {fw}", sec)
    pythons = reader.strs(table.get("pythons", "default"), "matrix.pythons", PYTHONS, sec)
    common = _settings(reader, table, sec)
    if isinstance(table.get("name", ""), str) is False:
        reader.fail("matrix.name", "expected a string", sec)
    out = table.get("out")
    if out is not None and not isinstance(out, str):
        reader.fail("matrix.out", "expected a directory name", sec)
    return _Axes(targets, scenarios, users, workers, threads, cpus, pools, classes, pythons,
                 common)


def _gates(reader: _Reader, data: JsonObject) -> Gates:
    gates_table = data.get("gates", {})
    if not isinstance(gates_table, dict):
        raise MatrixError(f"{reader.path.name}: [gates] must be a table")
    for key, value in gates_table.items():
        if key not in GATE_KEYS:
            reader.fail(f"gates.{key}", f"unknown gate (expected {', '.join(sorted(GATE_KEYS))})",
                        "gates")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            reader.fail(f"gates.{key}", f"expected a number >= 0, got {value!r}", "gates")
        if key == "max_error_rate" and value > 1:
            reader.fail(f"gates.{key}", f"expected a share 0..1, got {value!r}", "gates")
    return Gates(**{k: float(v) for k, v in gates_table.items()})


# An [[override]]: its match, the settings it sets, and the users it sets (None: [matrix]'s).
_Override = tuple[JsonObject, dict[str, Any], list[int] | None]


def _overrides(reader: _Reader, data: JsonObject) -> list[_Override]:
    overrides = data.get("override", [])
    if not isinstance(overrides, list):
        raise MatrixError(f"{reader.path.name}: override must be [[override]] tables")
    parsed = []
    for nth, item in enumerate(overrides):
        if not isinstance(item, dict):
            raise MatrixError(f"{reader.path.name}: override must be [[override]] tables, "
                              f"found {item!r}")
        parsed.append(_override(reader, item, nth))
    return parsed


def _override(reader: _Reader, item: JsonObject, nth: int) -> _Override:
    sec_o = "override"
    for key in item:
        if key not in SETTINGS | {"match"}:
            reader.fail(f"override.{key}", "unknown key (expected match or one of "
                        f"{', '.join(sorted(SETTINGS))})", sec_o, nth)
    match = item.get("match", {})
    if not isinstance(match, dict):
        reader.fail("override.match", "expected a table such as { target = \"flask\" }",
                    sec_o, nth)
    for key in match:
        if key not in MATCH_KEYS:
            reader.fail(f"override.match.{key}", "unknown key (expected one of "
                        f"{', '.join(sorted(MATCH_KEYS))})", sec_o, nth)
    settings = _settings(reader, item, sec_o, nth)
    for key, top in (("workers", MAX_WORKERS), ("threads", MAX_THREADS),
                     ("db_pool_size", MAX_DB_POOL_SIZE)):
        if key in item:
            settings[key] = reader.ints(item[key], f"override.{key}", 1, top, sec_o, nth)[0]
    if "cpus" in item:
        settings["cpus"] = reader.cpus(item["cpus"], "override.cpus", sec_o, nth)[0]
    if "worker_class" in item:
        if not isinstance(item["worker_class"], str):
            reader.fail("override.worker_class", "expected a string", sec_o, nth)
        settings["worker_class"] = item["worker_class"]
    user_list = (reader.ints(item["users"], "override.users", 1, MAX_USERS, sec_o, nth)
                 if "users" in item else None)
    return match, settings, user_list


def _cells(path: Path, axes: _Axes, overrides: list[_Override]) -> list[RunSpec]:
    """Every combination of the axes, each with the overrides that match it applied."""
    cells: list[RunSpec] = []
    seen: set[str] = set()
    for target, scenario, cpu, n_workers, n_threads, pool, python in itertools.product(
        axes.targets, axes.scenarios, axes.cpus, axes.workers, axes.threads, axes.pools,
        axes.pythons,
    ):
        for worker_class in axes.classes.get(target, [""]):
            base = dict(target=target, scenario=scenario, cpus=cpu, workers=n_workers,
                        threads=n_threads, worker_class=worker_class, db_pool_size=pool,
                        python=python, **axes.common)
            cell_users = axes.users
            for match, settings, user_list in overrides:
                probe = {**base, "worker_class": base["worker_class"] or _default(target)}
                if all(probe.get(k) == v for k, v in match.items()):
                    base.update(settings)
                    if user_list is not None:
                        cell_users = user_list
            if base.get("threads", 1) > 1 and (base["worker_class"] or _default(target)) not in (
                threaded_classes([target])
            ):
                continue  # threads only mean something to gthread (and Granian's WSGI)
            if base.get("backpressure") and not takes_backpressure(
                    base["worker_class"] or _default(target)):
                base.pop("backpressure")  # Granian's alone: the other cells run without
            for n_users in cell_users:
                try:
                    spec = RunSpec(users=n_users, **base)
                except OptionError as exc:
                    raise MatrixError(f"{path.name}: {exc}") from None
                if spec.key not in seen:
                    seen.add(spec.key)
                    cells.append(spec)
    return cells


def _rounds(reader: _Reader, table: JsonObject) -> tuple[int | None, float | None]:
    """[matrix]'s rounds and until_ci (None: the command line's)."""
    sec = "matrix"
    rounds = (reader.ints(table["rounds"], "matrix.rounds", 1, 100, sec)[0]
              if "rounds" in table else None)
    until_ci = None
    if "until_ci" in table:
        value = table["until_ci"]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            reader.fail("matrix.until_ci", f"expected a percentage such as 5, got {value!r}",
                        sec)
        try:
            until_ci = parse_pct(value, "until_ci")
        except OptionError as exc:
            reader.fail("matrix.until_ci", str(exc).split(": ", 1)[-1], sec)
    return rounds, until_ci


def _default(target: str) -> str:
    from loadlab.serve import DEFAULT_WORKER_CLASS

    return DEFAULT_WORKER_CLASS[target]


def load_matrix(path: Path) -> Matrix:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise MatrixError(f"cannot read {path}: not UTF-8 text (byte {exc.start})") from None
    return parse_matrix(text, path)
