"""Which resource limited a run, from the figures the lab samples, said in one sentence.

``verdict`` is a pure function of ``Signals`` (tested on synthetic and recorded figures);
``signals`` gathers them from a run's record and the sampler's scrapes of its measured
window. Resources are checked in the order a saturated one hides the next: a throttled
CPU quota slows every other queue, a full database pool makes the slots wait on it, and
so on; the load generator and the offered load come last (the server had room).
The names are the run record's ``bottleneck.resource`` values (docs/design.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from loadlab.servers import worker_class

Resource = Literal["cpu_quota", "worker_slots", "event_loop", "thread_pool", "db_pool",
                   "database_cpu", "load_generator", "offered_load", "none"]
RESOURCES: tuple[Resource, ...] = (
    "cpu_quota", "worker_slots", "event_loop", "thread_pool", "db_pool", "database_cpu",
    "load_generator", "offered_load", "none")

# How close to its limit a resource must run to be called saturated.
BUSY = 0.9
THROTTLED_SHARE = 0.2  # CFS periods throttled: the service wanted more than its quota
THROTTLED_BUSY = 0.75  # with that throttling, the share of the quota used that names it
LOOP_LAG_S = 0.005     # mean event-loop lag: the loop answered 5 ms late on average ...
LOOP_BLOCKED_S = 0.020  # ... and this late whatever the CPU: blocked
QUEUED = 1.0           # connections waiting in the accept queue, on average
POOL_WAITING = 0.5     # requests waiting for a pooled connection, on average
OPEN_MET = 0.95        # an open model that served this share of its rate got what it asked
# Other work on the machine beyond this many cores spoils a CPU-bound comparison: the claims
# and ``loadlab size`` say so beside a verdict measured under it, and so does this one.
BUSY_CORES = 0.5
# What other work can fill by taking the CPU: a slot, the loop, a pooled thread or
# connection, held longer while its holder waits for a core. (A quota, the database's or
# Locust's CPU was used up by its own process; the offered load left room.)
STARVED_BY_OTHER_WORK: frozenset[Resource] = frozenset(
    {"worker_slots", "event_loop", "thread_pool", "db_pool"})


class Bottleneck(TypedDict):
    """The run record's ``bottleneck``."""

    resource: Resource
    evidence: str
    figures: dict[str, float | int | None]


@dataclass(frozen=True)
class Signals:
    """A run's measured window, as the verdict reads it (None: not measured)."""

    rps: float
    model: str = "closed"               # "closed" (users) or "open" (arrival rate)
    users: int | None = None
    arrival_rate: float | None = None
    latency_mean_ms: float | None = None  # client side; p50 where no mean was recorded
    think_time_ms: float | None = None  # closed model: the users' mean wait after each task
    pacing_ms: float | None = None      # closed model: a fixed task cycle instead
    cpu_limit: float | None = None      # cores of quota (None or 0: none)
    cpu_cores: float | None = None      # cores the service may use without a quota
    cpu_used: float | None = None       # cores used on average
    throttled_share: float | None = None
    slots: int | None = None            # workers × threads where a request holds one
    workers: int = 1
    in_progress: float | None = None    # requests in progress (median of the scrapes)
    accept_queue: float | None = None   # connections waiting to be accepted (median)
    loop_lag_s: float | None = None     # mean event-loop lag
    threadpool_busy: float | None = None
    threadpool_size: float | None = None
    db_pool_in_use: float | None = None
    db_pool_size: float | None = None
    db_pool_waiting: float | None = None
    db_cpu_used: float | None = None
    db_cpu_cores: float | None = None   # cores the database may use
    load_cpu_used: float | None = None  # the load generator's cores used
    load_cores: float | None = None     # cores given to the load generator
    load_saturated: bool = False        # the locustfile's own CPU warning fired
    other_cores: float | None = None    # the machine's work that was neither (machine.*)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _rate(value: float) -> str:
    return f"{value:,.0f} req/s" if value >= 10 else f"{value:.3g} req/s"


def _cores(value: float) -> str:
    return f"{value:.2g} CPU" if value < 10 else f"{value:.0f} CPUs"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 1000 else f"{value:.3g} ms"


def closed_cap(users: int, response_ms: float, think_ms: float | None,
               pacing_ms: float | None = None) -> tuple[float, float]:
    """What a closed model's users can ask for, and each user's cycle in ms: each waits for
    its answer, then thinks, so users / (think time + response time) bounds the rate (a
    paced user's cycle is the pacing, or the response when that is longer)."""
    cycle = max(pacing_ms, response_ms) if pacing_ms else (think_ms or 0.0) + response_ms
    return users / (cycle / 1000.0), cycle


def _cycle_words(s: Signals) -> str:
    response = s.latency_mean_ms or 0.0
    if s.pacing_ms:
        return f"each paced to one task per {_ms(s.pacing_ms)}; response {_ms(response)}"
    if s.think_time_ms:
        return f"think time {_ms(s.think_time_ms)} + response time {_ms(response)} each"
    known = "no think time" if s.think_time_ms == 0.0 else "think time not known"
    return f"response time {_ms(response)} each, {known}"


def verdict(s: Signals) -> Bottleneck:
    """The resource that limited the run, the sentence that says so, and its figures; with
    a caveat when other work on the machine may have filled it by taking the CPU (the
    claims call such runs inconclusive)."""
    found = _saturated(s)
    if (s.other_cores is None or s.other_cores <= BUSY_CORES
            or found["resource"] not in STARVED_BY_OTHER_WORK):
        return found
    found["evidence"] += (f"; other work on the machine took {s.other_cores:.2f} cores, so it "
                          "may have waited for CPU")
    found["figures"]["other_cores"] = _r(s.other_cores)
    return found


def _saturated(s: Signals) -> Bottleneck:
    """The first saturated resource, in the order a saturated one hides the next."""

    def found(resource: Resource, evidence: str, **figures: float | int | None) -> Bottleneck:
        return {"resource": resource, "evidence": evidence,
                "figures": {k: (_r(v) if isinstance(v, float) else v)
                            for k, v in figures.items()}}

    limit = s.cpu_limit if s.cpu_limit else None
    # Throttling is the quota biting: then used a little under the limit (the machine's
    # other tenants took some of the periods) still names the quota.
    if s.cpu_used is not None and limit is not None and s.cpu_used >= THROTTLED_BUSY * limit and (
            s.throttled_share is not None and s.throttled_share >= THROTTLED_SHARE):
        return found("cpu_quota",
                     f"its CPU quota: {s.cpu_used:.2f} of {_cores(limit)} used, throttled in "
                     f"{100 * s.throttled_share:.0f}% of the periods",
                     cpu_used=s.cpu_used, cpu_limit=limit, throttled_share=s.throttled_share)
    if (s.db_pool_waiting is not None and s.db_pool_waiting >= POOL_WAITING
            and s.db_pool_size and s.db_pool_in_use is not None
            and s.db_pool_in_use >= BUSY * s.db_pool_size):
        return found("db_pool",
                     f"its database pool: {s.db_pool_in_use:.0f} of {s.db_pool_size:.0f} "
                     f"connections in use, {s.db_pool_waiting:.0f} requests waiting for one",
                     pool_in_use=s.db_pool_in_use, pool_size=s.db_pool_size,
                     pool_waiting=s.db_pool_waiting)
    if (s.db_cpu_used is not None and s.db_cpu_cores
            and s.db_cpu_used >= BUSY * s.db_cpu_cores):
        return found("database_cpu",
                     f"the database's CPU: {s.db_cpu_used:.2f} of {_cores(s.db_cpu_cores)} "
                     "busy", db_cpu_used=s.db_cpu_used, db_cpu_cores=s.db_cpu_cores)
    # A loop late by a few ms while it still has CPU to spare is a busy loop, not a blocked
    # one (a thousand requests a second make some lag): below LOOP_BLOCKED_S the loops'
    # threads must also be using most of what they can (one core each, within the quota).
    loops_busy = s.cpu_used is not None and s.cpu_used >= 0.8 * min(
        s.workers, limit or s.cpu_cores or s.workers)
    if s.loop_lag_s is not None and (s.loop_lag_s >= LOOP_BLOCKED_S or (
            s.loop_lag_s >= LOOP_LAG_S and loops_busy)):
        return found("event_loop",
                     f"its event loop: blocked, {1000 * s.loop_lag_s:.0f} ms late on average "
                     "(work on the loop instead of awaiting)", loop_lag_s=s.loop_lag_s,
                     in_progress=s.in_progress)
    slots_full = (s.slots is not None and s.in_progress is not None
                  and s.in_progress >= BUSY * s.slots)
    queued = s.accept_queue is not None and s.accept_queue >= QUEUED
    if s.slots is not None and (slots_full or queued):
        waiting = f", {s.accept_queue:.0f} connections queued" if queued and s.accept_queue \
            else ""
        # Between scrapes a slot may be caught idle (a connection being accepted): the
        # queue is then the evidence, a low busy share would only confuse.
        busy = (f"busy {100 * min(s.in_progress / s.slots, 1.0):.0f}%"
                if s.in_progress is not None and s.in_progress >= 0.5 * s.slots else "")
        what = (f"its {s.slots} worker slot" + ("" if s.slots == 1 else "s")
                + (" (workers × threads)" if s.slots != s.workers else ""))
        detail = ", ".join(x for x in (busy, waiting.removeprefix(", ")) if x) or "full"
        return found("worker_slots", f"{what}: {detail}",
                     slots=s.slots, in_progress=s.in_progress, accept_queue=s.accept_queue)
    if (s.threadpool_size and s.threadpool_busy is not None
            and s.threadpool_busy >= BUSY * s.threadpool_size):
        return found("thread_pool",
                     f"its thread pool: {s.threadpool_busy:.0f} of "
                     f"{s.threadpool_size:.0f} threads busy",
                     threadpool_busy=s.threadpool_busy, threadpool_size=s.threadpool_size)
    cores = limit or s.cpu_cores
    if s.cpu_used is not None and cores and s.cpu_used >= BUSY * cores:
        what = "its CPU quota" if limit else "its CPUs"
        return found("cpu_quota", f"{what}: {s.cpu_used:.2f} of {_cores(cores)} used",
                     cpu_used=s.cpu_used, cpu_limit=limit, cpu_cores=cores,
                     throttled_share=s.throttled_share)
    if s.load_saturated or (s.load_cpu_used is not None and s.load_cores
                            and s.load_cpu_used >= BUSY * s.load_cores):
        used = (f"{s.load_cpu_used:.2f} of {_cores(s.load_cores)} busy"
                if s.load_cpu_used is not None and s.load_cores else "its CPU warning fired")
        return found("load_generator", f"the load generator: {used}",
                     load_cpu_used=s.load_cpu_used, load_cores=s.load_cores)
    if s.model == "open" and s.arrival_rate:
        if s.rps >= OPEN_MET * s.arrival_rate:
            return found("offered_load",
                         f"the offered load: {_rate(s.arrival_rate)} asked for, "
                         f"{_rate(s.rps)} served", arrival_rate=s.arrival_rate, rps=s.rps)
    elif s.users and (s.latency_mean_ms or s.think_time_ms or s.pacing_ms):
        cap, cycle = closed_cap(s.users, s.latency_mean_ms or 0.0, s.think_time_ms,
                                s.pacing_ms)
        return found("offered_load",
                     f"the offered load: {s.users} users × {_ms(cycle)} can ask for at most "
                     f"{_rate(cap)} ({_cycle_words(s)})",
                     users=s.users, latency_mean_ms=s.latency_mean_ms,
                     think_time_ms=s.think_time_ms, pacing_ms=s.pacing_ms, cap_rps=cap)
    return found("none", "nothing measured was saturated", rps=s.rps,
                 cpu_used=s.cpu_used, in_progress=s.in_progress)


def words(bottleneck: Mapping[str, Any] | None) -> str:
    """The verdict as the report and the terminal say it ("limited by ...")."""
    if not bottleneck:
        return ""
    if bottleneck.get("resource") == "none":
        return "nothing measured was saturated"
    return f"limited by {bottleneck.get('evidence')}"


# --- from a run -----------------------------------------------------------------------------

@dataclass
class Gauges:
    """One scrape of the measured window as the verdict reads it (from a
    ``runner.sampler.Scrape``, or a measurement's JSON): the service's queues, pools and
    loop lag."""

    ok: bool = True
    in_progress: float | None = None
    accept_queue: float | None = None
    threadpool_busy: float | None = None
    threadpool_size: float | None = None
    db_pool_in_use: float | None = None
    db_pool_size: float | None = None
    db_pool_waiting: float | None = None
    loop_lag_buckets: dict[float, float] = field(default_factory=dict)

    @classmethod
    def of(cls, scrape: Any) -> Gauges:
        """From a sampler scrape, or a measurement's JSON (bucket bounds read as floats)."""
        get = scrape.get if isinstance(scrape, Mapping) else (
            lambda name: getattr(scrape, name))
        buckets = get("loop_lag_buckets") or {}
        return cls(
            ok=bool(get("ok")), in_progress=get("in_progress"),
            accept_queue=get("accept_queue"), threadpool_busy=get("threadpool_busy"),
            threadpool_size=get("threadpool_size"), db_pool_in_use=get("db_pool_in_use"),
            db_pool_size=get("db_pool_size"), db_pool_waiting=get("db_pool_waiting"),
            loop_lag_buckets={float(le): float(n) for le, n in buckets.items()})


def _typical(values: Sequence[float | None]) -> float | None:
    """The median of a gauge over the window's scrapes: a scrape taken as the load ends
    (the sampler's clock is not Locust's) reads an idle server and must not drag it down."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _lag_mean_s(first: Mapping[float, float], last: Mapping[float, float]) -> float | None:
    """Mean lag from a histogram's bucket deltas (each observation at its bucket's middle)."""
    les = sorted(le for le in last if le != float("inf"))
    if not les:
        return None
    total = last.get(float("inf"), last[les[-1]]) - first.get(float("inf"), first.get(les[-1], 0))
    if total <= 0:
        return None
    weighted, below, prev = 0.0, 0.0, 0.0
    for le in les:
        count = last[le] - first.get(le, 0.0)
        weighted += (count - below) * (prev + le) / 2
        below, prev = count, le
    weighted += (total - below) * prev  # beyond the last bucket: at least its bound
    return weighted / total


def slots_of(worker_class_name: str, workers: int, threads: int, interface: str) -> int | None:
    """Requests the server runs at once when each holds a worker or thread (None: an event
    loop or greenlets, bounded by no slot count)."""
    klass = worker_class(worker_class_name)
    if klass is None:
        return None
    if klass.name == "sync":
        return workers
    if klass.thread_per_request or interface in klass.threaded:
        return workers * max(threads, 1)
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def signals(record: Mapping[str, Any], scrapes: Sequence[Gauges],
            load_cores: int | None = None, machine_cores: int | None = None) -> Signals:
    """The verdict's inputs from a run's record and its window's scrapes."""
    server = record.get("server") or {}
    lat = record.get("latency_ms") or {}
    database = record.get("database") or {}
    load = record.get("load") or {}
    machine = record.get("machine") or {}
    good = [s for s in scrapes if s.ok]
    target = str(record.get("target") or "")
    interface = "asgi" if target == "fastapi" else "wsgi"
    klass = str(record.get("worker_class") or "")
    workers = int(record.get("workers") or 1)
    threads = int(record.get("threads") or 1)
    lag = None
    with_lag = [s for s in good if s.loop_lag_buckets]
    if len(with_lag) >= 2:
        lag = _lag_mean_s(with_lag[0].loop_lag_buckets, with_lag[-1].loop_lag_buckets)
    server_cores = load.get("server_cores") or []
    load_core_list = load.get("load_cores") or []
    db_cores = database.get("cores") or []
    mean = lat.get("mean") if lat.get("mean") is not None else lat.get("p50")
    return Signals(
        rps=float(record.get("rps") or 0.0),
        model=str(record.get("model") or ("open" if record.get("arrival_rate") else "closed")),
        users=record.get("users"), arrival_rate=record.get("arrival_rate"),
        latency_mean_ms=float(mean) if mean else None,
        think_time_ms=_number(record.get("think_time_ms")),
        pacing_ms=_number(record.get("pacing_ms")),
        cpu_limit=server.get("cpu_limit") or record.get("cpus") or None,
        cpu_cores=float(len(server_cores)) if server_cores else machine_cores,
        cpu_used=server.get("cpu_cores_used"),
        throttled_share=server.get("throttled_share"),
        slots=slots_of(klass, workers, threads, interface), workers=workers,
        in_progress=_typical([s.in_progress for s in good]),
        accept_queue=_typical([s.accept_queue for s in good]),
        loop_lag_s=lag,
        threadpool_busy=_typical([s.threadpool_busy for s in good]),
        threadpool_size=_typical([s.threadpool_size for s in good]),
        db_pool_in_use=_typical([s.db_pool_in_use for s in good]),
        db_pool_size=_typical([s.db_pool_size for s in good]),
        db_pool_waiting=_typical([s.db_pool_waiting for s in good]),
        db_cpu_used=database.get("cpu_cores_used"),
        db_cpu_cores=float(len(db_cores)) if db_cores else None,
        load_cpu_used=machine.get("load_generator_cores"),
        load_cores=float(len(load_core_list)) if load_core_list else load_cores,
        load_saturated=bool(load.get("saturated")),
        other_cores=_number(machine.get("other_cores")),
    )


def for_run(record: Mapping[str, Any], scrapes: Sequence[Gauges]) -> Bottleneck:
    """The run record's ``bottleneck`` (runner/execute.py calls this once per run)."""
    return verdict(signals(record, scrapes))
