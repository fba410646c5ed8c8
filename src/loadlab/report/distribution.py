"""Latency distributions: a CDF per run from Locust's response-time buckets.

Runs under the same load share a panel. In the open model the latency from each request's
intended send time (coordinated omission corrected) sits beside the plain one; the lab's
locustfile reports its percentiles, drawn as points.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadlab.report import svg
from loadlab.report.figures import colour, labels
from loadlab.report.rundata import cdf, locust_entries, response_times
from loadlab.runs.record import Run, get

PANEL_W, PANEL_H = 430.0, 210.0
DASHES = ("", "5 3", "2 2", "8 3 2 3")
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def figure(directory: Path, runs: Sequence[Run], title: str) -> str | None:
    curves = []
    for run in runs:
        entries = locust_entries(directory, run)
        buckets = response_times(entries) if entries else {}
        if sum(buckets.values()) > 0:
            curves.append((run, cdf(buckets)))
    if not curves:
        return None
    intended = [(r, r["intended_latency_ms"]) for r, _ in curves
                if isinstance(r.get("intended_latency_ms"), dict)]
    names, _ = labels([r for r, _ in curves])
    xs_all = [x for _, (xs, _) in curves for x in xs if x > 0]
    xs_all += [float(v) for _, lat in intended for k in lat if (v := get(lat, k))]
    log = svg.spans_decades(xs_all)
    xr = svg.log_range(xs_all) if log else (0.0, svg.nice_max(max(xs_all, default=1.0)))
    panels = 2 if intended else 1
    width = 70 + panels * PANEL_W + (panels - 1) * 70 + 20
    legend_h = 16 * len(curves)
    c = svg.Canvas(width, 30 + PANEL_H + 50 + legend_h, f"latency distribution: {title}")
    unit = "ms (log scale)" if log else "ms"
    xs, ys = svg.Panel.scales(70, 30, PANEL_W, PANEL_H, xr, (0.0, 100.0), xlog=log)
    plain = svg.Panel(c, 70, 30, PANEL_W, PANEL_H, xs, ys)
    plain.frame("From the actual send" if intended else "Share of requests answered within",
                f"response time, {unit}", "% of requests")
    for i, (run, (x, y)) in enumerate(curves):
        # start each curve at 0 % just left of its first bucket, so a single bucket shows
        first = x[0] * 0.9 if log else max(x[0] - 1, 0.0)
        plain.series(svg.Series([first, *x], [0.0, *(v * 100 for v in y)], colour(run, i // 2),
                                dash=DASHES[i % len(DASHES)], step=True, width=2.0))
    if intended:
        xs2, ys2 = svg.Panel.scales(70 + PANEL_W + 70, 30, PANEL_W, PANEL_H, xr, (0.0, 100.0),
                                    xlog=log)
        corrected = svg.Panel(c, 70 + PANEL_W + 70, 30, PANEL_W, PANEL_H, xs2, ys2)
        corrected.frame("From the intended send time (corrected)", f"response time, {unit}",
                        "% of requests")
        for i, (run, lat) in enumerate(intended):
            pts = [(float(v), q * 100) for k, q in QUANTILES if (v := get(lat, k))]
            corrected.series(svg.Series([p[0] for p in pts], [p[1] for p in pts],
                                        colour(run, i // 2), dash=DASHES[i % len(DASHES)],
                                        points=True, width=2.0))
    top = 30 + PANEL_H + 46
    for i, ((run, _), name) in enumerate(zip(curves, names, strict=True)):
        d = DASHES[i % len(DASHES)]
        dash = f' stroke-dasharray="{d}"' if d else ""
        row = top + i * 16
        c.add(f'<line x1="70" y1="{row - 3.5:.1f}" x2="92" y2="{row - 3.5:.1f}" '
              f'stroke="{colour(run, i // 2)}" stroke-width="2.2"{dash}/>')
        c.text(98, row, name, size=10.5)
    return c.render()
