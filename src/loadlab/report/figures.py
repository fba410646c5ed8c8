"""The report's figures that show every run, whatever their number: one row per run.

Throughput and latency side by side, memory per request beside what the server and the
clients held, CPU against the limit. Rows carry only what tells the runs apart; what they
share goes into the caption.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadlab.report import svg
from loadlab.report.concurrency import client_in_flight, memory_per_request, served
from loadlab.report.headline import load
from loadlab.runs.record import Run, get, variant_label

COLOURS = {"fastapi": "#059669", "flask": "#2563eb"}
SHADES = {"fastapi": ("#059669", "#34d399", "#065f46", "#6ee7b7"),
          "flask": ("#2563eb", "#60a5fa", "#1e3a8a", "#93c5fd")}


def colour(run: Run, i: int = 0) -> str:
    shades = SHADES.get(run.get("target", ""), ("#4b5563", "#9ca3af"))
    return shades[i % len(shades)]


def cpus_text(run: Run) -> str:
    return f"{run['cpus']:g} CPU" if run.get("cpus") else "no limit"


def _parts(run: Run) -> dict[str, str]:
    return {
        "stack": variant_label(run, "row"),
        "cpus": cpus_text(run),
        "load": load(run),
    }


def labels(runs: Sequence[Run]) -> tuple[list[str], str]:
    """Row labels with only what differs between the runs, and what they all share."""
    parts = [_parts(r) for r in runs]
    keys = ("stack", "cpus", "load")
    varying = [k for k in keys if len({p[k] for p in parts}) > 1 or k == "stack"]
    shared = [parts[0][k] for k in keys if k not in varying and parts and parts[0][k]]
    rows = [" · ".join(p[k] for k in varying if p[k]) for p in parts]
    return rows, "; ".join(shared)


def overview(runs: Sequence[Run]) -> str | None:
    """Throughput and the latency percentiles of every run, side by side."""
    if not runs:
        return None
    rows, _ = labels(runs)
    layout = svg.Rows(rows, [colour(r) for r in runs], panels=2)
    c = layout.canvas("throughput and latency percentiles of every run")
    top = max(float(r["rps"]) for r in runs)
    rps_panel = layout.panel(c, 0, (0, svg.nice_max(top)))
    rps_panel.frame("Throughput", "requests / s", "", yticks=False)
    for i, r in enumerate(runs):
        rps = float(r["rps"])
        svg.bar(rps_panel, layout.cy(i), layout.row_h, rps, colour(r),
                f"{rps:,.0f} req/s" if rps >= 100 else f"{rps:.3g} req/s")
    values = [float(v) for r in runs for k in ("p50", "p95", "p99")
              if (v := get(r["latency_ms"], k))]
    if values:
        log = svg.spans_decades(values)
        xr = svg.log_range(values) if log else (0.0, svg.nice_max(max(values)))
        lat = layout.panel(c, 1, xr, log)
        lat.frame("Latency percentiles", "ms (log scale)" if log else "ms", "", yticks=False)
        for i, r in enumerate(runs):
            lm = r["latency_ms"]
            y = layout.cy(i)
            pts = [(k, float(v)) for k in ("p50", "p95", "p99") if (v := get(lm, k))]
            if len(pts) >= 2:
                c.add(f'<line x1="{lat.xs(pts[0][1]):.1f}" y1="{y:.1f}" '
                      f'x2="{lat.xs(pts[-1][1]):.1f}" y2="{y:.1f}" stroke="{colour(r)}" '
                      'stroke-width="2" stroke-opacity="0.5"/>')
            for (k, v), shape in zip(pts, ("circle", "ring", "tick"), strict=False):
                svg.marker(lat, v, y, shape, colour(r), f"{k} {v:g} ms")
            if pts and layout.row_h >= 20:
                c.text(lat.xs(pts[0][1]), y - 7, svg.ms(pts[0][1]), size=9.5,
                       anchor="middle", colour=svg.AXIS)
        svg.marker_legend(c, lat.x, layout.title_h + layout.plot_h + 44,
                          (("circle", "p50"), ("ring", "p95"), ("tick", "p99")))
    return c.render()


def memory(runs: Sequence[Run]) -> str | None:
    """Memory per request the server was serving, beside served and clients' in flight."""
    rows = [r for r in runs if memory_per_request(r) is not None]
    if not rows:
        return None
    names, _ = labels(rows)
    layout = svg.Rows(names, [colour(r) for r in rows], panels=2)
    c = layout.canvas("memory per request served, and requests served and in flight")
    per = [float(memory_per_request(r) or 0) / 1e6 for r in rows]
    log = svg.spans_decades(per)
    xr = svg.log_range(per) if log else (0.0, svg.nice_max(max(per)))
    p = layout.panel(c, 0, xr, log)
    p.frame("Memory per request served", "MB / request" + (" (log scale)" if log else ""),
            "", yticks=False)
    for i, (r, v) in enumerate(zip(rows, per, strict=True)):
        total = float(r["server"].get("memory_bytes") or 0) / 1e6  # rows have memory
        svg.bar(p, layout.cy(i), layout.row_h, v, colour(r),
                f"{v:.3g} MB ({total:,.0f} MB / {served(r):.3g})")
    held = [(served(r) or 0.0, client_in_flight(r)) for r in rows]
    counts = [v for pair in held for v in pair if v > 0]
    log = svg.spans_decades(counts)
    xr = svg.log_range(counts) if log else (0.0, svg.nice_max(max(counts)))
    q = layout.panel(c, 1, xr, log)
    q.frame("Requests at once", "requests" + (" (log scale)" if log else ""), "",
            yticks=False)
    for i, (r, (s, w)) in enumerate(zip(rows, held, strict=True)):
        y = layout.cy(i)
        c.add(f'<line x1="{q.xs(min(s, w)):.1f}" y1="{y:.1f}" x2="{q.xs(max(s, w)):.1f}" '
              f'y2="{y:.1f}" stroke="{colour(r)}" stroke-width="2" stroke-opacity="0.5"/>')
        svg.marker(q, s, y, "circle", colour(r), f"served at the server {s:.3g}")
        svg.marker(q, w, y, "ring", colour(r), f"waiting at the clients {w:.3g}")
    svg.marker_legend(c, q.x, layout.title_h + layout.plot_h + 44,
                      (("circle", "served (server)"), ("ring", "waiting (clients)")))
    return c.render()


def cpu(runs: Sequence[Run]) -> str | None:
    """CPU cores used against the limit, and the share of CFS periods throttled."""
    rows = [r for r in runs if r["server"].get("cpu_cores_used") is not None]
    if not rows:
        return None
    names, _ = labels(rows)
    layout = svg.Rows(names, [colour(r) for r in rows], panels=2)
    c = layout.canvas("CPU used against the limit, and throttling")
    used = [float(r["server"].get("cpu_cores_used") or 0.0) for r in rows]  # None: not a row
    limits = [float(cpus) for r in rows if (cpus := r.get("cpus"))]
    p = layout.panel(c, 0, (0, svg.nice_max(max([*used, *limits, 0.1]))))
    p.frame("CPU used against the limit", "cores", "", yticks=False)
    for i, (r, v) in enumerate(zip(rows, used, strict=True)):
        y = layout.cy(i)
        svg.bar(p, y, layout.row_h, v, colour(r), f"{v:.2f} cores")
        if cpus := r.get("cpus"):
            svg.marker(p, float(cpus), y, "tick", "#dc2626", f"limit {cpus:g} cores")
        else:
            c.text(p.x + p.w - 4, y + 3.8, "no limit", size=9.5, anchor="end",
                   colour=svg.AXIS)
    shares = [(r["server"].get("throttled_share"), r) for r in rows]
    top = max([s * 100 for s, _ in shares if s is not None] + [10.0])
    q = layout.panel(c, 1, (0, svg.nice_max(top)))
    q.frame("CFS periods throttled", "% of periods", "", yticks=False)
    for i, (share, r) in enumerate(shares):
        y = layout.cy(i)
        if share is None:
            c.text(q.x + 6, y + 3.8, "not measured", size=9.5, colour=svg.AXIS)
        else:
            svg.bar(q, y, layout.row_h, share * 100, colour(r), f"{share:.1%}")
    return c.render()
