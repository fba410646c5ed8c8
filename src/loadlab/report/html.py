"""report.html: one self-contained page (inline SVG, inline CSS, no script, no network).

The page is a list of sections, each built from the results by one function of
``BUILDERS``; a builder that has nothing to draw returns None and its section is left out.
Another module adds a section by passing its own list (``render(..., builders=[...])``)
or by calling ``add_section`` before the report is written, e.g. a comparison with a
baseline placed after the overview.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadlab.fileio import atomic_write
from loadlab.report import distribution, figures, headline, sizing, timeline
from loadlab.report.concurrency import memory_per_request, served
from loadlab.report.fitplot import scaling_section
from loadlab.report.rundata import timeline as load_timeline
from loadlab.runs.record import Run, SizeDoc, Summary, read_runs, variant_label
from loadlab.runs.store import ResultsError, load_summary

CSS = """
body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:1080px;color:#1f2937;
padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.3rem}h2{font-size:1.2rem;margin-top:2.4rem;
border-bottom:1px solid #e5e7eb;padding-bottom:.2rem}h3{font-size:1rem;margin:1.4rem 0 .2rem}
p.headline{font-size:1.12rem;line-height:1.55;margin:.5rem 0;max-width:62rem}
p.meta{color:#6b7280;margin-top:0}
table{border-collapse:collapse;font-size:12px;margin:.6rem 0}
td,th{border:1px solid #e5e7eb;padding:3px 7px;text-align:right}
th{background:#f9fafb}td.l,th.l{text-align:left}
.holds{color:#047857;font-weight:600}.does-not-hold{color:#b91c1c;font-weight:600}
.inconclusive{color:#92400e;font-weight:600}.failed{color:#b91c1c}
figure{margin:.8rem 0 1.4rem}figure svg{max-width:100%;height:auto}
figcaption,.note{color:#6b7280;font-size:13px}
details{margin:.3rem 0}summary{cursor:pointer;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{font-weight:600}
nav{font-size:13px;color:#6b7280}nav a{color:#2563eb;margin-right:.8rem}
"""
OPEN_TIMELINES = 4  # more runs than this: each run's figures fold away (<details>)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str


@dataclass
class ReportData:
    summary: Summary  # its runs read by read_runs (every table present)
    runs: list[Run]  # the ones that finished ok, in order
    claims: list[dict[str, Any]] | None
    directory: Path

    @property
    def every(self) -> list[Run]:
        """Every run, in order, whatever its status."""
        every: list[Run] = self.summary["runs"]
        return every


Builder = Callable[[ReportData], Section | None]


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _headline(data: ReportData) -> Section | None:
    lines = headline.sentences(headline.with_locust_defaults(data.every,
                                                             data.directory))
    if not lines:
        return None
    return Section("headline", "", "".join(f'<p class="headline">{_e(s)}</p>' for s in lines))


def _overview(data: ReportData) -> Section | None:
    runs = headline.with_locust_defaults(data.runs, data.directory)
    svg = figures.overview(runs)
    if svg is None:
        return None
    _, shared = figures.labels(runs)
    caption = ("Every run side by side: throughput (bars) and latency percentiles as the "
               "clients saw them, over the measured window")
    return Section("overview", "Side by side",
                   _figure(svg, caption + (f"; all runs: {shared}." if shared else ".")))


def _claims(data: ReportData) -> Section | None:
    if not data.claims:
        return None
    rows = "".join(
        f'<tr><td class="l">{_e(c["id"])}</td><td class="l">{_e(c["claim"])}</td>'
        f'<td class="l {c["verdict"].replace(" ", "-")}">{_e(c["verdict"])}</td>'
        f'<td class="l">{_e(c["evidence"])}</td></tr>'
        for c in data.claims
    )
    return Section("claims", "Claims", (
        '<table><tr><th class="l">id</th><th class="l">claim</th><th class="l">verdict</th>'
        f'<th class="l">evidence</th></tr>{rows}</table>'))


def _timelines(data: ReportData) -> Section | None:
    runs = headline.with_locust_defaults(data.runs, data.directory)
    names, _ = figures.labels(runs)
    parts = []
    for run, name in zip(runs, names, strict=True):
        line = load_timeline(data.directory, run)
        if line is None:
            continue
        svg = timeline.figure(run, line, name)
        limit = f", {figures.cpus_text(run)}" if run.get("cpus") else ""
        title = f"{variant_label(run, 'prose')} — {headline.load(run)}{limit}"
        if len(runs) > OPEN_TIMELINES:
            parts.append(f"<details><summary>{_e(title)}</summary>{_figure(svg, '')}</details>")
        else:
            parts.append(f"<h3>{_e(title)}</h3>{_figure(svg, '')}")
    if not parts:
        return None
    intro = ('<p class="note">From the runner\'s scrapes of the service (about one a second; '
             "a queued sync worker answers later) and Locust's answers per second. The "
             "shaded band is the warm-up, left out of every other figure in this report. "
             "Server latency is the time in the application, from its histogram (buckets "
             "of 0.1, 0.25, 0.5 ms … 50, 100, 250 ms …) interpolated as Prometheus does, "
             "so it is only as fine as a bucket; the clients' p50 adds the time spent "
             "queued in front of the server. Served requests are the server's own "
             "http_requests_in_progress (plus the scrape, where a worker answered it); the "
             "users and the requests waiting at the clients (throughput × mean latency) "
             "count the queue too.</p>")
    return Section("over-time", "Over time", intro + "".join(parts))


def _distributions(data: ReportData) -> Section | None:
    runs = headline.with_locust_defaults(data.runs, data.directory)
    groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        groups[headline.load_key(run)].append(run)
    parts = []
    for group in groups.values():
        title = headline.load(group[0]) + (
            f", {figures.cpus_text(group[0])}" if group[0].get("cpus") else "")
        svg = distribution.figure(data.directory, group, title)
        if svg is not None:
            parts.append(_figure(svg, f"Latency distribution, {title}: the share of "
                                      "requests answered within a time (Locust's response-"
                                      "time buckets, measured window)."))
    return Section("distribution", "Latency distribution", "".join(parts)) if parts else None


def _scaling(data: ReportData) -> Section | None:
    from loadlab.report import plots

    parts = []
    for scenario in sorted({r["scenario"] for r in data.runs}):
        svg = plots.users_figure(data.runs, scenario)
        if svg is not None:
            parts.append(f"<h3>{_e(scenario)}: against users</h3>"
                         + _figure(svg, f"{scenario}: throughput and latency against users"))
    # Cores and workers as separate series, each with the law AICc chose and its band.
    fits = scaling_section(data.runs)
    if fits:
        parts.append(fits)
    return Section("scaling", "Scaling", "".join(parts)) if parts else None


def _cpu(data: ReportData) -> Section | None:
    svg = figures.cpu(data.runs)
    if svg is None:
        return None
    return Section("cpu", "CPU", _figure(
        svg, "CPU cores the service used over the measured window against its limit; the "
             "share of CFS periods in which the kernel throttled it."))


def _memory(data: ReportData) -> Section | None:
    runs = headline.with_locust_defaults(data.runs, data.directory)
    svg = figures.memory(runs)
    if svg is None:
        return None
    return Section("memory", "Memory per request", _figure(
        svg, "Memory (PSS of the whole service, all workers) per request the server was "
             "serving (at least one): its own http_requests_in_progress averaged over the "
             "measured window, plus the scrape where a worker answered it. Right: those "
             "served requests against the requests the clients were waiting for "
             "(throughput × mean latency), which also counts the queue in front of a busy "
             "worker."))


def _interpreter(run: Run) -> str | None:
    """``3.11.7``, ``3.13.5 free-threaded, GIL off``: what served the run, from its /info
    (None for runs recorded before it was)."""
    py = run["server"].get("python")
    if not py:
        return None
    if not py.get("free_threaded"):
        return py["version"]
    gil = run["server"].get("gil_enabled")
    state = "GIL off" if gil is False else "GIL on" if gil else "GIL unknown"
    return f"{py['version']} free-threaded, {state}"


def _runs_table(data: ReportData) -> Section:
    head = ("target", "server", "class", "python", "workers", "threads", "CPU limit",
            "scenario", "users",
            "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "cores used", "throttled",
            "memory MB", "served at once", "MB / served", "status")
    body = []
    for r in data.every:
        lat, srv = r["latency_ms"], r["server"]
        mem, share, held = srv.get("memory_bytes"), srv.get("throttled_share"), served(r)
        per = memory_per_request(r)
        cells = (r["target"], srv.get("name"), r["worker_class"], _interpreter(r),
                 r["workers"], r["threads"], figures.cpus_text(r), r["scenario"], r["users"],
                 f"{r['rps']:,.1f}",
                 lat.get("p50"), lat.get("p95"), lat.get("p99"), r.get("failures"),
                 srv.get("cpu_cores_used"), f"{share:.1%}" if share is not None else None,
                 f"{mem / 1e6:,.0f}" if mem else None,
                 f"{held:.3g}" if held is not None else None,
                 f"{per / 1e6:.3g}" if per is not None else None,
                 r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error')}")
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return Section("runs", "Runs", "<table><tr>" + "".join(f"<th>{h}</th>" for h in head)
                   + "</tr>" + "".join(body) + "</table>")


def _manifest(data: ReportData) -> Section:
    m = data.summary.get("manifest") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    rows = [
        ("git commit", m.get("git_commit")), ("CPU", m.get("cpu_model")),
        ("cores", m.get("cores")), ("cgroup", m.get("cgroup_version")),
        ("runtime", m.get("runtime")), ("placement", m.get("placement")),
        ("limits applied", json.dumps(m.get("limits_applied"))),
        ("load generator peak CPU", f"{m.get('load_generator_peak_cpu_percent', 0):.0f} %"),
        ("versions", versions),
        ("commands", "; ".join(c for c in m.get("command_lines") or [] if c is not None)),
    ]
    return Section("machine", "Machine and software", "<dl>" + "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>")


def _size(data: ReportData) -> Section | None:
    """A results directory that also holds size.json: the sizing after the headline."""
    doc = sizing.read_size(data.directory)
    return None if doc is None else Section("size", "Sizing", sizing.section_body(doc))


BUILDERS: list[Builder] = [
    _headline, _size, _overview, _claims, _timelines, _distributions, _scaling, _cpu, _memory,
    _runs_table, _manifest,
]


def add_section(builder: Builder, after: str = "_overview") -> None:
    """Put another section into every report, after the builder named ``after``."""
    names = [b.__name__ for b in BUILDERS]
    BUILDERS.insert(names.index(after) + 1 if after in names else len(BUILDERS), builder)


def sections(data: ReportData, builders: list[Builder] | None = None) -> list[Section]:
    return [s for b in (builders or BUILDERS) if (s := b(data)) is not None]


def page(found: list[Section], meta: str, title: str = "loadlab report") -> str:
    """The page around its sections: the untitled one first (a headline), then the nav."""
    titled = [s for s in found if s.title]
    nav = "<nav>" + "".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in titled) + "</nav>"
    body = [f"<h1>{_e(title)}</h1>{meta}"]
    for s in found:
        if not s.title:
            body.append(f'<section id="{s.id}">{s.body}</section>{nav}')
        else:
            body.append(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>{s.body}</section>')
    if not any(not s.title for s in found):
        body.insert(1, nav)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def render(summary: Summary, claims: list[dict[str, Any]] | None,
           directory: Path | None = None, builders: list[Builder] | None = None) -> str:
    every = read_runs(summary)
    summary = {**summary, "runs": every}
    runs = [r for r in every if r.get("status") == "ok" and r.get("rps")]
    data = ReportData(summary, runs, claims, directory or Path("."))
    found = sections(data, builders)
    began = min((str(r["started_at"]) for r in summary["runs"] if r.get("started_at")),
                default="")
    meta = (f'<p class="meta">{len(summary["runs"])} runs, {len(runs)} ok'
            + (f" · first began {_e(began)}" if began else "") + "</p>")
    return page(found, meta)


def _points_table(doc: SizeDoc) -> Section | None:
    """Every point measured, in order, and where its runs are (points/NNN-…/)."""
    rows = []
    for cand in doc["candidates"]:
        for p in cand["points"]:
            cells = (cand["label"], f"{p['rate']:g}", "met" if p["met"] else "missed",
                     None if p.get("rps") is None else f"{p['rps']:,.1f}",
                     None if p.get("latency_ms") is None else f"{p['latency_ms']:,.1f}",
                     None if p.get("error_rate") is None else f"{p['error_rate']:.2%}",
                     len(p.get("rps_rounds") or []), p.get("evidence"), p.get("results"))
            rows.append("<tr>" + "".join(
                f'<td class="{"l" if i in (0, 2, 7, 8) else ""}">{_e(c)}</td>'
                for i, c in enumerate(cells)) + "</tr>")
    if not rows:
        return None
    head = ("candidate", "offered req/s", "target", "served req/s",
            f"{doc['slo']['percentile']} ms", "errors", "rounds", "limited by", "results")
    return Section("points", "Points measured", "<table><tr>" + "".join(
        f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def render_size(doc: SizeDoc, directory: Path) -> str:
    """The report of a ``loadlab size`` directory: the sizing, every point measured, and
    the machine (from the first point's runs)."""
    found = [Section("size", "Sizing", sizing.section_body(doc))]
    points = _points_table(doc)
    if points is not None:
        found.append(points)
    first = next((p.get("results") for c in doc["candidates"] for p in c["points"]
                  if p.get("results")), None)
    if first is not None:
        try:
            summary = load_summary(directory / str(first))
        except ResultsError:
            summary = None
        if summary is not None:
            found.append(_manifest(ReportData({**summary}, [], None, directory)))
    count = sum(len(c["points"]) for c in doc["candidates"])
    meta = (f'<p class="meta">loadlab size: {len(doc["candidates"])} candidates, {count} '
            "points</p>")
    return page(found, meta, "loadlab size report")


def write_report(directory: Path) -> Path:
    """report.html of a results directory; a ``loadlab size`` directory (size.json, no
    summary.json of its own) gets the sizing report."""
    if not (directory / "summary.json").exists() and (directory / sizing.SIZE_FILE).exists():
        return write_size_report(directory)
    summary = load_summary(directory)
    claims_path = directory / "claims.json"
    claims = None
    if claims_path.exists():
        try:
            claims = json.loads(claims_path.read_text())
        except ValueError:
            claims = None
    out = directory / "report.html"
    atomic_write(out, render(summary, claims, directory))
    return out


def write_size_report(directory: Path, doc: SizeDoc | None = None) -> Path:
    """report.html of a ``loadlab size`` directory (``doc``: its size.json, read if None)."""
    doc = doc if doc is not None else sizing.read_size(directory)
    if doc is None:
        raise ResultsError(f"{directory / sizing.SIZE_FILE} is not a loadlab size document")
    try:
        page_text = render_size(doc, directory)
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # a hand-edited size.json
        raise ResultsError(f"{directory / sizing.SIZE_FILE} lacks what the report reads "
                           f"({type(exc).__name__}: {exc})") from None
    out = directory / "report.html"
    atomic_write(out, page_text)
    return out


def report_command(results_dir: str) -> int:
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ResultsError(f"{directory} is not a directory")
    print(f"report: {write_report(directory)}")
    return 0
