"""``loadlab compare BASELINE CURRENT``: matched runs, ratios with intervals, a verdict each.

Runs are matched by variant (``MATCH_DEFAULT``, or ``--match``); runs of one variant are
pooled, round by round. Per figure the ratio current/baseline (of geometric means over
rounds) gets a 95% interval (loadlab.stats.ratio_ci: Welch's t on the logs); the verdict
is ``faster`` / ``slower`` when the interval excludes 1, ``no significant difference``
when it holds 1, and ``inconclusive`` when a side has a single round (its spread is
unknown). A regression is gated (exit 1) when its whole interval lies beyond ``--max-regression``.
Where the verdict is no difference but an interval is wider than ±``--max-regression``, a
hint says how many rounds a side would tell a change that size (loadlab.stats.rounds_to_tell).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadlab import stats
from loadlab.errors import UserError
from loadlab.fileio import atomic_write
from loadlab.runs.record import Manifest, Run, Summary, get, read_runs, run_rounds, variant_label
from loadlab.runs.store import ResultsError, load_summary

MATCH_FIELDS = ("target", "scenario", "cpus", "workers", "worker_class", "threads", "users",
                "arrival_rate", "io_ms", "cpu_work", "backpressure", "python", "duration_s",
                "model")
# A free-threaded run never stands in for a default one (``--match`` without python
# compares the two interpreters on purpose).
MATCH_DEFAULT = ("target", "scenario", "cpus", "workers", "worker_class", "threads", "users",
                 "arrival_rate", "io_ms", "cpu_work", "backpressure", "python")
# figure -> (path in a round, True when higher is better)
FIGURES: dict[str, tuple[str, bool]] = {
    "rps": ("rps", True),
    "p50": ("latency_ms.p50", False),
    "p95": ("latency_ms.p95", False),
    "p99": ("latency_ms.p99", False),
    "cpu_per_request_ms": ("server.cpu_per_request_ms", False),
}
FASTER, SLOWER, SAME, UNSURE = "faster", "slower", "no significant difference", "inconclusive"
MANIFEST_CHECKS = (("cpu_model", "CPU model"), ("cores", "core count"),
                   ("cgroup_version", "cgroup version"), ("runtime", "runtime"),
                   ("lock_sha256", "lock file (uv.lock) hash"))


class CompareError(UserError, ValueError):
    """Nothing to compare; one line for the user (exit 2)."""


@dataclass
class FigureResult:
    figure: str
    baseline: float | None
    current: float | None
    ratio: float | None
    low: float | None
    high: float | None
    verdict: str
    regression: bool = False
    rounds: tuple[int, int] = (0, 0)
    # No difference found, but the interval is wider than ±max_regression (too_wide): the
    # rounds a side that would tell such a change, were the rounds to spread as these
    # (None: more than 100, or not too wide).
    rounds_to_tell: int | None = None
    too_wide: bool = False


@dataclass
class Match:
    label: str
    fields: dict[str, str | float | None]  # each --match field's value (MATCH_FIELDS)
    baseline_rounds: int
    current_rounds: int
    figures: list[FigureResult] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: str
    current: str
    match: list[str]
    max_regression_pct: float
    warnings: list[str]
    matches: list[Match]
    unmatched_baseline: list[str]
    unmatched_current: list[str]
    hints: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[tuple[Match, FigureResult]]:
        return [(m, f) for m in self.matches for f in m.figures if f.regression]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressions"] = [f"{m.label}: {f.figure}" for m, f in self.regressions]
        return data


def _ok_rounds(run: Run) -> list[dict[str, Any]]:
    return [r for r in run_rounds(run) if r.get("status") == "ok"]


def _figure_values(rounds: list[dict[str, Any]], figure: str) -> list[float]:
    path, _ = FIGURES[figure]
    out = []
    for r in rounds:
        v = get(r, path)
        if v is None and figure == "cpu_per_request_ms":  # summaries from before this figure
            cpu, n = get(r, "server.cpu_seconds"), r.get("requests")
            v = cpu * 1000.0 / n if cpu is not None and n else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append(float(v))
    return out


def judge_figure(figure: str, base: list[float], cur: list[float],
                 max_regression: float) -> FigureResult:
    """The verdict on one figure; ``max_regression`` as a fraction (0.05 = 5%)."""
    higher_better = FIGURES[figure][1]
    rounds = (len(base), len(cur))
    ratio = stats.ratio_ci(base, cur)
    if ratio is None:
        return FigureResult(figure, None, None, None, None, None, UNSURE, rounds=rounds)
    result = FigureResult(figure, _median(base), _median(cur), round(ratio.ratio, 4),
                          round(ratio.low, 4), round(ratio.high, 4), SAME, rounds=rounds)
    if min(rounds) < 2:
        result.verdict = UNSURE  # one round: its spread is unknown, no interval to judge
        return result
    if not ratio.excludes(1.0):
        half = (math.log(ratio.high) - math.log(ratio.low)) / 2 if ratio.low > 0 else math.inf
        if max_regression > 0 and half > math.log1p(max_regression):
            result.too_wide = True
            result.rounds_to_tell = stats.rounds_to_tell(base, cur, max_regression)
        return result
    better = ratio.low > 1.0 if higher_better else ratio.high < 1.0
    result.verdict = FASTER if better else SLOWER
    if not better:
        # Gated only when the whole interval lies beyond the allowed regression.
        result.regression = (ratio.high < 1.0 - max_regression if higher_better
                             else ratio.low > 1.0 + max_regression)
    return result


def _median(values: list[float]) -> float | None:
    import statistics

    return round(float(statistics.median(values)), 4) if values else None


def manifest_warnings(base: Manifest, cur: Manifest) -> list[str]:
    """What differs between the two machines or softwares and spoils a comparison."""
    warnings = []
    for key, name in MANIFEST_CHECKS:
        a, b = base.get(key), cur.get(key)
        if (a is not None or b is not None) and a != b:
            warnings.append(f"{name} differs: {a} (baseline) vs {b} (current)")
    va, vb = base.get("versions") or {}, cur.get("versions") or {}
    changed = [f"{k} {va.get(k, '-')} -> {vb.get(k, '-')}" for k in sorted(set(va) | set(vb))
               if va.get(k) != vb.get(k)]
    if changed:
        warnings.append("package versions differ: " + ", ".join(changed))
    limits_a, limits_b = base.get("limits_applied"), cur.get("limits_applied")
    la = limits_a.get("cpu_limit_seen") if limits_a else None
    lb = limits_b.get("cpu_limit_seen") if limits_b else None
    if la is not None and lb is not None and la != lb:
        warnings.append(f"cgroup CPU limits seen by the services differ: {la} (baseline) vs "
                        f"{lb} (current)")
    return warnings


def _run_warnings(lbl: str, base: list[dict[str, Any]], cur: list[dict[str, Any]]) -> list[str]:
    seen_a = {get(r, "server.cpu_limit") for r in base} - {None}
    seen_b = {get(r, "server.cpu_limit") for r in cur} - {None}
    if seen_a and seen_b and seen_a != seen_b:
        return [f"{lbl}: the cgroup CPU limit seen differs: {sorted(seen_a)} (baseline) vs "
                f"{sorted(seen_b)} (current)"]
    return []


def compare(base: Summary, cur: Summary, match: tuple[str, ...] = MATCH_DEFAULT,
            max_regression: float = 0.05, names: tuple[str, str] = ("baseline", "current"),
            ) -> Comparison:
    def key(run: Run) -> tuple[Any, ...]:
        return tuple(get(run, f) for f in match)

    def group(runs: list[Run]) -> dict[tuple[Any, ...], list[Run]]:
        out: dict[tuple[Any, ...], list[Run]] = {}
        for run in runs:
            if run.get("status") == "ok":
                out.setdefault(key(run), []).append(run)
        return out

    ga, gb = group(read_runs(base)), group(read_runs(cur))
    warnings = manifest_warnings(base.get("manifest") or {}, cur.get("manifest") or {})
    matches = []
    for k in [k for k in gb if k in ga]:
        runs_a, runs_b = ga[k], gb[k]
        rounds_a = [r for run in runs_a for r in _ok_rounds(run)]
        rounds_b = [r for run in runs_b for r in _ok_rounds(run)]
        lbl = variant_label(runs_b[0], "compare")
        warnings += _run_warnings(lbl, rounds_a, rounds_b)
        m = Match(lbl, dict(zip(match, k, strict=True)), len(rounds_a), len(rounds_b))
        for figure in FIGURES:
            m.figures.append(judge_figure(figure, _figure_values(rounds_a, figure),
                                          _figure_values(rounds_b, figure), max_regression))
        matches.append(m)
    hints = [h for m in matches if (h := rounds_hint(m, max_regression)) is not None]
    return Comparison(
        baseline=names[0], current=names[1], match=list(match),
        max_regression_pct=round(100 * max_regression, 4), warnings=warnings,
        matches=matches,
        unmatched_baseline=[variant_label(v[0], "compare") for k, v in ga.items() if k not in gb],
        unmatched_current=[variant_label(v[0], "compare") for k, v in gb.items() if k not in ga],
        hints=hints,
    )


def rounds_hint(m: Match, max_regression: float) -> str | None:
    """What would turn a match's unknowns into verdicts: more rounds, and about how many."""
    if min(m.baseline_rounds, m.current_rounds) < 2:
        return (f"{m.label}: one round on a side leaves its spread unknown; run each side "
                "with --rounds 3 or more to judge it")
    wide = [f for f in m.figures if f.too_wide]
    if not wide:
        return None
    pct = f"{100 * max_regression:g}%"
    names = ("every figure" if len(wide) == len(m.figures)
             else ", ".join(f.figure for f in wide))
    needed = [f.rounds_to_tell for f in wide]
    if any(n is None for n in needed):
        return (f"{m.label}: no difference found in {names}, but the rounds spread too much "
                f"to tell a {pct} change in under 100 rounds a side")
    most = max(n for n in needed if n is not None)
    return (f"{m.label}: no difference found in {names}, but the intervals are wider than "
            f"±{pct}: about {most} rounds a side (--rounds {most}) would tell a {pct} change, "
            "if the rounds spread as these did")


def _fmt(value: float | None, figure: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if figure == "rps" else f"{value:.3g}"


def print_table(result: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"loadlab compare: {result.current} / {result.baseline}")
    for name in ("run", "figure", "baseline", "current", "ratio [95% interval]", "rounds",
                 "verdict"):
        table.add_column(name)
    colour = {FASTER: "green", SLOWER: "red", SAME: "white", UNSURE: "yellow"}
    for m in result.matches:
        for i, f in enumerate(m.figures):
            ratio = ("-" if f.ratio is None else
                     f"{f.ratio:.3f} [{f.low:.3f}, {f.high:.3f}]")
            verdict = f"[{colour[f.verdict]}]{f.verdict}[/]" + (" REGRESSION" if f.regression
                                                                 else "")
            table.add_row(m.label if i == 0 else "", f.figure, _fmt(f.baseline, f.figure),
                          _fmt(f.current, f.figure), ratio, f"{f.rounds[0]}/{f.rounds[1]}",
                          verdict)
    console = Console(width=max(120, Console().width))
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    for h in result.hints:
        console.print(f"hint: {h}", markup=False, soft_wrap=True)  # one line, to grep
    for lbl in result.unmatched_baseline:
        console.print(f"only in the baseline: {lbl}")
    for lbl in result.unmatched_current:
        console.print(f"only in the current results: {lbl}")


def parse_match(text: str | None) -> tuple[str, ...]:
    if text is None:
        return MATCH_DEFAULT
    fields = tuple(f.strip().replace("-", "_") for f in text.split(",") if f.strip())
    unknown = [f for f in fields if f not in MATCH_FIELDS]
    if not fields or unknown:
        raise CompareError(f"--match: unknown field(s) {', '.join(unknown) or '(none)'}; "
                           f"choose from {', '.join(MATCH_FIELDS)}")
    return fields


def parse_regression(text: str) -> float:
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise CompareError(f"--max-regression: cannot read {text!r} (example: 5%)") from None
    if not 0 <= value < 100:
        raise CompareError(f"--max-regression: {text!r} must be 0% or more and below 100%")
    return value / 100.0


def load_pair(baseline: Path, current: Path) -> tuple[Summary, Summary]:
    for d in (baseline, current):
        if not d.is_dir():
            raise CompareError(f"{d} is not a directory")
    try:
        return load_summary(baseline), load_summary(current)
    except ResultsError as exc:
        raise CompareError(str(exc)) from None


def compare_dirs(baseline: Path, current: Path, match: tuple[str, ...] = MATCH_DEFAULT,
                 max_regression: float = 0.05) -> Comparison:
    base, cur = load_pair(baseline, current)
    return compare(base, cur, match, max_regression, (str(baseline), str(current)))


def compare_command(args: argparse.Namespace) -> int:
    """Bad input raises CompareError or ResultsError (user errors: loadlab.cli.main)."""
    match = parse_match(args.match)
    threshold = parse_regression(args.max_regression)
    result = compare_dirs(Path(args.baseline), Path(args.current), match, threshold)
    if not result.matches:
        raise CompareError(f"no run of {args.current} matches one of {args.baseline} on "
                           f"{', '.join(match)} (try --match with fewer fields)")
    out = Path(args.out) if args.out else Path(args.current) / "compare.json"
    atomic_write(out, json.dumps(result.to_json(), indent=2) + "\n")
    print_table(result)
    print(f"compare: {out}")
    for m, f in result.regressions:
        lo, hi = (f.low or 0.0), (f.high or 0.0)
        print(f"regression: {m.label}: {f.figure} {f.baseline} -> {f.current} "
              f"(ratio {f.ratio} [{lo}, {hi}], beyond {result.max_regression_pct:g}%)",
              file=sys.stderr)
    return 1 if result.regressions else 0
