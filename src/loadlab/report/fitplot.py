"""The scaling figure: measured points with their intervals, the chosen law with its band.

Cores (``cpus``) and workers are separate series: along one axis everything else is
fixed. ``scaling_section(runs)`` returns the report's HTML fragment (inline SVG + table).
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from typing import Any

import numpy as np

from loadlab.report.fit import Choice, choose
from loadlab.runs.record import Run, get, run_rounds

AXES = ("cpus", "workers")


def _fixed(run: Run, axis: str) -> tuple[Any, ...]:
    other = "workers" if axis == "cpus" else "cpus"
    return (run.get("target"), run.get("worker_class"), run.get("scenario"), run.get("users"),
            run.get("threads"), other, run.get(other), run.get("io_ms"), run.get("cpu_work"))


def series(runs: list[Run], axis: str) -> dict[str, list[Run]]:
    """Series along ``axis`` (2+ distinct values, a limit of 0 = none left out)."""
    groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        if run.get("status") == "ok" and run.get("rps") and float(get(run, axis) or 0) > 0:
            groups[_fixed(run, axis)].append(run)
    out = {}
    for key, items in groups.items():
        if len({float(get(r, axis)) for r in items}) >= 2:
            target, klass, scenario, users, threads, other, other_v = key[:7]
            label = (f"{target} {klass} {scenario} u{users}"
                     + (f" t{threads}" if threads and threads > 1 else "")
                     + f", {other}={other_v if other_v else 'no limit'}")
            out[label] = sorted(items, key=lambda r: float(get(r, axis)))
    return out


def observations(items: list[Run], axis: str) -> tuple[list[float], list[float]]:
    """Every round of every run as one (N, rps) observation."""
    ns, xs = [], []
    for run in items:
        for rnd in run_rounds(run):
            if rnd.get("status") == "ok" and rnd.get("rps"):
                ns.append(float(get(run, axis)))
                xs.append(float(rnd["rps"]))
    return ns, xs


def fits(runs: list[Run], axis: str) -> list[tuple[str, list[Run], Choice]]:
    out = []
    for label, items in sorted(series(runs, axis).items()):
        ns, xs = observations(items, axis)
        out.append((label, items, choose(ns, xs)))
    return out


def scaling_fit_figure(runs: list[Run], axis: str) -> tuple[str | None, list[tuple[str, Choice]]]:
    """Inline SVG of every series along ``axis`` and the law chosen for it (None: none)."""
    found = fits(runs, axis)
    if not found:
        return None, []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    cmap = plt.get_cmap("tab10")
    for i, (label, items, choice) in enumerate(found):
        colour = cmap(i % 10)
        n = np.array([float(get(r, axis)) for r in items])
        x = np.array([float(r["rps"]) for r in items])
        cis = [(r.get("ci") or {}).get("rps") for r in items]
        low = np.array([x[j] - c[0] if c else 0.0 for j, c in enumerate(cis)])
        high = np.array([c[1] - x[j] if c else 0.0 for j, c in enumerate(cis)])
        ax.errorbar(n, x, yerr=[low, high], fmt="o", color=colour, capsize=3,
                    label=f"{label} (median, 95% interval)")
        chosen = choice.chosen
        if chosen is not None:
            grid = np.linspace(max(n.min() * 0.8, 0.1), n.max() * 1.3, 80)
            band_low, band_high = chosen.band(grid)
            ax.plot(grid, chosen.predict(grid), "-", color=colour, alpha=0.8,
                    label=f"{chosen.law} (chosen by AICc)")
            ax.fill_between(grid, band_low, band_high, color=colour, alpha=0.15)
        else:
            ax.plot([], [], " ", label=f"no fit: {choice.note}")
    ax.set_xlabel(axis)
    ax.set_ylabel("requests / s")
    ax.set_title(f"throughput against {axis}: measured points and the chosen law", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):], [(label, choice) for label, _, choice in found]


def scaling_section(runs: list[Run]) -> str:
    """``<h3>`` per axis with the figure and a table of the fits (an HTML fragment); an axis
    along which no series exists is left out, not announced (empty: nothing to draw)."""
    parts = []
    for axis in AXES:
        svg, chosen = scaling_fit_figure(runs, axis)
        if svg is None:
            continue
        parts.append(f"<h3>Scaling against {html.escape(axis)}</h3>")
        parts.append(f"<figure>{svg}<figcaption class='note'>points: medians over rounds "
                     "with 95% intervals; line and band: the law chosen by AICc with its 95% "
                     "band</figcaption></figure>")
        rows = []
        for label, choice in chosen:
            detail = "<br>".join(html.escape(f.describe()) for f in choice.fits) or "-"
            rows.append(f"<tr><td class='l'>{html.escape(label)}</td><td class='l'>"
                        f"{html.escape(choice.note)}</td><td class='l'>{detail}</td></tr>")
        parts.append("<table><tr><th class='l'>series</th><th class='l'>choice</th>"
                     "<th class='l'>fits (95% intervals)</th></tr>" + "".join(rows)
                     + "</table>")
    return "\n".join(parts)
