"""The run record: what one run of a cell writes into summary.json, and how it is named.

``runner/execute.py`` builds a record (``record_from``), ``runner/rounds.py`` folds rounds
of one cell into one, ``runner/session.py`` judges its status, ``runs/store.py`` stores it;
the report, compare and the claims read it. The shapes below are TypedDicts (the JSON stays the
format, nothing changes at runtime) so that mypy finds every reader of a field; so are the
other documents the runner or ``loadlab size`` writes and the report reads (summary.json's
``Summary`` and ``Manifest``, size.json's ``SizeDoc``).
Every table is ``total=False``: summaries written by older versions lack later fields, and
``read_runs`` fills in the tables a reader may then rely on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

from loadlab.runs.bottleneck import Bottleneck
from loadlab.servers import FRAMEWORK_TITLES, worker_class

# Statuses of a run (docs/runner.md): only "ok" runs are figures.
OK, FAILED, ERRORS, BROKEN = "ok", "failed", "errors", "broken"
Status = Literal["ok", "failed", "errors", "broken"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "errors", "broken")
# How a target is named in prose.
NAMES = FRAMEWORK_TITLES


class LatencyMs(TypedDict, total=False):
    """Client-side latency percentiles of the measured window (ms; None: nothing measured)."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None  # the HDR histogram's, when the locustfile reports it


class PythonFigures(TypedDict):
    """The interpreter the service ran on, as its /info states it."""

    implementation: str
    version: str
    free_threaded: bool  # a build that can run without the GIL (CPython 3.13t)


class ServerFigures(TypedDict, total=False):
    """The server's side of the window. ``name`` is the server software (the server
    registry's name: uvicorn, gunicorn, granian): the results contract names both the
    software and these figures ``server``. ``python`` and ``gil_enabled`` come from the
    service's /info during the run (the GIL's state read inside a request; None: /info
    did not answer)."""

    name: str
    python: PythonFigures | None
    gil_enabled: bool | None
    cpu_seconds: float | None
    cpu_cores_used: float | None
    cpu_limit: float | None
    throttled_seconds: float | None
    throttled_share: float | None
    memory_bytes: int | None
    requests_in_progress: float | None
    in_progress_samples: int
    source: str
    scrape_errors: int
    scrape: str  # "side-port" (the supervisor's) or "service-port" (a worker answered)
    cpu_per_request_ms: float | None


class Machine(TypedDict, total=False):
    """The whole machine in the window; ``other_cores`` is neither the service nor Locust."""

    busy_cores: float
    other_cores: float
    load_generator_cores: float
    loadavg_1m: float | None


class Load(TypedDict, total=False):
    """The load generator: its peak CPU and where it ran beside the service."""

    peak_cpu_percent: float
    server_cores: list[int]
    load_cores: list[int]
    separated: bool
    saturated: bool


class ProbeMs(TypedDict, total=False):
    """The sampler's own /healthz probes during the window (ms)."""

    count: int
    p50: float | None
    max: float | None


class Database(TypedDict, total=False):
    """The PostgreSQL server of a database scenario (its description and its figures)."""

    version: str
    version_num: int  # a server given by DATABASE_URL (the lab's own cluster: not recorded)
    max_connections: int
    shared_buffers: str
    source: str
    binaries: str
    cores: list[int]
    cpu_seconds: float | None
    cpu_cores_used: float | None
    connections_peak: int
    connections_mean: float | None


class Precision(TypedDict):
    """How tight the main figure's interval is (``--until-ci``)."""

    figure: str
    half_width_pct: float | None
    target_pct: float | None


# Headline figure -> its 95% interval over rounds ([low, high]; None: too few rounds).
CI = dict[str, list[float] | None]


class PrometheusGap(TypedDict):
    """A span of the run when the stack's Prometheus did not answer (s from the run's start)."""

    from_s: float
    to_s: float
    recovered: bool  # False: it was still missing at the run's end


class PrometheusFigures(TypedDict):
    """Whether the stack's Prometheus was there through the run (runner/prometheus_watch.py)."""

    url: str | None  # None: not running in the stack
    available: bool
    checks: int
    failed_checks: int
    unavailable_s: float
    gaps: list[PrometheusGap]


class SwarmTask(TypedDict):
    """A swarm service's task: the node it runs on (hostname), its state and slot."""

    node: str
    state: str
    slot: int | None


class SwarmFigures(TypedDict):
    """Where a swarm run's service and Locust ran (runner/swarm.py)."""

    tasks: dict[str, list[SwarmTask]]  # service -> its tasks
    workers: int  # Locust workers


class Variant(TypedDict, total=False):
    """What was run: the server variant and the load put on it (a cell of the matrix)."""

    target: str
    framework: str
    scenario: str
    cpus: float | None
    workers: int
    worker_class: str
    threads: int
    users: int
    spawn_rate: float
    arrival_rate: float | None
    io_ms: int | None
    cpu_work: int | None
    db_pool_size: int | None
    backpressure: int | None  # Granian's requests per worker at once (None: its default)
    python: str  # the interpreter asked for: "default" or "ft" (free-threaded)
    duration_s: float
    warmup_s: float
    app: str  # the user's own app, MODULE:ATTR (target "app")
    locustfile: str  # the user's own load (scenario "locustfile")
    request_templates: list[str]  # --request (scenario "requests")


class Series(TypedDict):
    """The measured window second by second (the sampler's scrape intervals): what the
    claims' intervals are computed from (loadlab.stats.series_estimate)."""

    seconds: list[float | None]
    rps: list[float | None]  # requests the service completed per second
    cpu_cores: list[float | None]  # the service's CPU per second (None: not read)


class Round(TypedDict, total=False):
    """One round's own figures, kept under a run's ``rounds`` (runner/rounds.py)."""

    run_id: str
    status: str  # one of STATUSES
    error: str
    started_at: str
    requests: int
    failures: int
    error_rate: float | None
    rps: float
    latency_ms: LatencyMs
    intended_latency_ms: LatencyMs
    server: ServerFigures
    machine: Machine
    probe_ms: ProbeMs
    load: Load
    measured_s: float
    locust_json: str
    database: Database
    series: Series


class Run(Variant, Round, total=False):
    """One run of a cell (with rounds: their medians on top, each round kept): a round's
    figures, and these."""

    key: str
    latency_source: str  # "locust" or "hdr"
    model: str  # "closed" or "open"
    open_model: dict[str, Any]
    think_time_ms: float | None  # the users' declared wait_time, weighted over the classes
    pacing_ms: float | None  # ...or the cycle every class paces to instead
    warmup_excluded: str  # "all", "rps only" or "none"
    samples: str
    notes: list[str]
    prometheus: PrometheusFigures  # compose and swarm runs
    swarm: SwarmFigures  # swarm runs
    rounds: list[Round]
    rounds_ok: int
    ci: CI
    ci_level: float
    ci_method: str
    precision: Precision
    bottleneck: Bottleneck  # the resource that limited the run (runs/bottleneck.py)


def get(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path named at runtime (``server.cpu_per_request_ms``, a
    ``--match`` field, a plot's axis), or None where the path is absent."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class SwarmNode(TypedDict, total=False):
    """A swarm node as the manifest lists it (Docker's description, the CPU seen there)."""

    id: str
    hostname: str
    addr: str
    loadlab_role: str  # its loadlab.role label, or ""
    cores: float | None
    memory_bytes: int
    state: str
    availability: str
    cpu_model: str | None  # None: the one-off task on the node did not report


class LimitsApplied(TypedDict):
    cpus: list[float]  # the runs' --cpus (0: none)
    cpu_limit_seen: list[float]  # the cgroup limits the services saw


class Manifest(TypedDict, total=False):
    """The machine and the software that made a results directory (runner/manifest.py,
    with the runtime's ``manifest_notes``; runs/store.py keeps the rest up to date)."""

    created_at: str
    git_commit: str
    versions: dict[str, str]  # package -> version
    lock_sha256: str
    cpu_model: str
    cores: int
    cgroup_version: str
    runtime: str
    placement: str
    command_line: str
    command_lines: list[str | None]  # every invocation that wrote to the directory
    load_generator_peak_cpu_percent: float
    limits_applied: LimitsApplied
    database: Database  # the database scenarios' server (native runs)
    stack: str  # swarm: the stack, its nodes and where its tasks run
    nodes: list[SwarmNode]
    tasks: dict[str, list[SwarmTask]]


class Summary(TypedDict, total=False):
    """A results directory's summary.json (``format`` and ``loadlab_version`` absent in
    the earliest); ``runs`` as stored: read them with ``read_runs``."""

    format: str
    loadlab_version: str
    manifest: Manifest
    runs: list[Run]


# --- size.json: what ``loadlab size`` found (sizing/command.py writes it, the report reads it)
# Here, under both: the report may not import the sizing package (which imports the report).
# The point and candidate tables are ``total=False``: an older size.json lacks later fields.


class SizePoint(TypedDict, total=False):
    """One arrival rate measured in one run or more (its rounds)."""

    rate: float  # offered, req/s
    met: bool
    rounds: int
    rps: float | None  # served
    rps_rounds: list[float]
    ci: list[float] | None  # of ``rps``: [low, high]
    half_width_pct: float | None
    interval_method: str | None
    latency_ms: float | None  # the target's percentile (median over rounds)
    mean_ms: float | None
    error_rate: float | None
    bottleneck: str | None  # the verdict of the point's last round
    evidence: str | None
    results: str | None  # the results directory of its runs, relative to size.json's
    other_cores: float  # the most other work on the machine during its rounds, in cores


class SizeCandidate(TypedDict, total=False):
    """One server configuration searched: its capacity within the target and its points."""

    label: str
    worker_class: str
    workers: int
    threads: int
    db_pool_size: int | None
    capacity_rps: float | None
    ci: list[float] | None
    half_width_pct: float | None
    rate_met: float | None
    rate_missed: float | None
    stopped: str  # why its search ended where it did
    pruned: bool
    bound_rps: float | None
    points: list[SizePoint]
    branch: str  # its branch's label (older size.json: absent)
    dominated: bool


class SizeBranch(TypedDict):
    """One branch's walk along the workers."""

    branch: str
    stopped: str
    fit: str | None  # the USL fit's description, when one was made
    workers: list[int]


class SizeRecommendation(TypedDict):
    best: str | None  # a candidate's label
    best_capacity_rps: float | None
    best_ci: list[float] | None
    runner_up: str | None
    runner_up_capacity_rps: float | None
    difference_rps: float | None
    difference_ci: list[float] | None
    significant: bool
    met: bool
    sentence: str
    busy_cores: float  # the most other work seen during the points, in cores


class SizeSlo(TypedDict, total=False):
    percentile: str  # "p95"
    limit_ms: float
    max_error_rate: float
    text: str
    latency: str  # how it is measured


class SizeLoad(TypedDict, total=False):
    """The load searched with: the user's locustfile, requests, or a scenario."""

    locustfile: str
    requests: list[str]
    scenario: str
    io_ms: int | None
    cpu_work: int | None


class SizeSearch(TypedDict):
    """How the search ran and what it did."""

    rounds: int
    duration_s: float
    warmup_s: float
    start_rate: float
    max_rate: float
    bisection_steps: int
    precision_pct: float
    candidates: int
    measured: int
    pruned: int
    points: int
    runs: int
    # Since the budget (older size.json files lack them): the whole search's time, the
    # candidates its rest narrowed, the time the search took.
    budget_s: NotRequired[float]
    narrowed: NotRequired[list[str]]
    elapsed_s: NotRequired[float | None]


class SizeDoc(TypedDict, total=False):
    """A ``loadlab size`` directory's size.json (``format``: ``loadlab-size/N``)."""

    format: str
    target: str
    app: str | None
    load: SizeLoad
    cpus: float
    runtime: str
    slo: SizeSlo
    search: SizeSearch
    candidates: list[SizeCandidate]
    branches: list[SizeBranch]
    recommendation: SizeRecommendation
    min_capacity: float | None
    below_min_capacity: bool
    command: list[str]


LabelStyle = Literal["compare", "line", "progress", "row", "plot", "prose"]


def _count(n: int, one: str, many: str) -> str:
    return f"one {one}" if n == 1 else f"{n} {many}"


def _prose(run: Mapping[str, Any]) -> str:
    """FastAPI on one Uvicorn process; Flask on 2 Gunicorn gthread workers × 4 threads."""
    name = NAMES.get(run["target"], run["target"])
    klass, n = run.get("worker_class") or "", int(run.get("workers") or 1)
    entry = worker_class(klass)
    if entry is not None:
        where = entry.title(n)
    else:  # a class this lab no longer knows: name it as Gunicorn's
        where = _count(n, f"Gunicorn {klass} worker", f"Gunicorn {klass} workers")
    if int(run.get("threads") or 1) > 1:
        where += f" × {run['threads']} threads"
    if run.get("backpressure"):
        where += f" with backpressure {run['backpressure']}"
    limit = run.get("cpus")
    tail = f" limited to {limit:g} CPU" if limit else ""
    if _free_threaded(run):
        # A free-threaded build whose GIL was on inside a request ran as a normal one.
        gil_on = get(run, "server.gil_enabled") is True
        tail += " (free-threaded build, but the GIL was on)" if gil_on else " (free-threaded)"
    return f"{name} on {where}{tail}"


def _free_threaded(run: Mapping[str, Any]) -> bool:
    return run.get("python") == "ft"


def _marks(run: Mapping[str, Any], sep: str = "=") -> str:
    """What sets a cell apart beyond the usual fields: Granian's backpressure, the
    free-threaded interpreter (empty for the default ones)."""
    text = f" bp{sep}{run['backpressure']}" if run.get("backpressure") else ""
    return text + (" free-threaded" if _free_threaded(run) else "")


def variant_label(run: Mapping[str, Any], style: LabelStyle = "line") -> str:
    """The run's variant in words; one function, one wording per place it is shown:

    - ``line``: the runner's line after each run (``fastapi uvicorn w1 t1 cpus=1 io u50``);
    - ``compare``: compare's match label, which also names a set rate, wait or work;
    - ``progress``: the live progress line (``fastapi/uvicorn w1 io u50``);
    - ``row``: a report figure's row (``FastAPI gthread ×2×4t``; CPU and load apart);
    - ``plot``: a scaling plot's legend (``flask gthread ×2×4t @1 CPU``);
    - ``prose``: the report's first sentences (``Flask on 2 Gunicorn gthread workers ×
      4 threads limited to 1 CPU``).
    ``run`` is a run record or anything with its variant fields (a RunSpec's, as a dict).
    """
    if style == "prose":
        return _prose(run)
    if style == "progress":
        return (f"{run['target']}/{run['worker_class']} w{run['workers']} {run['scenario']} "
                f"u{run['users']}{_marks(run)}")
    if style == "compare":
        text = (f"{run.get('target')} {run.get('worker_class')} w{run.get('workers')} "
                f"t{run.get('threads')} cpus={run.get('cpus') or '-'} {run.get('scenario')} "
                f"u{run.get('users')}")
        for key, mark in (("arrival_rate", "rate"), ("io_ms", "io"), ("cpu_work", "work")):
            if run.get(key) is not None:
                text += f" {mark}={run[key]:g}"
        return text + _marks(run)
    if style == "line":
        cpus = run["cpus"]
        return (f"{run['target']} {run['worker_class']} w{run['workers']} t{run['threads']} "
                f"{'cpus=' + format(cpus, 'g') if cpus else 'no CPU limit'} "
                f"{run['scenario']} u{run['users']}{_marks(run)}")
    if style == "row":
        shape = f"×{run.get('workers', 1)}"
        if int(run.get("threads") or 1) > 1:
            shape += f"×{run['threads']}t"
        return (f"{NAMES.get(run['target'], run['target'])} {run.get('worker_class') or ''} "
                f"{shape}{_marks(run)}")
    # plot
    text = f"{run['target']} {run['worker_class']} ×{run['workers']}"
    if run.get("threads", 1) > 1:
        text += f"×{run['threads']}t"
    text += f" @{run['cpus']:g} CPU" if run.get("cpus") else " no CPU limit"
    return text + _marks(run)


def variant_key(run: Mapping[str, Any]) -> str:
    """The cell's key in a results directory (what --resume skips), from its variant fields
    (a RunSpec's, which adds ``extra`` locustfile options). A stored run carries the key it
    was run under as ``key``: that one identifies it (``db_pool_size`` is recorded resolved)."""
    parts = [
        run["target"], run["scenario"], f"u{run['users']}", f"c{run['cpus']:g}",
        f"w{run['workers']}", run["worker_class"], f"t{run['threads']}",
        f"d{run['duration_s']:g}",
    ]
    if run.get("arrival_rate"):
        parts.append(f"a{run['arrival_rate']:g}")
    if run.get("io_ms") is not None:
        parts.append(f"io{run['io_ms']}")
    if run.get("cpu_work") is not None:
        parts.append(f"work{run['cpu_work']}")
    if run.get("db_pool_size") is not None:
        parts.append(f"pool{run['db_pool_size']}")
    if run.get("backpressure") is not None:
        parts.append(f"bp{run['backpressure']}")
    if run.get("python") not in (None, "default"):
        parts.append(f"py{run['python']}")
    parts += [f"{k}={v}" for k, v in sorted((run.get("extra") or {}).items())]
    if run.get("app"):
        parts.append(f"app={run['app']}")
    if run.get("locustfile"):
        parts.append(f"lf={run['locustfile']}")
    if run.get("request_templates"):
        parts.append("req=" + "|".join(run["request_templates"]))
    return "-".join(parts)


# A run's own fields, the same in each of its rounds (the rest is the round's figures).
IDENTITY = {"run_id", "key", "status", "error", "target", "framework", "scenario", "cpus",
            "workers", "worker_class", "threads", "users", "spawn_rate", "arrival_rate",
            "io_ms", "cpu_work", "duration_s", "warmup_s", "started_at", "locust_json",
            "model", "latency_source", "db_pool_size", "backpressure", "python",
            "locustfile", "request_templates", "app"}


def run_rounds(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A run's rounds, each with the run's own fields (target, users, ...) under its figures;
    a run from before rounds existed is its own single round. Plain dicts: the claims
    read them so (``runner/rounds.py`` folds rounds into a run)."""
    found = run.get("rounds")
    if isinstance(found, list) and found:
        cell = {k: v for k, v in run.items() if k in IDENTITY}
        return [{**cell, **r} for r in found]
    return [dict(run)]


# The tables every run has after read_runs (older summaries may lack them).
_TABLES = ("latency_ms", "server", "load", "machine", "probe_ms")


def read_run(found: Mapping[str, Any]) -> Run:
    """One stored run as a Run: a copy, with the tables it lacks present and empty (a
    summary from before they existed), so readers need not guard each one."""
    run: dict[str, Any] = dict(found)
    for table in _TABLES:
        if not isinstance(run.get(table), dict):
            run[table] = {}
    # Runs from before --python and --backpressure ran on the default interpreter, with
    # the server's own backpressure.
    run.setdefault("python", "default")
    run.setdefault("backpressure", None)
    return cast(Run, run)


def read_runs(summary: Mapping[str, Any]) -> list[Run]:
    """The runs of a summary.json of any version the lab has written (one already checked
    by ``runs.store.load_summary``: a dict per run, with its identity fields)."""
    return [read_run(r) for r in summary.get("runs") or ()]
