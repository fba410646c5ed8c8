"""Run options: parsing durations, rates and CPU counts, and the typed spec of one run.

Every parser raises ``OptionError`` with a one-line message naming the option, so the
commands can exit 2 without a traceback.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

from loadlab import servers
from loadlab.apps.spec import AppSpec
from loadlab.contract import MAX_USERS
from loadlab.errors import UserError
from loadlab.runs.record import Run, variant_key
from loadlab.scenarios import SCENARIOS
from loadlab.serve import (
    MAX_BACKPRESSURE,
    PYTHONS,
    WORKER_CLASSES,
    ServeError,
    ServerConfig,
)
from loadlab.servers import INTERFACES, SERVERS, class_for, server_of

TARGETS = ("fastapi", "flask")
MAX_DURATION_S = 24 * 3600.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class OptionError(UserError, ValueError):
    """A bad option value; the message is one line for the user."""


def parse_duration(text: str, name: str = "duration") -> float:
    """``30``, ``30s``, ``500ms``, ``1m30s``, ``2h`` -> seconds (bare numbers are seconds)."""
    raw = str(text).strip().lower()
    if not raw:
        raise OptionError(f"--{name}: empty duration")
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        seconds = float(raw)
    else:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or pos == 0:
            raise OptionError(
                f"--{name}: cannot read {text!r} as a duration (examples: 30s, 500ms, 1m30s)"
            )
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise OptionError(f"--{name}: {text!r} is longer than 24h")
    return seconds


def parse_rate(text: str, name: str = "arrival-rate") -> float:
    """``20``, ``20/s``, ``600/m``, ``1000/h`` -> requests (or users) per second, > 0."""
    raw = str(text).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:\s*/\s*(s|m|h|min|sec))?", raw)
    if not match:
        raise OptionError(f"--{name}: cannot read {text!r} as a rate (examples: 20, 20/s, 600/m)")
    per = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[match.group(2) or "s"]
    value = float(match.group(1)) / per
    if not math.isfinite(value) or value <= 0 or value > 1e6:
        raise OptionError(f"--{name}: {text!r} must be above 0 and at most 1e6 per second")
    return value


def parse_cpus(text: str | float, name: str = "cpus") -> float:
    """A CPU quota in cores: ``0`` (no limit), ``0.5``, ``2``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise OptionError(
            f"--{name}: cannot read {text!r} as a CPU count (examples: 0.5, 1, 2)"
        ) from None
    if not math.isfinite(value) or value < 0 or value > 1024:
        raise OptionError(f"--{name}: {text!r} must be 0 (no limit) or a positive core count")
    return value


def parse_int(text: str | int, name: str, low: int, high: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise OptionError(f"--{name}: cannot read {text!r} as a whole number") from None
    if not low <= value <= high:
        raise OptionError(f"--{name}: {value} must be between {low} and {high}")
    return value


MAX_ROUNDS = 100


def parse_server(text: str, name: str = "server") -> str:
    """A server of the registry (servers.py): uvicorn, gunicorn, granian."""
    raw = str(text).strip().lower()
    if raw not in SERVERS:
        raise OptionError(f"--{name}: unknown server {text!r}: choose one of "
                          f"{', '.join(SERVERS)}")
    return raw


def parse_python(text: str, name: str = "python") -> str:
    """``default`` (this interpreter) or ``ft`` (the free-threaded CPython 3.13t)."""
    raw = str(text).strip().lower()
    if raw not in PYTHONS:
        raise OptionError(f"--{name}: {text!r} is not one of {', '.join(PYTHONS)}")
    return raw


def class_of_server(server: str, target: str, worker_class: str = "") -> str:
    """The worker class a cell of `target` runs under ``--server``: `worker_class` when it
    is that server's, else the server's default for the target's interface."""
    if worker_class:
        if server_of(worker_class).name != server:
            raise OptionError(f"--worker-class {worker_class} is {server_of(worker_class).title}"
                              f"'s, not {SERVERS[server].title}'s: drop one of the two")
        return worker_class
    klass = class_for(server, target)
    if klass is None:
        serving = [s for s in SERVERS if class_for(s, target)]
        raise OptionError(f"--server {server} does not serve {target} "
                          f"({INTERFACES[target].upper()}): choose {' or '.join(serving)}")
    return klass


def parse_pct(text: str | float, name: str) -> float:
    """``5``, ``5%``, ``2.5%`` -> 5.0, 2.5 (percent, above 0 and below 100)."""
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise OptionError(f"--{name}: cannot read {text!r} as a percentage (examples: 5, 5%)"
                          ) from None
    if not math.isfinite(value) or not 0 < value < 100:
        raise OptionError(f"--{name}: {text!r} must be above 0% and below 100%")
    return value


def parse_rounds(rounds: str | int | None, until_ci: str | float | None,
                 ) -> tuple[int, float | None]:
    """--rounds N and --until-ci PCT: without --rounds, --until-ci may add up to 10."""
    pct = parse_pct(until_ci, "until-ci") if until_ci is not None else None
    default = 10 if pct is not None else 1
    n = parse_int(rounds, "rounds", 1, MAX_ROUNDS) if rounds is not None else default
    if pct is not None and n < 3:
        raise OptionError(f"--until-ci needs --rounds 3 or more (judged from 3 rounds), got {n}")
    return n, pct


@dataclass(frozen=True)
class Gates:
    """Thresholds that fail the command (exit 1) when a run misses them."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_error_rate: float | None = None
    min_rps: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def check(self, run: Run) -> list[str]:
        """The gates this run misses, each as 'gate: figure' for the user."""
        label = f"{run['target']}/{run['scenario']}"
        # Open model: latency gates judge what users see, from the intended send time.
        lat = run.get("intended_latency_ms") or run.get("latency_ms") or {}
        missed: list[str] = []
        if run.get("status") != "ok":
            return [f"{label}: run failed ({run.get('error', 'unknown reason')})"]
        # A percentile not measured (absent or None) misses its gate.
        p95, p99 = lat.get("p95"), lat.get("p99")
        if self.max_p95_ms is not None and (p95 if p95 is not None else math.inf) > self.max_p95_ms:
            missed.append(f"--max-p95-ms {self.max_p95_ms:g}: {label} p95 = {lat.get('p95')} ms")
        if self.max_p99_ms is not None and (p99 if p99 is not None else math.inf) > self.max_p99_ms:
            missed.append(f"--max-p99-ms {self.max_p99_ms:g}: {label} p99 = {lat.get('p99')} ms")
        if self.max_error_rate is not None:
            rate = run["failures"] / run["requests"] if run["requests"] else 1.0
            if rate > self.max_error_rate:
                missed.append(
                    f"--max-error-rate {self.max_error_rate:g}: {label} error rate = {rate:.4f}"
                )
        if self.min_rps is not None and run["rps"] < self.min_rps:
            missed.append(f"--min-rps {self.min_rps:g}: {label} rps = {run['rps']:.1f}")
        return missed


APP = "app"  # the target of a user's own app (ServerConfig's framework "app")
# The scenario a run of the user's own load is recorded under.
OWN_LOAD = {"locustfile": "locustfile", "requests": "requests"}


@dataclass(frozen=True)
class RunSpec:
    """One cell: one target under one configuration and one load."""

    target: str
    scenario: str
    users: int = 10
    spawn_rate: float = 0.0  # 0: all users at once (users per second otherwise)
    duration_s: float = 30.0
    warmup_s: float = 5.0
    arrival_rate: float | None = None
    cpus: float = 0.0
    workers: int = 1
    worker_class: str = ""
    threads: int = 1
    io_ms: int | None = None
    cpu_work: int | None = None
    db_pool_size: int | None = None  # connections per service process (None: its default)
    # Granian: requests a worker takes at once (None: the server's default).
    backpressure: int | None = None
    # The interpreter the service runs on: "default" (this one) or "ft" (free-threaded
    # CPython 3.13t, as ``loadlab serve --python ft``).
    python: str = "default"
    extra: dict[str, str] = field(default_factory=dict)  # further locustfile options
    # The user's own load instead of the lab's scenarios: a locustfile (its user classes,
    # measured by locust/loadlab_plugin.py) or --request templates (loadlab.requestlist).
    locustfile: str = ""
    request_templates: tuple[str, ...] = ()
    # The user's own app (loadlab.apps, its interface found): target "app".
    app: AppSpec | None = None

    def __post_init__(self) -> None:
        if self.app is not None:
            object.__setattr__(self, "target", APP)
        elif self.target not in TARGETS:
            raise OptionError(f"unknown target {self.target!r}: choose fastapi, flask or both")
        if self.locustfile and self.request_templates:
            raise OptionError("--locustfile and --request: choose one")
        if self.own_load:
            object.__setattr__(self, "scenario", OWN_LOAD["locustfile" if self.locustfile
                                                           else "requests"])
        elif self.scenario not in SCENARIOS:
            raise OptionError(
                f"unknown scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}"
            )
        classes = self.worker_classes
        if not self.worker_class:
            object.__setattr__(self, "worker_class", classes[0])
        if self.worker_class not in classes:
            raise OptionError(
                f"unknown worker class {self.worker_class!r} for {self.target}: choose one of "
                f"{', '.join(classes)}"
            )
        if not 1 <= self.users <= MAX_USERS:
            raise OptionError(f"--users must be between 1 and {MAX_USERS}, got {self.users}")
        if self.duration_s <= 0:
            raise OptionError("--duration must be above 0")
        if self.warmup_s < 0:
            raise OptionError("--warmup must not be negative")
        if self.db_pool_size is not None and not 1 <= self.db_pool_size <= 1000:
            raise OptionError(f"--db-pool-size must be between 1 and 1000, got "
                              f"{self.db_pool_size}")
        if self.backpressure is not None and not 1 <= self.backpressure <= MAX_BACKPRESSURE:
            raise OptionError(f"--backpressure must be between 1 and {MAX_BACKPRESSURE}, got "
                              f"{self.backpressure}")
        try:
            self.server_config(port=0)
        except ServeError as exc:
            raise OptionError(str(exc)) from None

    @property
    def worker_classes(self) -> tuple[str, ...]:
        """The worker classes that can serve this cell's app (the first is the default)."""
        if self.app is not None:
            return servers.classes_for(self.app.interface)
        return WORKER_CLASSES[self.target]

    def server_config(self, port: int, host: str = "127.0.0.1") -> ServerConfig:
        return ServerConfig(
            framework=self.target,  # type: ignore[arg-type]
            host=host, port=port, workers=self.workers, worker_class=self.worker_class,
            threads=self.threads, cpus=self.cpus, backpressure=self.backpressure or 0,
            python=self.python, app=self.app,
        )

    @property
    def server(self) -> str:
        """The server software (the registry's name: uvicorn, gunicorn, granian)."""
        return server_of(self.worker_class).name

    @property
    def own_load(self) -> bool:
        """The user's load (--locustfile or --request), not one of the lab's scenarios."""
        return bool(self.locustfile or self.request_templates)

    @property
    def key(self) -> str:
        """Identifies the cell in a results directory (what --resume skips)."""
        return variant_key(self.fields())

    def fields(self) -> dict[str, Any]:
        """The spec's fields by name, as the results' variant functions read them."""
        fields = {f.name: getattr(self, f.name) for f in dataclass_fields(self)}
        fields["app"] = self.app.target if self.app is not None else None
        return fields

    def with_(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)


def expand_targets(target: str) -> list[str]:
    if target == "both":
        return list(TARGETS)
    if target not in TARGETS:
        raise OptionError(f"unknown target {target!r}: choose fastapi, flask or both")
    return [target]
