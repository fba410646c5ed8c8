"""``loadlab size``: measure the candidates for real and recommend one.

Exit codes: 0 a configuration meets the target (and ``--min-capacity``); 1 none does, or
the best is below ``--min-capacity`` (a gate, as ``run``'s); 2 bad input (one line,
nothing started) or a service that would not start; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadlab import servers
from loadlab.contract import MAX_DB_POOL_SIZE, MAX_USERS
from loadlab.fileio import atomic_write
from loadlab.report.html import write_size_report
from loadlab.runner.commands import (
    app_from,
    backpressure_from,
    check_python,
    own_load,
    python_from,
)
from loadlab.runner.kept import KeptRuntime
from loadlab.runner.options import (
    APP,
    OptionError,
    RunSpec,
    parse_cpus,
    parse_duration,
    parse_int,
    parse_rate,
)
from loadlab.runner.progress import Progress
from loadlab.runner.runtimes import runtime_for
from loadlab.runs.record import SizeDoc
from loadlab.runs.store import ResultsError
from loadlab.sizing.candidates import (
    Branch,
    parse_candidates,
    serving_classes,
    textbook,
)
from loadlab.sizing.measure import Measurer
from loadlab.sizing.search import (
    PRECISION,
    BranchWalk,
    Outcome,
    Recommendation,
    narrow_rest,
    recommend,
    search_all,
)
from loadlab.sizing.slo import Slo, parse_slo

FORMAT = "loadlab-size/1"
TARGETS = ("fastapi", "flask")


@dataclass(frozen=True)
class SizeSpec:
    """Everything ``size`` needs, checked before anything starts."""

    target: str
    base: RunSpec  # the load and the budget; the search varies server, workers, rate
    slo: Slo
    cpus: float
    branches: dict[Branch, list[int]]
    rounds: int
    start_rate: float
    max_rate: float
    steps: int
    min_capacity: float | None
    out: Path
    replace: bool
    argv: list[str] = field(default_factory=list)
    backpressure: int | None = None  # Granian's, given to every candidate (all take it)
    runtime: str = "native"  # or "compose": each candidate as the compose service
    budget_s: float = 0.0  # the whole search's time; its rest narrows wide intervals


def _float(text: str, name: str, low: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"--{name}: cannot read {text!r} as a number") from None
    if not value >= low or math.isinf(value):
        raise OptionError(f"--{name}: must be at least {low:g}, got {text!r}")
    return value


def _pool_sizes(text: str | None) -> list[int]:
    if not text:
        return []
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    return sorted({parse_int(p, "db-pool-sizes", 1, MAX_DB_POOL_SIZE) for p in parts})


def size_spec(args: argparse.Namespace) -> SizeSpec:
    locustfile, requests = own_load(args)
    app = app_from(args)
    if app is not None:
        if args.target is not None:
            raise OptionError("--app sizes your app: leave out --target")
        if not (locustfile or requests):
            raise OptionError("--app: load it with --locustfile or --request")
        target, what = APP, f"{app.target} ({app.interface.upper()})"
    elif args.target in TARGETS:
        target = what = args.target
    else:
        raise OptionError("--app MODULE:ATTR (your app) or --target fastapi|flask: what to size")
    classes = serving_classes(target, app.interface if app is not None else "")
    if args.scenario is None and not (locustfile or requests):
        raise OptionError("--scenario, --locustfile or --request: say what load to put on")
    if args.scenario is not None and (locustfile or requests):
        raise OptionError("--scenario is the lab's load; --locustfile and --request are "
                          "yours: choose one")
    cpus = parse_cpus(args.cpus, "cpus")
    if cpus <= 0:
        raise OptionError("--cpus: the budget must be above 0 cores (e.g. --cpus 2)")
    slo = parse_slo(args.slo, _float(args.max_error_rate, "max-error-rate"))
    pools = _pool_sizes(args.db_pool_sizes)
    branches = (parse_candidates(args.candidates, classes, what, pools) if args.candidates
                else textbook(classes, cpus, pools))
    if not branches:
        raise OptionError(f"no server installed here serves {target}")
    python = python_from(args)
    backpressure = backpressure_from(args)
    branches = runnable(branches, python, backpressure, explicit=bool(args.candidates))
    start = parse_rate(args.start_rate, "start-rate")
    top = parse_rate(args.max_rate, "max-rate")
    if start > top:
        raise OptionError(f"--start-rate {start:g} is above --max-rate {top:g}")
    io_ms = parse_int(args.io_ms, "io-ms", 0, 60_000) if args.io_ms is not None else None
    work = parse_int(args.cpu_work, "cpu-work", 0, 10**7) if args.cpu_work is not None else None
    base = RunSpec(
        target=target, scenario=args.scenario or "", users=1, cpus=cpus, app=app,
        duration_s=parse_duration(args.duration, "duration"),
        warmup_s=parse_duration(args.warmup, "warmup"), arrival_rate=start,
        io_ms=io_ms, cpu_work=work, locustfile=locustfile, request_templates=requests,
        python=python)
    runtime = str(getattr(args, "runtime", None) or "native")
    check_python([base], runtime)
    min_capacity = (_float(args.min_capacity, "min-capacity")
                    if args.min_capacity is not None else None)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.replace:
        raise ResultsError(f"{out} holds results: --replace to start over, or another --out")
    return SizeSpec(target, base, slo, cpus, branches,
                    rounds=parse_int(args.rounds, "rounds", 1, 20), start_rate=start,
                    max_rate=top, steps=parse_int(args.steps, "steps", 0, 10),
                    min_capacity=min_capacity, out=out, replace=bool(args.replace),
                    argv=list(sys.argv), backpressure=backpressure, runtime=runtime,
                    budget_s=parse_duration(getattr(args, "budget", None) or "0", "budget"))


def runnable(branches: dict[Branch, list[int]], python: str, backpressure: int | None,
             explicit: bool) -> dict[Branch, list[int]]:
    """The branches that can run on ``python`` and take ``backpressure``: an explicit
    candidate that cannot is refused (one line, exit 2); a textbook one is left out."""
    def problem(branch: Branch) -> str | None:
        klass = branch.worker_class
        if python == "ft" and klass == "gevent":
            return ("--worker-class gevent cannot run on --python ft: gevent (and the cffi "
                    "it needs) do not support free-threaded CPython 3.13t")
        if backpressure is not None and not servers.takes_backpressure(klass):
            return (f"--backpressure applies to Granian only: {klass} does not take it "
                    "(size granian candidates, or leave out --backpressure)")
        return None

    kept = {}
    for branch, workers in branches.items():
        why = problem(branch)
        if why is not None and explicit:
            raise OptionError(f"--candidates {branch.label()}: {why}")
        if why is None:
            kept[branch] = workers
    if not kept:
        raise OptionError("--backpressure applies to Granian only, and no Granian candidate "
                          "is installed here" if backpressure is not None else
                          "no candidate can run on --python ft")
    return kept


def users_for(rate: float, slo: Slo) -> int:
    """Users enough to carry ``rate`` at the target's latency, with room for late sends."""
    return int(min(MAX_USERS, max(8, math.ceil(rate * slo.limit_ms / 1000 * 1.5) + 4)))


# Time one more round takes beyond its run's own length (a candidate's service started
# again, Locust's start and stop), for the budget's arithmetic.
ROUND_OVERHEAD_S = 3.0


def search(spec: SizeSpec, measure: Any, clock: Callable[[], float] = time.monotonic
           ) -> tuple[list[BranchWalk], Recommendation, list[str]]:
    """The search, then the budget's rest on the intervals still too wide (their labels)."""
    started = clock()
    refine = getattr(measure, "refine", None)
    walks = search_all(spec.branches, measure, spec.slo, spec.start_rate, spec.max_rate,
                       spec.steps, refine=refine)
    outcomes = [o for w in walks for o in w.outcomes]
    narrowed: list[str] = []
    if refine is not None and spec.budget_s > 0:
        round_s = spec.base.duration_s + spec.base.warmup_s + ROUND_OVERHEAD_S
        narrowed = narrow_rest(
            outcomes, lambda c, p: refine(c, p, limit=2 * spec.rounds),
            lambda: spec.budget_s - (clock() - started) >= round_s)
    return walks, recommend(outcomes, spec.slo, spec.cpus), narrowed


def dominated(outcomes: list[Outcome], rec: Recommendation) -> set[str]:
    """Candidates whose interval lies wholly below the best's."""
    best = rec.best
    if best is None or best.ci is None:
        return set()
    return {o.candidate.label() for o in outcomes
            if o is not best and not o.pruned and (o.capacity is None or (o.ci is not None
                                                         and o.ci[1] < best.ci[0]))}


def document(spec: SizeSpec, walks: list[BranchWalk], rec: Recommendation,
             narrowed: list[str] | None = None, elapsed_s: float | None = None) -> SizeDoc:
    outcomes = [o for w in walks for o in w.outcomes]
    beaten = dominated(outcomes, rec)
    below = (spec.min_capacity is not None and rec.best is not None
             and (rec.best.capacity or 0.0) < spec.min_capacity)
    return {
        "format": FORMAT,
        "target": spec.target,
        "app": spec.base.app.target if spec.base.app is not None else None,
        "load": ({"locustfile": spec.base.locustfile} if spec.base.locustfile else
                 {"requests": list(spec.base.request_templates)}
                 if spec.base.request_templates else
                 {"scenario": spec.base.scenario, "io_ms": spec.base.io_ms,
                  "cpu_work": spec.base.cpu_work}),
        "cpus": spec.cpus,
        "runtime": spec.runtime,
        "slo": {"percentile": spec.slo.percentile, "limit_ms": spec.slo.limit_ms,
                "max_error_rate": spec.slo.max_error_rate, "text": str(spec.slo),
                "latency": "from the intended send time (open model)"},
        "search": {"rounds": spec.rounds, "duration_s": spec.base.duration_s,
                   "warmup_s": spec.base.warmup_s, "start_rate": spec.start_rate,
                   "max_rate": spec.max_rate, "bisection_steps": spec.steps,
                   "precision_pct": round(100 * PRECISION, 1),
                   "candidates": len(outcomes),
                   "measured": sum(1 for o in outcomes if not o.pruned),
                   "pruned": sum(1 for o in outcomes if o.pruned),
                   "points": sum(len(o.points) for o in outcomes),
                   "runs": sum(len(p.rps) or 1 for o in outcomes for p in o.points),
                   "budget_s": spec.budget_s, "narrowed": list(narrowed or []),
                   "elapsed_s": None if elapsed_s is None else round(elapsed_s, 1)},
        "candidates": [{**o.as_dict(), "branch": o.candidate.branch.label(),
                        "dominated": o.candidate.label() in beaten} for o in outcomes],
        "branches": [{"branch": w.branch.label(), "stopped": w.stopped, "fit": w.fit,
                      "workers": [o.candidate.workers for o in w.outcomes]} for w in walks],
        "recommendation": rec.as_dict(),
        "min_capacity": spec.min_capacity,
        "below_min_capacity": below,
        "command": spec.argv,
    }


def size_command(args: argparse.Namespace) -> int:
    spec = size_spec(args)
    # The runtime first: compose without Docker is one line, before --out is touched.
    progress = Progress()
    measure = Measurer(spec, progress, users_for, KeptRuntime(runtime_for(spec.runtime)))
    spec.out.mkdir(parents=True, exist_ok=True)
    if spec.replace:
        import shutil

        for child in spec.out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    started = time.monotonic()
    try:
        walks, rec, narrowed = search(spec, measure)
    except KeyboardInterrupt:
        print(f"interrupted: the points measured so far are in {spec.out / 'points'}",
              file=sys.stderr)
        return 130
    finally:
        measure.close()
    doc = document(spec, walks, rec, narrowed, time.monotonic() - started)
    atomic_write(spec.out / "size.json", json.dumps(doc, indent=2) + "\n")
    report = write_size_report(spec.out, doc)
    for c in doc["candidates"]:
        cap = c["capacity_rps"]
        ci = c["ci"]
        print(f"{c['label']:<22} {'-' if cap is None else f'{cap:,.1f} req/s':>14}"
              f"{f' [{ci[0]:,.1f}, {ci[1]:,.1f}]' if ci else '':<22} {c['stopped']}")
    done = doc["search"]
    print(f"{done['candidates']} candidates: {done['measured']} measured, {done['pruned']} "
          f"pruned; {done['points']} points, {done['runs']} runs")
    print(rec.sentence)
    print(f"size: {spec.out / 'size.json'}")
    print(f"report: {report}")
    if rec.best is None:
        return 1
    if doc["below_min_capacity"]:
        print(f"gate missed: --min-capacity {spec.min_capacity:g}: the best serves "
              f"{rec.best.capacity:,.1f} req/s", file=sys.stderr)
        return 1
    return 0
