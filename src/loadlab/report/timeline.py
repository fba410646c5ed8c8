"""Per run, over time: what the server and the clients did, the warm-up shaded.

From the runner's scrapes of the service (``raw/*.samples.json``) and Locust's answers
per second; event-loop lag, thread-pool and database-pool panels appear only when the
service reported them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loadlab.report import svg
from loadlab.report.concurrency import client_in_flight
from loadlab.report.figures import colour
from loadlab.report.rundata import Timeline
from loadlab.runs.record import Run

COLS, PANEL_W, PANEL_H, GAP_X, GAP_Y = 3, 270.0, 120.0, 78.0, 86.0
GREY, ORANGE, RED = "#6b7280", "#d97706", "#dc2626"
Draw = Callable[[svg.Panel], None]


class _Spec:
    def __init__(self, title: str, unit: str, values: Sequence[float | None],
                 draw: Draw, legend: Sequence[tuple[str, str, str]] = (),
                 zero: bool = True, allow_log: bool = False) -> None:
        self.title, self.unit, self.values, self.draw = title, unit, values, draw
        self.legend, self.zero, self.allow_log = legend, zero, allow_log


def _vals(*groups: Sequence[float | None]) -> list[float]:
    return [float(v) for g in groups for v in g if v is not None]


def _panels(run: Run, tl: Timeline) -> list[_Spec]:
    main = colour(run)
    light = colour(run, 1)
    specs: list[_Spec] = []

    def line(xs: Sequence[float], ys: Sequence[float | None], c: str, dash: str = "",
             step: bool = False) -> Draw:
        return lambda p: p.series(svg.Series(xs, ys, c, dash=dash, step=step))

    def both(*draws: Draw) -> Draw:
        def draw(p: svg.Panel) -> None:
            for d in draws:
                d(p)
        return draw

    specs.append(_Spec(
        "Throughput", "requests / s", _vals(tl.server_rps, tl.client_rps),
        both(line(tl.t, tl.server_rps, main), line(tl.client_t, tl.client_rps, light, "4 3")),
        [("server", main, ""), ("clients", light, "4 3")] if tl.client_rps
        else [("server", main, "")]))
    client = run["latency_ms"].get("p50")

    def client_p50(p: svg.Panel) -> None:
        if client:
            p.hline(float(client), GREY)

    legend = [("server p50", main, ""), ("server p95", ORANGE, "")]
    if client:
        legend.append(("clients p50", GREY, "4 3"))
    specs.append(_Spec(
        "Latency", "ms", _vals(tl.p50_ms, tl.p95_ms, [client] if client else []),
        both(line(tl.t, tl.p50_ms, main), line(tl.t, tl.p95_ms, ORANGE), client_p50),
        legend, allow_log=True))
    held = client_in_flight(run)

    def waiting(p: svg.Panel) -> None:
        if held > 0:
            p.hline(held, GREY)

    specs.append(_Spec(
        "Requests at once", "requests", _vals(tl.users, tl.served, [held]),
        both(line(tl.users_t, tl.users, light, "2 2"), line(tl.t, tl.served, main), waiting),
        [("users", light, "2 2"), ("served", main, ""), ("waiting (clients)", GREY, "4 3")],
        allow_log=True))
    limit = tl.cpu_limit

    def cap(p: svg.Panel) -> None:
        if limit:
            p.hline(limit, RED)
        else:
            p.c.text(p.x + p.w - 6, p.y + 13, "no limit", size=10, anchor="end", colour=GREY)

    specs.append(_Spec(
        "CPU used", "cores", _vals(tl.cpu_cores, [limit] if limit else []),
        both(line(tl.t, tl.cpu_cores, main), cap),
        [("used", main, "")] + ([("limit", RED, "4 3")] if limit else [])))
    specs.append(_Spec("Memory (PSS, all workers)", "MB", _vals(tl.memory_mb),
                       line(tl.t, tl.memory_mb, main), zero=False))
    if tl.loop_lag_ms is not None:
        specs.append(_Spec("Event-loop lag p95", "ms", _vals(tl.loop_lag_ms),
                           line(tl.t, tl.loop_lag_ms, main), allow_log=True))
    if tl.threadpool_busy is not None:
        size = tl.threadpool_size
        specs.append(_Spec(
            "Thread pool in use", "threads", _vals(tl.threadpool_busy, [size] if size else []),
            both(line(tl.t, tl.threadpool_busy, main, step=True),
                 (lambda p: p.hline(size, GREY)) if size else (lambda p: None)),
            [("busy", main, "")] + ([("size", GREY, "4 3")] if size else [])))
    if tl.db_pool_in_use is not None:
        pool = tl.db_pool_size
        specs.append(_Spec(
            "Database pool in use", "connections", _vals(tl.db_pool_in_use,
                                                         [pool] if pool else []),
            both(line(tl.t, tl.db_pool_in_use, main, step=True),
                 (lambda p: p.hline(pool, GREY)) if pool else (lambda p: None)),
            [("in use", main, "")] + ([("size", GREY, "4 3")] if pool else [])))
    return specs


def figure(run: Run, tl: Timeline, title: str) -> str:
    specs = _panels(run, tl)
    rows = (len(specs) + COLS - 1) // COLS
    width = 60 + COLS * PANEL_W + (COLS - 1) * GAP_X + 20
    height = 30 + rows * (PANEL_H + GAP_Y)
    c = svg.Canvas(width, height, f"over time: {title}")
    x_hi = max(tl.end, *(tl.client_t or [0.0]))
    for i, spec in enumerate(specs):
        x = 60 + (i % COLS) * (PANEL_W + GAP_X)
        y = 30 + (i // COLS) * (PANEL_H + GAP_Y)
        values = [v for v in spec.values if v is not None]
        log = spec.allow_log and svg.spans_decades(values)
        if log:
            yr = svg.log_range(values)
        elif spec.zero or not values:
            yr = (0.0, svg.nice_max(max(values, default=1.0)))
        else:
            lo, hi = min(values), max(values)
            pad = max((hi - lo) * 0.15, hi * 0.02, 0.5)
            ticks = svg.nice_ticks(lo - pad, hi + pad, 4)
            yr = (ticks[0], ticks[-1]) if len(ticks) > 1 else (lo - pad, hi + pad)
        xs, ys = svg.Panel.scales(x, y, PANEL_W, PANEL_H, (0.0, x_hi), yr, ylog=log)
        panel = svg.Panel(c, x, y, PANEL_W, PANEL_H, xs, ys)
        panel.band(0.0, tl.measured_from, "warm-up")
        panel.frame(spec.title, "s since the load began",
                    spec.unit + (" (log)" if log else ""))
        spec.draw(panel)
        if spec.legend:
            panel.legend(spec.legend)
    return c.render()
