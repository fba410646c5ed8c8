"""report.html: one self-contained page (inline SVG, inline CSS, nothing from the network)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from loadlab.report.results import ResultsError, atomic_write, load_summary

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2937}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;font-size:12px;margin:.6rem 0}
td,th{border:1px solid #e5e7eb;padding:3px 7px;text-align:right}
th{background:#f9fafb}td.l,th.l{text-align:left}
.holds{color:#047857;font-weight:600}.does-not-hold{color:#b91c1c;font-weight:600}
.inconclusive{color:#92400e;font-weight:600}.failed{color:#b91c1c}
figure{margin:.8rem 0}figure svg{max-width:100%;height:auto}.note{color:#6b7280}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{font-weight:600}
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return f'<p class="note">{_e(caption)}: not enough runs for this figure.</p>'
    return f'<figure>{svg}<figcaption class="note">{_e(caption)}</figcaption></figure>'


def _manifest(m: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    rows = [
        ("git commit", m.get("git_commit")), ("CPU", m.get("cpu_model")),
        ("cores", m.get("cores")), ("cgroup", m.get("cgroup_version")),
        ("runtime", m.get("runtime")), ("placement", m.get("placement")),
        ("limits applied", json.dumps(m.get("limits_applied"))),
        ("load generator peak CPU", f"{m.get('load_generator_peak_cpu_percent', 0):.0f} %"),
        ("versions", versions), ("commands", "; ".join(m.get("command_lines") or [])),
    ]
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _claims(claims: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr><td class="l">{_e(c["id"])}</td><td class="l">{_e(c["claim"])}</td>'
        f'<td class="l {c["verdict"].replace(" ", "-")}">{_e(c["verdict"])}</td>'
        f'<td class="l">{_e(c["evidence"])}</td></tr>'
        for c in claims
    )
    return ('<table><tr><th class="l">id</th><th class="l">claim</th><th class="l">verdict</th>'
            f'<th class="l">evidence</th></tr>{rows}</table>')


def _runs_table(runs: list[dict[str, Any]]) -> str:
    head = ("target", "class", "workers", "threads", "cpus", "scenario", "users", "req/s",
            "p50", "p95", "p99", "errors", "CPU used", "throttled", "memory MB", "status")
    body = []
    for r in runs:
        lat, srv = r.get("latency_ms") or {}, r.get("server") or {}
        mem = srv.get("memory_bytes")
        share = srv.get("throttled_share")
        cells = (r["target"], r["worker_class"], r["workers"], r["threads"], r["cpus"] or "-",
                 r["scenario"], r["users"], f"{r['rps']:,.1f}", lat.get("p50"), lat.get("p95"),
                 lat.get("p99"), r.get("failures"), srv.get("cpu_cores_used"),
                 f"{share:.1%}" if share is not None else None,
                 f"{mem / 1e6:,.0f}" if mem else None,
                 r["status"] if r["status"] == "ok" else f"failed: {r.get('error')}")
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table>")


def render(summary: dict[str, Any], claims: list[dict[str, Any]] | None) -> str:
    from loadlab.report import plots

    runs = plots.ok_runs(summary["runs"])
    parts = [f"<h1>loadlab report</h1><p>{len(summary['runs'])} runs, {len(runs)} ok.</p>"]
    if claims:
        parts.append("<h2>Claims</h2>" + _claims(claims))
    for scenario in sorted({r["scenario"] for r in runs}):
        parts.append(f"<h2>Scenario {_e(scenario)}</h2>")
        parts.append(_figure(plots.users_figure(runs, scenario),
                             f"{scenario}: throughput and latency against users"))
    for axis in ("workers", "cpus"):
        svg, fitted = plots.scaling_figure(runs, axis)
        parts.append(f"<h2>Throughput against {axis}</h2>")
        parts.append(_figure(svg, f"throughput against {axis}, FastAPI and Flask side by side; "
                                  "lines: Amdahl (dotted) and USL (solid) fits"))
        if fitted:
            parts.append("<table><tr><th class='l'>series</th><th class='l'>fit</th></tr>"
                         + "".join(f"<tr><td class='l'>{_e(s)}</td><td class='l'>"
                                   f"{_e(f.describe())}</td></tr>" for s, f in fitted)
                         + "</table>")
    parts.append("<h2>CPU</h2>" + _figure(plots.cpu_figure(runs),
                                          "CPU used against the limit; throttled share"))
    parts.append("<h2>Memory</h2>" + _figure(
        plots.memory_figure(runs),
        "memory (PSS of the whole service) per request in flight (throughput × mean latency)"))
    parts.append("<h2>Runs</h2>" + _runs_table(summary["runs"]))
    parts.append("<h2>Machine and software</h2>" + _manifest(summary.get("manifest") or {}))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>loadlab report</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_report(directory: Path) -> Path:
    summary = load_summary(directory)
    claims_path = directory / "claims.json"
    claims = None
    if claims_path.exists():
        try:
            claims = json.loads(claims_path.read_text())
        except ValueError:
            claims = None
    out = directory / "report.html"
    atomic_write(out, render(summary, claims))
    return out


def report_command(results_dir: str) -> int:
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ResultsError(f"{directory} is not a directory")
    print(f"report: {write_report(directory)}")
    return 0
