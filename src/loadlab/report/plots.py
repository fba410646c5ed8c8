"""The report's figures, drawn with matplotlib and returned as inline SVG text."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadlab.runs.record import Run, get, variant_label

# Text stays text (the page's font, a tenth of the size of glyphs drawn as paths).
matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9,
                            "font.family": "sans-serif"})

COLOURS = {"fastapi": "#059669", "flask": "#2563eb"}
STYLES = ["-", "--", ":", "-."]




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
    return {k: sorted(v, key=lambda r: get(r, x_key)) for k, v in groups.items()
            if len({get(r, x_key) for r in v}) >= 2}


def users_figure(runs: list[Run], scenario: str) -> str | None:
    """Throughput and latency percentiles against users, one line per variant."""
    series = _series([r for r in runs if r["scenario"] == scenario], "users",
                     lambda r: (variant_label(r, "plot"), r["target"]))
    if not series:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, ((label, target), items) in enumerate(sorted(series.items())):
        users = [r["users"] for r in items]
        colour = COLOURS.get(target, "#444")
        ls = STYLES[i % len(STYLES)]
        ax1.plot(users, [r["rps"] for r in items], ls, marker="o", color=colour, label=label)
        for q, alpha in (("p50", 0.45), ("p95", 0.75), ("p99", 1.0)):
            ax2.plot(users, [get(r["latency_ms"], q) for r in items], ls, marker=".",
                     color=colour, alpha=alpha, label=f"{label} {q}")
    _style(ax1, f"{scenario}: throughput", "concurrent users", "requests / s")
    _style(ax2, f"{scenario}: latency p50 / p95 / p99", "concurrent users", "ms")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6, ncol=2)
    return to_svg(fig)
