"""The size section of report.html: what ``loadlab size`` found, read only from size.json.

Three figures, drawn with the report's own SVG primitives: each candidate's capacity
with its interval against the target (and ``--min-capacity`` where given); each
candidate's search path (the arrival rates tried, in order, met or missed); and, for a
branch whose walk made a USL fit along the workers axis, its rounds with the law and its
band. The fit is made again from the rounds in size.json (the same observations and the
same seeded intervals the search used), so an older size.json draws it too.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from loadlab.report.fit import Fit, fit
from loadlab.report.svg import (
    AXIS,
    Canvas,
    Panel,
    Rows,
    Series,
    fmt,
    marker,
    marker_legend,
    nice_max,
)
from loadlab.runs.record import SizeCandidate, SizeDoc

SIZE_FILE = "size.json"
MET = "#059669"
MISSED = "#b91c1c"
BEST = "#2563eb"
OTHER = "#6b7280"
INK_POINT = "#1f2937"


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def read_size(directory: Path) -> SizeDoc | None:
    """size.json of ``directory`` (None: there is none or it is not a size document)."""
    path = directory / SIZE_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return None
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith("loadlab-size/"):
        return None
    return cast(SizeDoc, doc)  # the lab's own document, its format checked above


def _title(doc: SizeDoc) -> str:
    what = doc.get("app") or doc.get("target")
    return f"{what} within {doc['cpus']:g} CPUs, {doc['slo']['text']}"


def capacity_figure(doc: SizeDoc) -> str | None:
    """One row per candidate: its capacity (●) and 95% interval within the target, the
    rate it first missed (○), the best in blue; --min-capacity as a dashed line."""
    cands = doc["candidates"]
    if not cands:
        return None
    rec = doc.get("recommendation")
    best = rec.get("best") if rec else None
    labels = [c["label"] for c in cands]
    colours = [BEST if c["label"] == best else (MISSED if c["capacity_rps"] is None
                                                else OTHER) for c in cands]
    rows = Rows(labels, colours, panels=1)
    rows.bottom_h = 66
    rows.height = rows.title_h + rows.plot_h + rows.bottom_h
    top = max([v for c in cands for v in (c["capacity_rps"], *(c["ci"] or ()),
                                          c.get("rate_missed"))
               if v is not None] + [doc.get("min_capacity") or 0.0, 1.0])
    c = rows.canvas(f"capacity of each candidate within {doc['slo']['text']}")
    panel = rows.panel(c, 0, (0.0, nice_max(top)))
    panel.frame(f"capacity within {doc['slo']['text']} (req/s served at the highest rate "
                "that met it)", "requests / s", "", yticks=False)
    for i, cand in enumerate(cands):
        y = rows.cy(i)
        cap, ci = cand["capacity_rps"], cand["ci"]
        colour = colours[i]
        if ci:
            a, b = panel.xs(ci[0]), panel.xs(ci[1])
            c.add(f'<line class="data ci" x1="{a:.1f}" y1="{y:.1f}" x2="{b:.1f}" '
                  f'y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>')
            for px in (a, b):
                c.add(f'<line x1="{px:.1f}" y1="{y - 5:.1f}" x2="{px:.1f}" y2="{y + 5:.1f}" '
                      f'stroke="{colour}" stroke-width="1.5"/>')
        if cap is not None:
            interval = f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
            marker(panel, cap, y, "circle", colour,
                   f"{cand['label']}: {fmt(cap)} req/s{interval}")
            c.text(panel.xs(max(cap, ci[1] if ci else cap)) + 8, y + 4,
                   f"{fmt(cap)}{interval}", size=10)
        else:
            c.text(panel.x + 6, y + 4, "never met the target", size=10, colour=MISSED)
        missed = cand.get("rate_missed")
        if missed is not None:
            marker(panel, missed, y, "ring", MISSED,
                   f"{cand['label']}: {fmt(missed)} req/s offered missed it")
    floor = doc.get("min_capacity")
    if floor:
        px = panel.xs(floor)
        c.add(f'<line class="gate" x1="{px:.1f}" y1="{panel.y:.1f}" x2="{px:.1f}" '
              f'y2="{panel.y + panel.h:.1f}" stroke="{MISSED}" stroke-dasharray="5 3" '
              'stroke-width="1.4"/>')
        c.text(px + 4, panel.y + 11, f"--min-capacity {fmt(floor)}", size=9,
               colour=MISSED)
    marker_legend(c, panel.x, panel.y + panel.h + 50, [
        ("circle", "capacity (median of the rounds) with its 95% interval"),
        ("ring", "the lowest offered rate that missed the target")])
    return c.render()


def path_figure(doc: SizeDoc) -> str | None:
    """One row per candidate: the arrival rates offered in the order tried, met (●) or
    missed (○), joined by a line: the ramp, then the bisection."""
    cands = [c for c in doc["candidates"] if c["points"]]
    if not cands:
        return None
    rates = [p["rate"] for c in cands for p in c["points"]]
    labels = [c["label"] for c in cands]
    rows = Rows(labels, [OTHER] * len(cands), panels=1)
    rows.bottom_h = 66
    rows.height = rows.title_h + rows.plot_h + rows.bottom_h
    c = rows.canvas("the search path of each candidate")
    lo, hi = min(rates), max(rates)
    log = hi / max(lo, 1e-9) >= 8
    panel = rows.panel(c, 0, (lo / 1.3, hi * 1.3) if log else (0.0, nice_max(hi)), log=log)
    panel.frame("search path: the arrival rates offered, in order", "requests / s offered"
                + (" (log scale)" if log else ""), "", yticks=False)
    for i, cand in enumerate(cands):
        y = rows.cy(i)
        xs = [panel.xs(p["rate"]) for p in cand["points"]]
        # Successive points rise a little, so a bisection that comes back is seen.
        ys = [y - 6 + 12 * k / max(len(xs) - 1, 1) for k in range(len(xs))]
        d = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in zip(xs, ys, strict=True))
        c.add(f'<polyline points="{d}" fill="none" stroke="{AXIS}" stroke-width="1" '
              'stroke-opacity="0.7"/>')
        for k, p in enumerate(cand["points"]):
            shape = "circle" if p["met"] else "ring"
            colour = MET if p["met"] else MISSED
            rps, ms = p.get("rps"), p.get("latency_ms")
            served = "" if rps is None else f", {fmt(rps)} req/s served"
            latency = "" if ms is None else f", {doc['slo']['percentile']} {fmt(ms)} ms"
            why = f" — {p['evidence']}" if p.get("evidence") else ""
            marker(panel, p["rate"], ys[k], shape, colour,
                   f"{cand['label']} #{k + 1}: {fmt(p['rate'])} req/s offered, "
                   f"{'met' if p['met'] else 'missed'}{served}{latency}{why}")
    marker_legend(c, panel.x, panel.y + panel.h + 50, [
        ("circle", "met the target"), ("ring", "missed it (the line joins them in order)")])
    return c.render()


def branch_fits(doc: SizeDoc) -> list[tuple[str, list[tuple[int, float]], Fit]]:
    """The USL fit of each branch whose search made one, from its rounds in size.json:
    every round at each worker count's highest rate met is one observation."""
    out = []
    for branch in doc.get("branches") or []:
        if not branch.get("fit"):
            continue
        rounds = [(int(c["workers"]), float(x)) for c in doc["candidates"]
                  if _branch_of(c) == branch["branch"] and c["capacity_rps"] is not None
                  for p in c["points"] if p["rate"] == c["rate_met"]
                  for x in p.get("rps_rounds") or []]
        law = fit([float(n) for n, _ in rounds], [x for _, x in rounds], "usl")
        if law is not None:
            out.append((branch["branch"], rounds, law))
    return out


def _branch_of(candidate: SizeCandidate) -> str:
    """A candidate's branch label, as ``sizing.candidates.Branch.label`` writes it."""
    if candidate.get("branch"):
        return str(candidate["branch"])
    threads = int(candidate.get("threads") or 1)
    text = str(candidate["worker_class"]) + (f" ×{threads} threads" if threads > 1 else "")
    pool = candidate.get("db_pool_size")
    return text + (f", pool {pool}" if pool else "")


def fit_figure(branch: str, rounds: list[tuple[int, float]], law: Fit) -> str:
    """A branch's rounds against workers, the USL curve and its 95% band."""
    ns = [n for n, _ in rounds]
    xs = [x for _, x in rounds]
    top_n = max(ns) * 1.5
    grid = np.linspace(max(min(ns) * 0.5, 0.5), top_n, 60)
    low, high = law.band(grid)
    curve = law.predict(grid)
    y_top = nice_max(max(max(xs), float(np.max(high)), float(np.max(curve))))
    c = Canvas(1040, 300, f"{branch}: throughput within the target against workers, USL fit")
    x0, y0, w, h = 70.0, 28.0, 900.0, 200.0
    xs_scale, ys_scale = Panel.scales(x0, y0, w, h, (0.0, top_n), (0.0, y_top))
    panel = Panel(c, x0, y0, w, h, xs_scale, ys_scale)
    panel.frame(f"{branch}: capacity against workers and the USL fit", "workers",
                "requests / s")
    top = " ".join(f"{panel.xs(g):.1f},{panel.ys(v):.1f}" for g, v in zip(grid, high,
                                                                          strict=True))
    bottom = " ".join(f"{panel.xs(g):.1f},{panel.ys(v):.1f}"
                      for g, v in zip(grid[::-1], low[::-1], strict=True))
    c.add(f'<polygon class="band" points="{top} {bottom}" fill="{BEST}" fill-opacity="0.15" '
          'stroke="none"/>')
    panel.series(Series(list(grid), [float(v) for v in curve], BEST, "USL"))
    for n, x in rounds:
        c.add(f'<circle class="data" cx="{panel.xs(n):.1f}" cy="{panel.ys(x):.1f}" r="3.2" '
              f'fill="{INK_POINT}"><title>{n} workers: {fmt(x)} req/s</title></circle>')
    if law.peak_n is not None and law.peak_n <= top_n:
        px = panel.xs(law.peak_n)
        c.add(f'<line x1="{px:.1f}" y1="{y0:.1f}" x2="{px:.1f}" y2="{y0 + h:.1f}" '
              f'stroke="{MISSED}" stroke-dasharray="4 3"/>')
        c.text(px + 4, y0 + 12, f"peak N*={law.peak_n:.1f}", size=9, colour=MISSED)
    panel.legend([("each round at the highest rate met", INK_POINT, "1 2"),
                  ("USL fit with its 95% band", BEST, "")])
    return c.render()



def section_body(doc: SizeDoc) -> str:
    """The size section's HTML: the recommendation, the figures, the table, the fits."""
    rec = doc["recommendation"]
    slo = doc["slo"]
    parts = [f'<p class="headline">{_e(rec["sentence"])}</p>',
             f'<p class="meta">{_e(_title(doc))}; errors within {slo["max_error_rate"]:g}; '
             f'latency {_e(slo.get("latency"))}; {doc["search"]["rounds"]} round(s) of '
             f'{doc["search"]["duration_s"]:g} s per point</p>']
    if doc.get("below_min_capacity"):
        parts.append(f'<p class="does-not-hold">Below --min-capacity '
                     f'{doc["min_capacity"]:g} req/s: the gate is missed.</p>')
    svg = capacity_figure(doc)
    if svg is not None:
        parts.append(f"<figure>{svg}<figcaption>Each candidate's capacity within "
                     f"{_e(slo['text'])}: the throughput served at the highest arrival rate "
                     "whose rounds met the target (their median), with the rounds' 95% "
                     "interval; the ring is the lowest offered rate that missed it."
                     "</figcaption></figure>")
    rows = []
    for c in doc["candidates"]:
        ci = c["ci"]
        path = " → ".join(f"{p['rate']:g}{'✓' if p['met'] else '✗'}" for p in c["points"])
        cap = c["capacity_rps"]
        rows.append(
            f'<tr><td class="l">{_e(c["label"])}</td>'
            f"<td>{_e(None if cap is None else f'{cap:,.1f}')}</td>"
            f"<td>{_e(f'{ci[0]:,.1f} – {ci[1]:,.1f}' if ci else None)}</td>"
            f"<td>{_e(c.get('rate_met'))}</td><td>{_e(c.get('rate_missed'))}</td>"
            f'<td class="l">{"best" if c["label"] == rec.get("best") else ""}'
            f'{"dominated" if c.get("dominated") else ""}</td>'
            f'<td class="l">{_e(c["stopped"])}</td><td class="l">{_e(path)}</td></tr>')
    parts.append(
        '<table class="candidates"><tr><th class="l">candidate</th><th>capacity req/s</th>'
        '<th>95% interval</th><th>rate met</th><th>rate missed</th><th class="l"></th>'
        '<th class="l">why it stopped</th><th class="l">search path (req/s offered)</th>'
        f"</tr>{''.join(rows)}</table>")
    svg = path_figure(doc)
    if svg is not None:
        parts.append("<h3>Search path</h3>"
                     f"<figure>{svg}<figcaption>The ramp doubles the rate until a point "
                     "misses the target, then bisects between the last rate met and the "
                     "first missed; each mark is one point measured in rounds (its tooltip "
                     "has the figures and what limited it).</figcaption></figure>")
    branches = "".join(
        f'<tr><td class="l">{_e(b["branch"])}</td><td class="l">'
        f'{_e(", ".join(map(str, b["workers"])))}</td><td class="l">{_e(b["stopped"])}</td>'
        f'<td class="l">{_e(b["fit"])}</td></tr>' for b in doc.get("branches") or [])
    parts.append("<h3>Branches</h3><table><tr><th class='l'>branch</th><th class='l'>"
                 "workers measured</th><th class='l'>why the walk stopped</th><th "
                 f"class='l'>USL fit along the workers</th></tr>{branches}</table>")
    for branch, rounds, law in branch_fits(doc):
        parts.append(f"<h3>{_e(branch)}: the USL fit along the workers</h3><figure>"
                     f"{fit_figure(branch, rounds, law)}<figcaption>{_e(law.describe())}"
                     "</figcaption></figure>")
    return "".join(parts)
