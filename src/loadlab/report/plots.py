"""The report's figures, drawn with matplotlib and returned as inline SVG text."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadlab.report.fit import Fit, fit

# Text stays text (the page's font, a tenth of the size of glyphs drawn as paths).
matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9,
                            "font.family": "sans-serif"})

Run = dict[str, Any]
COLOURS = {"fastapi": "#059669", "flask": "#2563eb"}
STYLES = ["-", "--", ":", "-."]


def ok_runs(runs: Iterable[Run]) -> list[Run]:
    return [r for r in runs if r.get("status") == "ok" and r.get("rps")]


def variant(run: Run) -> str:
    label = f"{run['target']} {run['worker_class']} ×{run['workers']}"
    if run.get("threads", 1) > 1:
        label += f"×{run['threads']}t"
    label += f" @{run['cpus']:g} CPU" if run.get("cpus") else " no CPU limit"
    return label


def to_svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue: the SVG sits inside HTML


def _style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _series(runs: list[Run], x_key: str, fixed: Callable[[Run], tuple[Any, ...]],
            ) -> dict[tuple[Any, ...], list[Run]]:
    groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        groups[fixed(run)].append(run)
    return {k: sorted(v, key=lambda r: r[x_key]) for k, v in groups.items()
            if len({r[x_key] for r in v}) >= 2}


def users_figure(runs: list[Run], scenario: str) -> str | None:
    """Throughput and latency percentiles against users, one line per variant."""
    series = _series([r for r in runs if r["scenario"] == scenario], "users",
                     lambda r: (variant(r), r["target"]))
    if not series:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, ((label, target), items) in enumerate(sorted(series.items())):
        users = [r["users"] for r in items]
        colour = COLOURS.get(target, "#444")
        ls = STYLES[i % len(STYLES)]
        ax1.plot(users, [r["rps"] for r in items], ls, marker="o", color=colour, label=label)
        for q, alpha in (("p50", 0.45), ("p95", 0.75), ("p99", 1.0)):
            ax2.plot(users, [r["latency_ms"][q] for r in items], ls, marker=".",
                     color=colour, alpha=alpha, label=f"{label} {q}")
    _style(ax1, f"{scenario}: throughput", "concurrent users", "requests / s")
    _style(ax2, f"{scenario}: latency p50 / p95 / p99", "concurrent users", "ms")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6, ncol=2)
    return to_svg(fig)


def scaling_series(runs: list[Run], axis: str) -> dict[tuple[Any, ...], list[Run]]:
    """Series along ``axis`` (workers or cpus) with everything else fixed."""
    other = "cpus" if axis == "workers" else "workers"

    def fixed(r: Run) -> tuple[Any, ...]:
        return (r["target"], r["worker_class"], r["scenario"], r["users"], r["threads"],
                r[other], r.get("io_ms"), r.get("cpu_work"))

    return _series(runs, axis, fixed)


def fits_for(items: list[Run], axis: str) -> list[Fit]:
    ns = [float(r[axis]) for r in items]
    xs = [float(r["rps"]) for r in items]
    found = [fit(ns, xs, "amdahl"), fit(ns, xs, "usl")]
    return [f for f in found if f is not None]


def scaling_figure(runs: list[Run], axis: str) -> tuple[str | None, list[tuple[str, Fit]]]:
    """Throughput against workers (or CPUs), FastAPI and Flask side by side, with fits."""
    series = scaling_series(runs, axis)
    if not series:
        return None, []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    fitted: list[tuple[str, Fit]] = []
    for ax, target in zip(axes, ("fastapi", "flask"), strict=True):
        mine = {k: v for k, v in series.items() if k[0] == target}
        for i, (key, items) in enumerate(sorted(mine.items(), key=lambda kv: str(kv[0]))):
            if axis == "workers":
                fixed_text = f"{key[5]:g} CPU" if key[5] else "no CPU limit"
            else:
                fixed_text = f"{key[5]:g} workers"
            label = f"{key[1]} {key[2]} u{key[3]} {fixed_text}"
            ns = np.array([r[axis] for r in items], dtype=float)
            colour = plt.get_cmap("tab10")(i % 10)
            ax.plot(ns, [r["rps"] for r in items], "o", color=colour, label=label)
            grid = np.linspace(max(ns.min(), 0.25), ns.max() * 1.5, 80)
            for f in fits_for(items, axis):
                ax.plot(grid, f.predict(grid), "-" if f.law == "usl" else ":", color=colour,
                        alpha=0.7, label=f"{f.law} fit")
                fitted.append((f"{target} {label}", f))
        xlabel = "worker processes" if axis == "workers" else "CPU limit (cores)"
        _style(ax, f"{target}: throughput vs {xlabel}", xlabel, "requests / s")
        if mine:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no series", ha="center", transform=ax.transAxes)
    return to_svg(fig), fitted
