"""The report's comparison section: a table of ratios and a figure of their intervals.

``comparison_section(result)`` returns an HTML fragment (inline SVG, no network) for
report.html; ``loadlab report CURRENT --baseline BASELINE`` adds it to the page.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

from loadlab.fileio import atomic_write
from loadlab.report.compare import (
    FASTER,
    MATCH_DEFAULT,
    SLOWER,
    Comparison,
    compare_dirs,
    parse_match,
)

COLOURS = {FASTER: "#047857", SLOWER: "#b91c1c"}
# The figure's x axis (current / baseline, log scale) shows at most this range: an interval
# from two spread-out rounds can span 0.0 to millions, and drawn whole it would squash every
# other interval into a dot. Beyond the range a bar runs off the panel's edge.
VIEW = (0.1, 10.0)
# Ratios a reader can name; a panel labels at most MAX_TICKS of those in its view, spaced
# at least a MAX_TICKS-th of its width apart.
TICKS = (0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 2.0, 5.0, 10.0)
MAX_TICKS = 5


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def ratio_axis(lows: list[float], highs: list[float], limit: float,
               ) -> tuple[float, float, list[float]]:
    """A panel's x range and labelled ticks: its intervals and the regression threshold's
    lines (1 ± limit) in view, within VIEW, and the ratios of TICKS with room between."""
    lo = min([max(x, VIEW[0]) for x in lows] + [1.0 - limit]) / 1.15  # a low of 0.0 too
    hi = max([*highs, 1.0 + limit]) * 1.15
    lo, hi = max(lo, VIEW[0]), min(hi, VIEW[1])
    ticks = [t for t in TICKS if lo <= t <= hi]
    gap = math.log(hi / lo) / MAX_TICKS  # labels closer than this run into each other

    def crowded() -> bool:
        return len(ticks) > MAX_TICKS or any(
            math.log(b / a) < gap for a, b in itertools.pairwise(ticks))

    while len(ticks) > 1 and crowded():  # drop the finest: the tick nearest 1
        ticks.remove(min((t for t in ticks if t != 1.0), key=lambda t: abs(math.log(t))))
    return lo, hi, ticks


def comparison_figure(result: Comparison) -> str | None:
    """Each matched run's ratio with its interval, one panel per figure (inline SVG)."""
    if not result.matches:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    figures = [f.figure for f in result.matches[0].figures]
    rows = len(result.matches)
    fig, axes = plt.subplots(1, len(figures), figsize=(11, max(2.0, 0.35 * rows + 1.2)),
                             sharey=True)
    limit = result.max_regression_pct / 100.0
    for ax, name in zip(axes, figures, strict=True):
        lows, highs = [], []
        for y, m in enumerate(result.matches):
            f = next(x for x in m.figures if x.figure == name)
            if f.ratio is None or f.low is None or f.high is None:
                continue
            lows.append(f.low)
            highs.append(f.high)
            colour = COLOURS.get(f.verdict, "#6b7280")
            ax.errorbar(f.ratio, y, xerr=[[f.ratio - f.low], [f.high - f.ratio]], fmt="o",
                        color=colour, capsize=3, markersize=4)
        ax.axvline(1.0, color="#111827", lw=0.8)
        for bound in (1.0 - limit, 1.0 + limit):
            ax.axvline(bound, color="#9ca3af", lw=0.6, ls="--")
        ax.set_xscale("log")  # ratios: 0.5 and 2 equally far from 1
        lo, hi, ticks = ratio_axis(lows, highs, limit)
        ax.set_xlim(lo, hi)
        # Named ratios only: the log axis's own labels on a narrow range crowd into each
        # other ("9.6×10⁻¹" over "10⁰").
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("current / baseline (log)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(range(rows), [m.label for m in result.matches], fontsize=7)
    axes[0].invert_yaxis()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def comparison_section(result: Comparison) -> str:
    """``<h2>Comparison</h2>`` with warnings, the figure and the table (an HTML fragment)."""
    parts = [f"<h2>Comparison with {_e(result.baseline)}</h2>",
             f"<p class='note'>Runs matched on {_e(', '.join(result.match))}; ratio current / "
             "baseline of the geometric means over rounds with its 95% interval (Welch's t "
             "on the logs); baseline and current: medians; a regression is gated when the "
             f"whole interval lies beyond {result.max_regression_pct:g}%.</p>"]
    for w in result.warnings:
        parts.append(f"<p class='failed'>warning: {_e(w)}</p>")
    for h in result.hints:
        parts.append(f"<p class='note'>hint: {_e(h)}</p>")
    if not result.matches:
        parts.append("<p class='note'>No run matched.</p>")
        return "\n".join(parts)
    svg = comparison_figure(result)
    if svg:
        parts.append(f"<figure>{svg}<figcaption class='note'>ratios with their intervals; "
                     "dashed: the allowed regression</figcaption></figure>")
    rows = []
    for m in result.matches:
        for f in m.figures:
            ratio = "-" if f.ratio is None else f"{f.ratio:.3f} [{f.low:.3f}, {f.high:.3f}]"
            css = {"faster": "holds", "slower": "does-not-hold"}.get(f.verdict, "inconclusive")
            rows.append(
                f"<tr><td class='l'>{_e(m.label)}</td><td class='l'>{_e(f.figure)}</td>"
                f"<td>{_e(f.baseline)}</td><td>{_e(f.current)}</td><td>{_e(ratio)}</td>"
                f"<td>{f.rounds[0]}/{f.rounds[1]}</td><td class='l {css}'>{_e(f.verdict)}"
                f"{' (regression)' if f.regression else ''}</td></tr>")
    parts.append("<table><tr><th class='l'>run</th><th class='l'>figure</th><th>baseline</th>"
                 "<th>current</th><th>ratio [95%]</th><th>rounds</th><th class='l'>verdict"
                 "</th></tr>" + "".join(rows) + "</table>")
    for lbl in result.unmatched_baseline:
        parts.append(f"<p class='note'>only in the baseline: {_e(lbl)}</p>")
    for lbl in result.unmatched_current:
        parts.append(f"<p class='note'>only in the current results: {_e(lbl)}</p>")
    return "\n".join(parts)


def report_with_baseline(results_dir: str, baseline: str, match: str | None = None) -> int:
    """report.html of ``results_dir`` with the comparison section, and compare.json."""
    from loadlab.report.html import write_report

    directory = Path(results_dir)
    fields = parse_match(match) if match else MATCH_DEFAULT
    result = compare_dirs(Path(baseline), directory, fields)
    out = write_report(directory)
    page = out.read_text()
    section = comparison_section(result)
    page = page.replace("</body>", section + "</body>", 1)
    atomic_write(out, page)
    atomic_write(directory / "compare.json", json.dumps(result.to_json(), indent=2) + "\n")
    print(f"report: {out}")
    return 0
