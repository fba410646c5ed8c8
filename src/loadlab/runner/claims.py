"""``loadlab claims``: the textbook claims, measured, with verdicts from stated thresholds.

Each claim names the runs it needs (a plan of cells) and a judge that reads only the
recorded runs, so a verdict can be recomputed from any results directory. A verdict is
``holds`` or ``does not hold`` only when the figures clear a stated threshold either
way; in between, or when a figure is missing, it is ``inconclusive``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadlab.runner.options import RunSpec

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
Runs = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    id: str
    claim: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Sizes:
    duration_s: float
    warmup_s: float
    async_users: int  # concurrent I/O waits held by one async process
    sync_workers: int  # workers started to hold as many concurrent waits
    io_ms: int = 100
    cpu_work: int = 100  # ~10 ms of pure-Python work


QUICK = Sizes(duration_s=5, warmup_s=2, async_users=200, sync_workers=12)
FULL = Sizes(duration_s=20, warmup_s=5, async_users=1000, sync_workers=32)


def _cell(**fields: Any) -> RunSpec:
    return RunSpec(**fields)


def plan(sizes: Sizes, cores: int) -> dict[str, RunSpec]:
    """The named cells the claims need."""
    common: dict[str, Any] = dict(duration_s=sizes.duration_s, warmup_s=sizes.warmup_s)
    io = dict(scenario="io", io_ms=sizes.io_ms, **common)
    cpu = dict(scenario="cpu", cpu_work=sizes.cpu_work, **common)
    all_cores = float(cores)
    return {
        "async-io": _cell(target="fastapi", users=sizes.async_users, **io),
        "loop-blocking": _cell(target="fastapi", users=4, scenario="cpu-blocking",
                                 cpu_work=sizes.cpu_work, **common),
        "loop-threadpool": _cell(target="fastapi", users=4, **cpu),
        "sync-2": _cell(target="flask", worker_class="sync", workers=2, users=20,
                          **io),
        "gthread-2x4": _cell(target="flask", worker_class="gthread", workers=2, threads=4,
                               users=20, **io),
        "sync-memory": _cell(target="flask", worker_class="sync",
                               workers=sizes.sync_workers, users=sizes.sync_workers,
                               **io),
        "procs-1": _cell(target="flask", worker_class="sync", workers=1, users=4,
                           cpus=all_cores, **cpu),
        "procs-n": _cell(target="flask", worker_class="sync", workers=max(cores, 2), users=4,
                           cpus=all_cores, **cpu),
        "threads-1": _cell(target="flask", worker_class="gthread", workers=1, threads=1,
                             users=4, cpus=all_cores, **cpu),
        "threads-4": _cell(target="flask", worker_class="gthread", workers=1, threads=4,
                             users=4, cpus=all_cores, **cpu),
        "limit-1": _cell(target="flask", worker_class="sync", workers=1, users=4, cpus=1.0,
                           **cpu),
        "limit-2": _cell(target="flask", worker_class="sync", workers=2, users=4, cpus=1.0,
                           **cpu),
    }


def _ok(run: dict[str, Any] | None) -> bool:
    return bool(run) and run.get("status") == "ok" and bool(run.get("requests"))  # type: ignore[union-attr]


def in_flight(run: dict[str, Any]) -> float:
    """Requests in the server at once (Little's law: throughput × mean latency)."""
    lat = run["latency_ms"]
    mean = lat.get("mean") or lat.get("p50") or 0.0
    return float(run["rps"]) * float(mean) / 1000.0


def _missing(cid: str, text: str, names: list[str], runs: Runs) -> Verdict | None:
    absent = [n for n in names if not _ok(runs.get(n))]
    if not absent:
        return None
    reasons = "; ".join(
        f"{n}: {(runs.get(n) or {}).get('error', 'not measured')}" for n in absent
    )
    return Verdict(cid, text, UNSURE, f"runs missing or failed ({reasons})")


def async_io(runs: Runs, cores: int) -> Verdict:
    cid, text = "async-io-concurrency", (
        "one async process serves hundreds to thousands of concurrent I/O waits")
    if (v := _missing(cid, text, ["async-io"], runs)) is not None:
        return v
    run = runs["async-io"]
    users, io_ms = run["users"], run["io_ms"] or 100
    held = in_flight(run)
    p50 = run["latency_ms"]["p50"]
    errors = run["failures"] / run["requests"]
    evidence = (f"1 Uvicorn process, {users} users waiting {io_ms} ms: {run['rps']:,.0f} req/s, "
                f"{held:,.0f} requests in flight, p50 {p50:g} ms, errors {errors:.1%} "
                f"(holds: in flight >= 80% of users and p50 <= 1.5x the wait)")
    if held >= 0.8 * users and p50 <= 1.5 * io_ms and errors < 0.01:
        return Verdict(cid, text, HOLDS, evidence)
    if (run.get("load") or {}).get("peak_cpu_percent", 0) >= 90:
        return Verdict(cid, text, UNSURE, evidence + "; the load generator was saturated")
    if held < 0.5 * users or errors >= 0.05:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def loop_blocking(runs: Runs, cores: int) -> Verdict:
    cid, text = "event-loop-blocking", "CPU work on the event loop stalls every other request"
    if (v := _missing(cid, text, ["loop-blocking", "loop-threadpool"], runs)) is not None:
        return v
    blocking, pool = runs["loop-blocking"], runs["loop-threadpool"]
    pb, pp = (blocking.get("probe_ms") or {}).get("p50"), (pool.get("probe_ms") or {}).get("p50")
    if pb is None or pp is None:
        return Verdict(cid, text, UNSURE, "no /healthz probe answered during the runs")
    work_ms = (blocking.get("cpu_work") or 100) * 0.1
    ratio = pb / max(pp, 0.01)
    evidence = (f"/healthz probe p50 while {blocking['users']} users ran ~{work_ms:g} ms of CPU "
                f"work: {pb:g} ms with the work in async def (on the loop) vs {pp:g} ms in a def "
                f"endpoint (thread pool), {ratio:.1f}x (holds: >= 2x and >= half a work item)")
    if ratio >= 2 and pb >= 0.5 * work_ms:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio < 1.2:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def sync_per_request(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-worker-per-request", (
        "a sync worker serves one request at a time: concurrency capped at workers x threads")
    if (v := _missing(cid, text, ["sync-2", "gthread-2x4"], runs)) is not None:
        return v
    parts, within, over = [], True, False
    for name in ("sync-2", "gthread-2x4"):
        run = runs[name]
        cap = run["workers"] * run["threads"]
        # Each request holds its worker (thread) for the wait: concurrency = rps × wait.
        held = run["rps"] * (run["io_ms"] or 100) / 1000.0
        parts.append(f"{run['worker_class']} {run['workers']}x{run['threads']} with "
                     f"{run['users']} users: {run['rps']:,.1f} req/s = {held:.1f} concurrent "
                     f"(cap {cap})")
        within &= 0.7 * cap <= held <= 1.1 * cap
        over |= held > 1.25 * cap
    evidence = "; ".join(parts) + " (holds: 70-110% of the cap with more users than the cap)"
    if within:
        return Verdict(cid, text, HOLDS, evidence)
    return Verdict(cid, text, FAILS if over else UNSURE, evidence)


def sync_memory(runs: Runs, cores: int) -> Verdict:
    cid, text = "sync-memory-per-concurrency", (
        "memory to hold N concurrent I/O requests: sync workers need far more than one async "
        "process")
    if (v := _missing(cid, text, ["sync-memory", "async-io"], runs)) is not None:
        return v
    sync, aio = runs["sync-memory"], runs["async-io"]
    ms, ma = (sync.get("server") or {}).get("memory_bytes"), (
        aio.get("server") or {}).get("memory_bytes")
    if not ms or not ma:
        return Verdict(cid, text, UNSURE, "memory was not measured")
    hs, ha = max(in_flight(sync), 1.0), max(in_flight(aio), 1.0)
    per_s, per_a = ms / hs, ma / ha
    ratio = per_s / per_a
    evidence = (f"Gunicorn sync x{sync['workers']}: {ms / 1e6:,.0f} MB PSS for {hs:.0f} in flight "
                f"= {per_s / 1e6:.2f} MB each; 1 Uvicorn process: {ma / 1e6:,.0f} MB for "
                f"{ha:.0f} in flight = {per_a / 1e6:.3f} MB each; {ratio:.1f}x "
                f"(holds: >= 3x, does not hold: <= 1.5x)")
    if ratio >= 3:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio <= 1.5:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def _ratio(runs: Runs, a: str, b: str) -> float:
    return float(runs[b]["rps"]) / max(float(runs[a]["rps"]), 1e-9)


def cpu_scales(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-scales-with-processes", (
        "CPU-bound throughput grows with worker processes up to the cores")
    if (v := _missing(cid, text, ["procs-1", "procs-n"], runs)) is not None:
        return v
    n = runs["procs-n"]["workers"]
    ideal = min(n, cores)
    ratio = _ratio(runs, "procs-1", "procs-n")
    need = 1 + 0.5 * (ideal - 1)
    evidence = (f"Gunicorn sync, ~{(runs['procs-1']['cpu_work'] or 100) * 0.1:g} ms CPU per "
                f"request: 1 worker {runs['procs-1']['rps']:,.1f} req/s, {n} workers "
                f"{runs['procs-n']['rps']:,.1f} req/s = {ratio:.2f}x on {cores} cores "
                f"(holds: >= {need:.2f}x, half the ideal gain; does not hold: < 1.15x)")
    if ideal < 2:
        return Verdict(cid, text, UNSURE, evidence + "; one core cannot show scaling")
    if ratio >= need:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio < 1.15:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def threads_not_parallel(runs: Runs, cores: int) -> Verdict:
    cid, text = "threads-not-parallel-cpu", (
        "threads do not speed up pure-Python CPU work (the GIL)")
    if (v := _missing(cid, text, ["threads-1", "threads-4"], runs)) is not None:
        return v
    ratio = _ratio(runs, "threads-1", "threads-4")
    evidence = (f"Gunicorn gthread, 1 worker: 1 thread {runs['threads-1']['rps']:,.1f} req/s, "
                f"{runs['threads-4']['threads']} threads {runs['threads-4']['rps']:,.1f} req/s "
                f"= {ratio:.2f}x with {cores} cores free (holds: <= 1.2x; does not hold: "
                ">= 1.5x)")
    if cores < 2:
        return Verdict(cid, text, UNSURE, evidence + "; one core cannot tell")
    if ratio <= 1.2:
        return Verdict(cid, text, HOLDS, evidence)
    if ratio >= 1.5:
        return Verdict(cid, text, FAILS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


def limit_caps(runs: Runs, cores: int) -> Verdict:
    cid, text = "cpu-limit-caps-scaling", (
        "more workers than the CPU limit buys nothing and shows throttling")
    if (v := _missing(cid, text, ["limit-1", "limit-2"], runs)) is not None:
        return v
    one, two = runs["limit-1"], runs["limit-2"]
    ratio = _ratio(runs, "limit-1", "limit-2")
    share = (two.get("server") or {}).get("throttled_share")
    seen = (two.get("server") or {}).get("cpu_limit")
    evidence = (f"Gunicorn sync under a {two['cpus']:g}-CPU limit: 1 worker {one['rps']:,.1f} "
                f"req/s, {two['workers']} workers {two['rps']:,.1f} req/s = {ratio:.2f}x; "
                f"throttled periods with {two['workers']} workers: "
                f"{'unknown' if share is None else f'{share:.0%}'}; limit seen by the service: "
                f"{seen if seen is not None else 'unknown'} (holds: <= 1.2x and >= 5% throttled; "
                "does not hold: >= 1.4x)")
    if not seen:
        return Verdict(cid, text, UNSURE, evidence + "; the CPU limit was not applied")
    if cores < 2:
        return Verdict(cid, text, UNSURE, evidence + "; one core caps it without a limit")
    if ratio >= 1.4:
        return Verdict(cid, text, FAILS, evidence)
    if ratio <= 1.2 and share is not None and share >= 0.05:
        return Verdict(cid, text, HOLDS, evidence)
    return Verdict(cid, text, UNSURE, evidence)


JUDGES: tuple[Callable[[Runs, int], Verdict], ...] = (
    async_io, loop_blocking, sync_per_request, sync_memory, cpu_scales, threads_not_parallel,
    limit_caps,
)
CLAIM_IDS = (
    "async-io-concurrency", "event-loop-blocking", "sync-worker-per-request",
    "sync-memory-per-concurrency", "cpu-scales-with-processes", "threads-not-parallel-cpu",
    "cpu-limit-caps-scaling",
)


def judge(runs: Runs, cores: int) -> list[Verdict]:
    return [j(runs, cores) for j in JUDGES]


def runs_by_name(cells: dict[str, RunSpec], recorded: list[dict[str, Any]]) -> Runs:
    by_key = {r["key"]: r for r in recorded}
    return {name: by_key[spec.key] for name, spec in cells.items() if spec.key in by_key}


def print_table(verdicts: list[Verdict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="loadlab claims", show_lines=True)
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("evidence")
    colour = {HOLDS: "green", FAILS: "red", UNSURE: "yellow"}
    for v in verdicts:
        table.add_row(v.id, f"[{colour[v.verdict]}]{v.verdict}[/]", v.evidence)
    Console(width=max(120, Console().width)).print(table)


def claims_command(args: argparse.Namespace) -> int:
    from loadlab.report.html import write_report
    from loadlab.report.results import atomic_write
    from loadlab.runner.options import OptionError
    from loadlab.runner.runtime import available_cores, runtime_for
    from loadlab.runner.session import StartError, run_cells

    cores = len(available_cores()) or (os.cpu_count() or 1)
    cells = plan(QUICK if args.quick else FULL, cores)
    out = Path(args.out)
    runtime = runtime_for(args.runtime)
    try:
        outcome = run_cells(list(cells.values()), out, runtime, resume=False, write_report=False)
    except StartError as exc:
        raise OptionError(str(exc)) from None
    verdicts = judge(runs_by_name(cells, outcome.results.runs), cores)
    atomic_write(out / "claims.json",
                 json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    print_table(verdicts)
    print(f"claims: {out / 'claims.json'}")
    print(f"report: {write_report(out)}")
    return 130 if outcome.interrupted else 0
