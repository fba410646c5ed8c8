"""The lab's command-line options for Locust, their web-UI form fields, and validation.

Options are checked before any load starts: a bad value ends the process with one line
naming the option and exit code 2, the same as every other loadlab command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from _cpuwatch import WARN_PERCENT

from loadlab import scenarios
from loadlab.contract import MAX_CPU_WORK, MAX_IO_MS, MAX_QUERIES
from loadlab.scenarios import SCENARIOS

# The web-UI dropdown offers these; "host" uses Locust's own Host field / --host, "both"
# loads FastAPI and Flask at once (users split evenly), the others one service each. The
# names are the compose services' (Prometheus's `service` label on their own series).
TARGET_ENV = {
    "fastapi": "LOADLAB_FASTAPI_URL",
    "flask": "LOADLAB_FLASK_URL",
    "fastapi-gunicorn": "LOADLAB_FASTAPI_GUNICORN_URL",
    "flask-gevent": "LOADLAB_FLASK_GEVENT_URL",
    "fastapi-granian": "LOADLAB_FASTAPI_GRANIAN_URL",
    "flask-granian": "LOADLAB_FLASK_GRANIAN_URL",
}
BOTH = ("fastapi", "flask")
TARGETS = ("host", "fastapi", "flask", "both", *list(TARGET_ENV)[2:])
# The master ships the URLs it knows to its workers inside the options of every spawn
# message (Locust sends them along), so a worker without the variables still finds them.
URLS_OPTION = "loadlab_target_urls"

# Cost of one unit of cpu work on the reference machines (see loadlab.workloads).
CPU_UNIT_S = 0.0001
# A user cannot complete requests faster than this, whatever the scenario.
MIN_SERVICE_S = 0.001


def fail(message: str) -> NoReturn:
    """One line on stderr, exit 2: the usage-error convention of every loadlab command."""
    sys.stderr.write(f"locust: error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


def add_arguments(parser: Any) -> None:
    """Register every option (the lab's locustfile: its scenarios and the measurement)."""
    add_lab_arguments(parser)
    add_measurement_arguments(parser)


def add_lab_arguments(parser: Any) -> None:
    """The lab's own workload options (scenario, target, wait, work); ``include_in_web_ui``
    ones appear under "Custom parameters"."""
    parser.error = fail
    parser.add_argument("--scenario", choices=SCENARIOS, default="json",
                       help="which endpoint(s) the users call")
    parser.add_argument("--target", choices=TARGETS, default="host",
                       help="'host' = --host; a service name reads its LOADLAB_<SERVICE>_URL "
                            "(LOADLAB_FASTAPI_URL ...); 'both' = fastapi and flask at once, "
                            "users split evenly")
    parser.add_argument("--io-ms", type=int, default=50, help="ms the server waits (io, mixed, "
                       "upstream; the database holds its connection this long in db-sleep, "
                       "db-blocking)")
    parser.add_argument("--queries", type=int, default=20, help="rows per request, one query "
                       "each (queries)")
    parser.add_argument("--cpu-work", type=int, default=100, help="units of CPU work (~0.1 ms "
                       "each) for cpu* and mixed")


def add_measurement_arguments(parser: Any) -> None:
    """The measurement's options, for any user class (loadlab_plugin.py registers them)."""
    # argparse's own errors (a non-numeric value, an unknown choice) in one line as well;
    # LocustArgumentParser.error would add usage text over several lines.
    parser.error = fail
    parser.add_argument("--arrival-rate", type=float, default=0.0,
                       help="open model: requests/s in total, independent of response times "
                            "(0 = closed model: each user waits for its answer)")
    parser.add_argument("--late-ms", type=float, default=10.0, include_in_web_ui=False,
                       help="open model: a send this late after its intended time counts as late")
    parser.add_argument("--warmup-s", type=float, default=0.0,
                       help="reset statistics this many seconds after the test starts")
    parser.add_argument("--max-p95-ms", type=float, default=None, include_in_web_ui=False,
                       help="gate: fail (exit 1) if p95 latency exceeds this")
    parser.add_argument("--max-p99-ms", type=float, default=None, include_in_web_ui=False,
                       help="gate: fail (exit 1) if p99 latency exceeds this")
    parser.add_argument("--max-error-rate", type=float, default=None, include_in_web_ui=False,
                       help="gate: fail (exit 1) if failures/requests exceeds this (0..1)")
    parser.add_argument("--min-rps", type=float, default=None, include_in_web_ui=False,
                       help="gate: fail (exit 1) if requests/s falls below this")
    parser.add_argument("--cpu-warn-percent", type=float, default=WARN_PERCENT,
                        include_in_web_ui=False,
                        help="warn when a Locust process uses more CPU than this (of one core)")
    parser.add_argument("--loadlab-report", default="", include_in_web_ui=False,
                       help="write the lab's extra figures (JSON) to this file at exit")
    parser.add_argument("--wait-ready-s", type=float, default=0.0, include_in_web_ui=False,
                        help="before the test starts, wait up to this long for the target's "
                        "/healthz (a load generator started beside its service)")
    parser.add_argument("--wait-workers", type=int, default=1, include_in_web_ui=False,
                        help="with --wait-ready-s: also wait until the target's /metrics "
                        "counts this many workers up (loadlab_workers)")


@dataclass(frozen=True)
class Knobs:
    """What a user needs per request, read once per user from the (form-updated) options."""

    scenario: str
    io_ms: int
    cpu_work: int
    queries: int
    arrival_rate: float
    late_s: float

    @classmethod
    def from_options(cls, options: Any) -> Knobs:
        return cls(
            scenario=str(options.scenario),
            io_ms=int(options.io_ms),
            cpu_work=int(options.cpu_work),
            queries=int(getattr(options, "queries", 20)),
            arrival_rate=float(options.arrival_rate),
            late_s=float(options.late_ms) / 1000,
        )

    def min_service_s(self) -> float:
        """The least time one request of this scenario can take (the server's own wait/work)."""
        io = self.io_ms / 1000 if scenarios.waits(self.scenario) else 0.0
        cpu = self.cpu_work * CPU_UNIT_S if scenarios.works(self.scenario) else 0.0
        return max(io + cpu, MIN_SERVICE_S)


def problems(options: Any, users: int | None, host: str | None = None) -> list[str]:
    """Every reason these options cannot run, one line each (empty when they can).

    ``host`` stands for the options' own when given (a worker learns the host from its
    master's spawn message, not from its options)."""
    out: list[str] = lab_problems(options) if lab_options(options) else []
    if not options.arrival_rate >= 0:  # also rejects nan
        out.append(f"--arrival-rate {options.arrival_rate}: must be >= 0")
    if not options.late_ms > 0:
        out.append(f"--late-ms {options.late_ms}: must be > 0")
    if not options.cpu_warn_percent > 0:
        out.append(f"--cpu-warn-percent {options.cpu_warn_percent}: must be > 0")
    if not options.warmup_s >= 0:
        out.append(f"--warmup-s {options.warmup_s}: must be >= 0")
    if not options.wait_ready_s >= 0:
        out.append(f"--wait-ready-s {options.wait_ready_s}: must be >= 0")
    if not options.wait_workers >= 1:
        out.append(f"--wait-workers {options.wait_workers}: must be >= 1")
    for name in ("max_p95_ms", "max_p99_ms", "min_rps"):
        value = getattr(options, name)
        if value is not None and not value >= 0:
            out.append(f"--{name.replace('_', '-')} {value}: must be >= 0")
    rate = options.max_error_rate
    if rate is not None and not 0 <= rate <= 1:
        out.append(f"--max-error-rate {rate}: must be between 0 and 1")
    out.extend(target_problems(options, host))
    if getattr(options, "target", "") == "both" and users is not None and users < 2:
        out.append(f"--target both: needs at least 2 users, one per service (got {users})")
    if not out and options.arrival_rate > 0 and users is not None:
        least = (Knobs.from_options(options).min_service_s() if lab_options(options)
                 else MIN_SERVICE_S)
        need = options.arrival_rate * least
        if users < need:
            out.append(
                f"--arrival-rate {options.arrival_rate:g}: needs at least {need:.0f} users "
                f"(-u) to carry it even at the server's minimum latency (got {users})"
            )
    return out


def lab_options(options: Any) -> bool:
    """Whether the lab's own workload options are registered (its locustfile is loaded);
    a user's own locustfile with the plugin has the measurement's options only."""
    return hasattr(options, "scenario")


def lab_problems(options: Any) -> list[str]:
    out: list[str] = []
    if options.scenario not in SCENARIOS:
        out.append(f"--scenario {options.scenario!r}: choose from {', '.join(SCENARIOS)}")
    if not 0 <= options.io_ms <= MAX_IO_MS:
        out.append(f"--io-ms {options.io_ms}: must be between 0 and {MAX_IO_MS}")
    if not 0 <= options.cpu_work <= MAX_CPU_WORK:
        out.append(f"--cpu-work {options.cpu_work}: must be between 0 and {MAX_CPU_WORK}")
    if not 1 <= getattr(options, "queries", 1) <= MAX_QUERIES:
        out.append(f"--queries {options.queries}: must be between 1 and {MAX_QUERIES}")
    return out


def services(target: str) -> tuple[str, ...]:
    """The services a target choice loads ("host" loads whatever the Host field names)."""
    if target == "both":
        return BOTH
    return (target,) if target in TARGET_ENV else ()


def known_urls(options: Any = None) -> dict[str, str]:
    """Service -> URL: this process's environment first, then what the master shipped."""
    shipped = getattr(options, URLS_OPTION, None) if options is not None else None
    urls = {k: str(v) for k, v in (shipped or {}).items() if k in TARGET_ENV and v}
    urls.update({k: os.environ[env] for k, env in TARGET_ENV.items() if os.environ.get(env)})
    return urls


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL with a host"
    return None


def target_problems(options: Any, host: str | None = None) -> list[str]:
    """Why the target choice cannot run here: a service without its URL, or no usable host."""
    target = getattr(options, "target", "host")
    if target not in TARGETS:
        return [f"--target {target!r}: choose from {', '.join(TARGETS)}"]
    if target == "host":
        host = str((getattr(options, "host", "") if host is None else host) or "")
        if not host:
            return ["Host is empty: enter the URL to load (e.g. http://127.0.0.1:8000) or "
                    "choose a service as Target"]
        problem = _url_problem(host)
        return [f"Host {host!r} {problem}"] if problem else []
    urls = known_urls(options)
    out = []
    for service in services(target):
        url = urls.get(service)
        if not url:
            out.append(f"--target {target}: set {TARGET_ENV[service]} to the {service} "
                       "service's URL (on the master and every worker)")
        elif (problem := _url_problem(url)) is not None:
            out.append(f"--target {target}: {TARGET_ENV[service]}={url!r} {problem}")
    return out


def target_url(options: Any) -> str | None:
    """The URL of a single-service target, or None for "host" and "both"."""
    if options is None:
        return None
    chosen = services(getattr(options, "target", "host"))
    if len(chosen) != 1:
        return None
    return known_urls(options).get(chosen[0])


def apply_form(options: Any, form: Mapping[str, str]) -> tuple[Any, list[str]]:
    """The options a /swarm form would leave, converted as Locust converts them, and the
    fields it could not convert; ``options`` itself is left alone (Locust changes it only
    once the request is accepted)."""
    values = dict(vars(options))
    bad: list[str] = []
    for key, value in form.items():
        if key in ("user_count", "spawn_rate", "user_classes", "run_time", "profile",
                   "shape_class"):
            continue
        if key == "host":
            values["host"] = value.replace("<", "").replace(">", "")
            continue
        if key not in values:
            continue
        current = values[key]
        try:
            if isinstance(current, bool):
                values[key] = value == "true"
            elif current is None:
                values[key] = value
            elif not isinstance(current, list):
                values[key] = type(current)(value)
        except (TypeError, ValueError):
            kind = "whole number" if isinstance(current, int) else "number"
            bad.append(f"{key.replace('_', '-')} {value!r}: not a {kind}")
    return argparse.Namespace(**values), bad


def form_problems(options: Any, form: Mapping[str, str]) -> list[str]:
    """Every reason a /swarm form cannot run, before Locust applies any of it."""
    updated, bad = apply_form(options, form)
    if bad:
        return bad
    try:
        users: int | None = int(form.get("user_count", ""))
    except ValueError:
        users = None  # Locust answers that one itself
    return problems(updated, users)
