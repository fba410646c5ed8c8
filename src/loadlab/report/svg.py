"""A few chart primitives written straight to SVG text.

The report draws a figure per run; matplotlib takes about half a second for each, which
would make a 100-run report take close to a minute. These panels take a millisecond, have
real ``<text>`` (small, searchable, the page's own font), and need no script to show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

GRID = "#e5e7eb"
AXIS = "#6b7280"
INK = "#1f2937"
FONT = "font-family:system-ui,sans-serif"


def spans_decades(values: Sequence[float], decades: float = 1.5) -> bool:
    """Whether positive values spread over enough orders of magnitude to need a log axis."""
    positive = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) >= 10 ** decades


def fmt(value: float) -> str:
    """A tick or value label: 1.5k, 950, 52, 2.6, 0.05."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    if a >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def ms(value: float) -> str:
    """A latency for a sentence: 52 ms, 2.6 s."""
    return f"{value / 1000:.2g} s" if value >= 1000 else f"{value:.3g} ms"


@dataclass
class Scale:
    lo: float
    hi: float
    p0: float  # pixel of lo
    p1: float  # pixel of hi
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo = max(self.lo, 1e-9)
            self.hi = max(self.hi, self.lo * 1.0001)
        elif self.hi <= self.lo:
            self.hi = self.lo + 1.0

    def __call__(self, v: float) -> float:
        if self.log:
            f = (math.log10(max(v, self.lo)) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.p0 + f * (self.p1 - self.p0)

    def ticks(self, n: int = 5) -> list[float]:
        if self.log:
            first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            found: list[float] = []
            for d in range(first, last + 1):
                for m in ((1, 2, 5) if last - first <= 2 else (1,)):
                    v = m * 10.0 ** d
                    if self.lo * 0.999 <= v <= self.hi * 1.001:
                        found.append(v)
            return found
        return nice_ticks(self.lo, self.hi, n)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - start) / step + 1e-9) + 1
    return [round(start + i * step, 10) for i in range(count)]


def nice_max(hi: float) -> float:
    """A round upper limit just above ``hi`` (for axes that start at zero)."""
    if hi <= 0:
        return 1.0
    ticks = nice_ticks(0.0, hi * 1.08, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else hi
    return ticks[-1] if ticks[-1] >= hi else ticks[-1] + step


def log_range(values: Sequence[float]) -> tuple[float, float]:
    positive = [v for v in values if v > 0]
    lo, hi = min(positive), max(positive)
    return 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))


@dataclass
class Canvas:
    width: float
    height: float
    label: str  # what the figure shows, for screen readers and tests
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, text: str, *, size: float = 11, anchor: str = "start",
             colour: str = INK, weight: str = "normal", rotate: bool = False) -> None:
        transform = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'fill="{colour}" font-weight="{weight}"{transform}>{escape(text)}</text>')

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
                f'aria-label="{escape(self.label)}" viewBox="0 0 {self.width:.0f} '
                f'{self.height:.0f}" width="{self.width:.0f}" height="{self.height:.0f}" '
                f'style="{FONT}">' + "".join(self.parts) + "</svg>")


@dataclass
class Series:
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str
    label: str = ""
    dash: str = ""
    width: float = 1.8
    points: bool = False
    step: bool = False


class Panel:
    """One plot area with axes, grid, ticks with units, a title and a legend."""

    def __init__(self, canvas: Canvas, x: float, y: float, w: float, h: float,
                 xs: Scale | None = None, ys: Scale | None = None) -> None:
        self.c = canvas
        self.x, self.y, self.w, self.h = x, y, w, h
        self.xs = xs or Scale(0, 1, x, x + w)
        self.ys = ys or Scale(0, 1, y + h, y)

    @staticmethod
    def scales(x: float, y: float, w: float, h: float, xr: tuple[float, float],
               yr: tuple[float, float], xlog: bool = False, ylog: bool = False,
               ) -> tuple[Scale, Scale]:
        return Scale(xr[0], xr[1], x, x + w, xlog), Scale(yr[0], yr[1], y + h, y, ylog)

    def frame(self, title: str, xlabel: str, ylabel: str, *, xticks: bool = True,
              yticks: bool = True) -> None:
        c, x, y, w, h = self.c, self.x, self.y, self.w, self.h
        c.text(x, y - (16 if h > 400 else 8), title, size=12, weight="600")
        if yticks:
            for v in self.ys.ticks():
                py = self.ys(v)
                c.add(f'<line x1="{x:.1f}" y1="{py:.1f}" x2="{x + w:.1f}" y2="{py:.1f}" '
                      f'stroke="{GRID}"/>')
                c.text(x - 5, py + 3.5, fmt(v), size=10, anchor="end", colour=AXIS)
        if xticks:
            for v in self.xs.ticks():
                px = self.xs(v)
                c.add(f'<line x1="{px:.1f}" y1="{y:.1f}" x2="{px:.1f}" y2="{y + h:.1f}" '
                      f'stroke="{GRID}"/>')
                c.text(px, y + h + 13, fmt(v), size=10, anchor="middle", colour=AXIS)
                if h > 400:  # a tall figure: the scale at its top as well
                    c.text(px, y - 3, fmt(v), size=9, anchor="middle", colour=AXIS)
        c.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="none" '
              f'stroke="{AXIS}" stroke-width="0.8"/>')
        if xlabel:
            c.text(x + w / 2, y + h + 28, xlabel, size=10.5, anchor="middle", colour=AXIS)
        if ylabel:
            c.text(x - 38, y + h / 2, ylabel, size=10.5, anchor="middle", colour=AXIS,
                   rotate=True)

    def band(self, x0: float, x1: float, label: str) -> None:
        a, b = self.xs(max(x0, self.xs.lo)), self.xs(min(x1, self.xs.hi))
        if b <= a:
            return
        self.c.add(f'<rect class="warmup" x="{a:.1f}" y="{self.y:.1f}" width="{b - a:.1f}" '
                   f'height="{self.h:.1f}" fill="#f3f4f6"><title>{escape(label)}</title></rect>')
        if b - a > 40:
            self.c.text((a + b) / 2, self.y + 12, label, size=9, anchor="middle",
                        colour="#9ca3af")

    def hline(self, value: float, colour: str, dash: str = "4 3") -> None:
        py = self.ys(value)
        self.c.add(f'<line x1="{self.x:.1f}" y1="{py:.1f}" x2="{self.x + self.w:.1f}" '
                   f'y2="{py:.1f}" stroke="{colour}" stroke-dasharray="{dash}" '
                   f'stroke-width="1.2"/>')

    def series(self, s: Series) -> None:
        pts: list[list[tuple[float, float]]] = [[]]
        for xv, yv in zip(s.xs, s.ys, strict=True):
            if yv is None or not math.isfinite(yv) or (self.ys.log and yv <= 0):
                if pts[-1]:
                    pts.append([])
                continue
            px = min(max(self.xs(xv), self.x), self.x + self.w)
            py = min(max(self.ys(yv), self.y), self.y + self.h)
            if s.step and pts[-1]:
                pts[-1].append((px, pts[-1][-1][1]))
            pts[-1].append((px, py))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for run in pts:
            if len(run) >= 2:
                d = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                self.c.add(f'<polyline class="data" points="{d}" fill="none" '
                           f'stroke="{s.colour}" stroke-width="{s.width}"{dash} '
                           'stroke-linejoin="round"/>')
            if s.points or len(run) == 1:
                for px, py in run:
                    self.c.add(f'<circle class="data" cx="{px:.1f}" cy="{py:.1f}" r="2.6" '
                               f'fill="{s.colour}"/>')

    def legend(self, items: Sequence[tuple[str, str, str]]) -> None:
        """(label, colour, dash) entries in a row under the panel's axis label."""
        x, y = self.x, self.y + self.h + 46
        for label, colour, dash in items:
            d = f' stroke-dasharray="{dash}"' if dash else ""
            self.c.add(f'<line x1="{x:.1f}" y1="{y - 3.5:.1f}" x2="{x + 16:.1f}" '
                       f'y2="{y - 3.5:.1f}" stroke="{colour}" stroke-width="2.2"{d}/>')
            self.c.text(x + 20, y, label, size=10)
            x += 32 + len(label) * 5.6


def row_labels(canvas: Canvas, labels: Sequence[str], x: float, y0: float, row_h: float,
               colours: Sequence[str]) -> None:
    for i, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        cy = y0 + (i + 0.5) * row_h
        canvas.add(f'<rect x="{x:.1f}" y="{cy - 4:.1f}" width="8" height="8" rx="1.5" '
                   f'fill="{colour}"/>')
        canvas.text(x + 13, cy + 4, label, size=11)


@dataclass
class Rows:
    """A figure of one row per run: a label column, then panels side by side."""

    labels: Sequence[str]
    colours: Sequence[str]
    panels: int
    width: float = 1040
    title_h: float = 26
    bottom_h: float = 54

    def __post_init__(self) -> None:
        n = len(self.labels)
        self.row_h = 34.0 if n <= 4 else 24.0 if n <= 12 else 16.0
        self.label_w = min(max((len(s) for s in self.labels), default=10) * 6.3 + 24, 420)
        gap = 56.0
        self.panel_w = (self.width - self.label_w - 10 - gap * (self.panels - 1)) / self.panels
        self.gap = gap
        self.plot_h = self.row_h * n
        self.height = self.title_h + self.plot_h + self.bottom_h

    def canvas(self, label: str) -> Canvas:
        c = Canvas(self.width, self.height, label)
        row_labels(c, self.labels, 4, self.title_h, self.row_h, self.colours)
        return c

    def panel(self, c: Canvas, i: int, xr: tuple[float, float], log: bool = False) -> Panel:
        x = self.label_w + i * (self.panel_w + self.gap)
        xs = Scale(xr[0], xr[1], x, x + self.panel_w, log)
        ys = Scale(0, len(self.labels), self.title_h, self.title_h + self.plot_h)
        return Panel(c, x, self.title_h, self.panel_w, self.plot_h, xs, ys)

    def cy(self, i: int) -> float:
        return self.title_h + (i + 0.5) * self.row_h


def bar(panel: Panel, row_y: float, row_h: float, value: float, colour: str,
        text: str = "") -> None:
    x0 = panel.xs(panel.xs.lo)
    x1 = panel.xs(value)
    h = row_h * 0.62
    panel.c.add(f'<rect class="data" x="{x0:.1f}" y="{row_y - h / 2:.1f}" '
                f'width="{max(x1 - x0, 1):.1f}" height="{h:.1f}" fill="{colour}" '
                f'fill-opacity="0.85"><title>{escape(text)}</title></rect>')
    if text:
        inside = x1 - x0 > panel.w * 0.75
        panel.c.text(x1 - 4 if inside else x1 + 4, row_y + 3.8, text, size=10,
                     anchor="end" if inside else "start", colour="white" if inside else INK)


def marker(panel: Panel, x: float, y: float, shape: str, colour: str, title: str) -> None:
    px = panel.xs(x)
    t = f"<title>{escape(title)}</title>"
    if shape == "circle":
        panel.c.add(f'<circle class="data" cx="{px:.1f}" cy="{y:.1f}" r="4" '
                    f'fill="{colour}">{t}</circle>')
    elif shape == "ring":
        panel.c.add(f'<circle class="data" cx="{px:.1f}" cy="{y:.1f}" r="4" fill="white" '
                    f'stroke="{colour}" stroke-width="1.8">{t}</circle>')
    else:  # tick
        panel.c.add(f'<line class="data" x1="{px:.1f}" y1="{y - 6:.1f}" x2="{px:.1f}" '
                    f'y2="{y + 6:.1f}" stroke="{colour}" stroke-width="2.4">{t}</line>')


def marker_legend(c: Canvas, x: float, y: float, items: Sequence[tuple[str, str]]) -> None:
    """(shape, label) entries in a row, in grey."""
    for shape, label in items:
        p = Panel(c, 0, 0, 1, 1, Scale(0, 1, x, x + 1))
        marker(p, 0, y - 3.5, shape, AXIS, label)
        c.text(x + 8, y, label, size=10, colour=AXIS)
        x += 16 + len(label) * 6
