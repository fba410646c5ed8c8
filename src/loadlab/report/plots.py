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

Run = dict[str, Any]
COLOURS = {"fastapi": "#059669", "flask": "#2563eb"}
STYLES = ["-", "--", ":", "-."]


def ok_runs(runs: Iterable[Run]) -> list[Run]:
    return [r for r in runs if r.get("status") == "ok" and r.get("rps")]


def variant(run: Run) -> str:
    label = f"{run['target']} {run['worker_class']} ×{run['workers']}"
    if run.get("threads", 1) > 1:
        label += f"×{run['threads']}t"
    if run.get("cpus"):
        label += f" @{run['cpus']:g} CPU"
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
            other = "cpus" if axis == "workers" else "workers"
            label = f"{key[1]} {key[2]} u{key[3]} {other}={key[5]:g}"
            ns = np.array([r[axis] for r in items], dtype=float)
            colour = plt.get_cmap("tab10")(i % 10)
            ax.plot(ns, [r["rps"] for r in items], "o", color=colour, label=label)
            grid = np.linspace(max(ns.min(), 0.25), ns.max() * 1.5, 80)
            for f in fits_for(items, axis):
                ax.plot(grid, f.predict(grid), "-" if f.law == "usl" else ":", color=colour,
                        alpha=0.7, label=f"{f.law} fit")
                fitted.append((f"{target} {label}", f))
        _style(ax, f"{target}: throughput vs {axis}", axis, "requests / s")
        if mine:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no series", ha="center", transform=ax.transAxes)
    return to_svg(fig), fitted


def cpu_figure(runs: list[Run]) -> str | None:
    """CPU cores used against the limit, and the share of periods throttled."""
    rows = [r for r in runs if (r.get("server") or {}).get("cpu_cores_used") is not None]
    if not rows:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, max(2.5, 0.28 * len(rows) + 1)))
    labels = [f"{variant(r)} {r['scenario']} u{r['users']}" for r in rows]
    y = np.arange(len(rows))
    used = [r["server"]["cpu_cores_used"] for r in rows]
    limit = [r["cpus"] or np.nan for r in rows]
    colours = [COLOURS.get(r["target"], "#444") for r in rows]
    ax1.barh(y, used, color=colours, alpha=0.8, label="used")
    ax1.scatter(limit, y, marker="|", s=300, color="#dc2626", label="limit", zorder=3)
    ax1.set_yticks(y, labels, fontsize=7)
    _style(ax1, "CPU used vs limit", "cores", "")
    ax1.legend(fontsize=7)
    share = [(r["server"].get("throttled_share") or 0.0) * 100 for r in rows]
    ax2.barh(y, share, color=colours, alpha=0.8)
    ax2.set_xlim(0, max(10.0, max(share) * 1.1))
    for yi, r in zip(y, rows, strict=True):
        if r["server"].get("throttled_share") is None:
            ax2.text(0.2, yi, "not measured", va="center", fontsize=6, color="#6b7280")
    ax2.set_yticks(y, [""] * len(rows))
    _style(ax2, "CFS periods throttled", "% of periods", "")
    return to_svg(fig)


def in_flight(run: Run) -> float:
    """Concurrent requests held by the server (Little's law: throughput × mean latency)."""
    mean = run["latency_ms"].get("mean") or run["latency_ms"].get("p50") or 0.0
    return max(min(run["rps"] * mean / 1000.0, float(run["users"])), 1.0)


def memory_figure(runs: list[Run]) -> str | None:
    rows = [r for r in runs if (r.get("server") or {}).get("memory_bytes")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.28 * len(rows) + 1)))
    labels = [f"{variant(r)} {r['scenario']} u{r['users']}" for r in rows]
    per = [r["server"]["memory_bytes"] / in_flight(r) / 1e6 for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, per, color=[COLOURS.get(r["target"], "#444") for r in rows], alpha=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xscale("log")
    _style(ax, "memory per concurrent request (PSS / in-flight requests)", "MB (log)", "")
    return to_svg(fig)
