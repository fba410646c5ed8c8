"""The comparison in a sentence or two, written from the figures.

Shared by the report's first paragraph and the last lines ``run`` and ``matrix`` print.
Runs that put the same load on different stacks are compared (the best of each stack);
a lone run is described; failed runs are named.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from loadlab.runs.bottleneck import words
from loadlab.runs.record import NAMES, Run, variant_label

# The lab locustfile's defaults, for runs that did not set them (docs/locust.md).
DEFAULT_IO_MS, DEFAULT_CPU_WORK = 50, 100
MAX_SENTENCES = 3
# How the first lines name a run that is not "ok" (docs/runner.md, "Statuses").
VERBS = {"failed": "failed", "errors": "had too many failed requests to be a measurement",
         "broken": "had a broken measured window"}


def _count(n: int, one: str, many: str) -> str:
    return f"one {one}" if n == 1 else f"{n} {many}"


def _wait(run: Run) -> int:
    wait = run.get("io_ms")
    return int(wait) if wait is not None else DEFAULT_IO_MS


def _work(run: Run) -> int:
    work = run.get("cpu_work")
    return int(work) if work is not None else DEFAULT_CPU_WORK


def load(run: Run) -> str:
    """The load, in words: 50 users each waiting 50 ms; 200 requests/s offered."""
    scenario = run.get("scenario", "")
    if run.get("arrival_rate"):
        who = f"{run['arrival_rate']:g} requests/s offered by up to {run['users']} users"
    else:
        who = f"{run['users']} users"
    if scenario == "io":
        return f"{who} each waiting {_wait(run)} ms" if not run.get("arrival_rate") else (
            f"{who}, each request waiting {_wait(run)} ms")
    if scenario in ("cpu", "cpu-blocking", "cpu-process"):
        return f"{who} asking for {_work(run)} units of CPU work ({scenario})"
    if scenario == "mixed":
        return f"{who} each waiting {_wait(run)} ms then working {_work(run)} units"
    return f"{who} on the {scenario} scenario"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2g} s" if value >= 1000 else f"{value:.3g} ms"


def ratio(a: float, b: float) -> str:
    r = a / b if b > 0 else float("inf")
    return f"{r:,.0f}×" if r >= 10 else f"{r:.2g}×"


def _rps(run: Run) -> str:
    return f"{run['rps']:,.0f} req/s" if run["rps"] >= 100 else f"{run['rps']:.3g} req/s"


def load_key(run: Run) -> tuple[Any, ...]:
    return (run.get("scenario"), run.get("users"), run.get("arrival_rate"), _wait(run),
            _work(run), run.get("cpus") or 0.0)


def _ok(run: Run) -> bool:
    return run.get("status") == "ok" and bool(run.get("rps"))


def _compare(best: Run, other: Run) -> str:
    lb, lo = best["latency_ms"], other["latency_ms"]
    return (f"{variant_label(best, 'prose')} served {_rps(best)}, "
            f"{ratio(best['rps'], other['rps'])} {variant_label(other, 'prose')}, for the same "
            f"{load(best)}; p50 {ms(lb.get('p50'))} against {ms(lo.get('p50'))}, "
            f"p99 {ms(lb.get('p99'))} against {ms(lo.get('p99'))}."
            + _limits(best, other))


def _limits(*runs: Run) -> str:
    """What limited each run, in words (runs recorded before the verdict existed: nothing)."""
    said = [f"{variant_label(r, 'prose')}: {words(r.get('bottleneck'))}" for r in runs
            if r.get("bottleneck")]
    return (" " + "; ".join(said) + ".") if said else ""


def _describe(run: Run) -> str:
    lat = run["latency_ms"]
    return (f"{variant_label(run, 'prose')} served {_rps(run)} for {load(run)}; "
            f"p50 {ms(lat.get('p50'))}, p99 {ms(lat.get('p99'))}." + _limits(run))


def sentences(runs: list[Run]) -> list[str]:
    """The first lines about ``runs`` (as ``read_runs`` gives them: every table present)."""
    ok = [r for r in runs if _ok(r)]
    out: list[str] = []
    groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in ok:
        groups[load_key(run)].append(run)
    # The loads that most stacks shared first: those are the comparisons people came for.
    ordered = sorted(groups.values(), key=lambda g: (-len({r["target"] for r in g}), -len(g)))
    for group in ordered:
        if len(out) >= MAX_SENTENCES:
            break
        best: dict[str, Run] = {}
        for run in group:
            if run["rps"] > best.get(run["target"], {"rps": -1})["rps"]:
                best[run["target"]] = run
        if len(best) >= 2:
            first, second = sorted(best.values(), key=lambda r: -r["rps"])[:2]
            out.append(_compare(first, second))
        elif len(group) >= 2:
            fast, slow = max(group, key=lambda r: r["rps"]), min(group, key=lambda r: r["rps"])
            out.append(_compare(fast, slow))
        else:
            out.append(_describe(group[0]))
    if len(groups) > MAX_SENTENCES:
        out.append(f"{len(ok)} runs under {len(groups)} different loads in all; "
                   "the figures below show every one.")
    failed = [r for r in runs if r.get("status") != "ok"]
    if failed:
        names = ", ".join(f"{NAMES.get(r.get('target', ''), r.get('target'))} "
                          f"{r.get('scenario')}" for r in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        reason = str(failed[0].get("error") or "no reason recorded")
        verbs = {VERBS.get(str(r.get("status")), "failed") for r in failed}
        verb = verbs.pop() if len(verbs) == 1 else "failed or are not measurements"
        out.append(f"{_count(len(failed), 'run', 'runs')} {verb} ({names}{more}): "
                   f"{reason[:160]}.")
    return out


def with_locust_defaults(runs: list[Run], directory: Path) -> list[Run]:
    """Runs whose unset wait or work is taken from what their locustfile reported."""
    from loadlab.report.rundata import lab_report

    filled = []
    for run in runs:
        if run.get("io_ms") is None or run.get("cpu_work") is None:
            lab = lab_report(directory, run) or {}
            run = cast(Run, {**run, **{k: lab.get(k) for k in ("io_ms", "cpu_work")
                                       if run.get(k) is None and lab.get(k) is not None}})
        filled.append(run)
    return filled
