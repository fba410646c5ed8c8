"""The size section of report.html: a recorded ``loadlab size`` run (tests/fixtures/size,
flask io 20 ms, 4 candidates, 14 points on a busy two-core machine) rendered by
``loadlab report DIR``, its figures drawn in Chromium; and the USL fit of a branch."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.runner_cli import loadlab_here, tagged_env

from loadlab.report.html import render_size, write_report
from loadlab.report.sizing import branch_fits
from loadlab.sizing.candidates import Branch, Candidate
from loadlab.sizing.search import Point, recommend, walk_branch
from loadlab.sizing.slo import Slo

FIXTURE = Path(__file__).parent / "fixtures" / "size"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def size_dir(tmp_path: Path) -> Path:
    out = tmp_path / "size"
    shutil.copytree(FIXTURE, out)
    return out


def _section(text: str, name: str) -> str:
    start = text.index(f'<section id="{name}">')
    return text[start:text.index("</section>", start)]


def test_loadlab_report_renders_a_size_directory(size_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "loadlab", "report", str(size_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {size_dir / 'report.html'}"
    text = (size_dir / "report.html").read_text()
    doc = json.loads((size_dir / "size.json").read_text())
    size = _section(text, "size")
    # the recommendation, the target and the budget
    assert html.escape(doc["recommendation"]["sentence"], quote=False) in size
    assert "gthread 2×4 serves 56 req/s [55, 57] within p95 &lt; 100 ms" in size
    assert "flask within 2 CPUs, p95 &lt; 100 ms" in size
    # every candidate with its capacity and interval, in the table and in the figure
    rows = re.findall(r'<tr><td class="l">([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>',
                      size)
    assert rows == [("sync ×1", "28.9", "28.6 – 29.1"), ("sync ×2", "39.1", "38.8 – 39.4"),
                    ("sync ×3", "28.4", "28.2 – 28.6"), ("gthread 2×4", "56.1", "55.2 – 57.0")]
    capacity_svg = size[size.index("<svg"):size.index("</svg>")]
    assert 'aria-label="capacity of each candidate within p95 &lt; 100 ms"' in capacity_svg
    for label, cap, ci in (("gthread 2×4", "56.1", "[55.2, 57]"), ("sync ×1", "28.9",
                                                                    "[28.6, 29.1]")):
        assert f"<title>{label}: {cap} req/s {ci}</title>" in capacity_svg
    # the search path: every point measured, met or missed, in order
    assert "20✓ → 40✓ → 80✗ → 60✓" in size
    path_svg = size[size.index('aria-label="the search path of each candidate"'):]
    path_svg = path_svg[:path_svg.index("</svg>")]
    points = sum(len(c["points"]) for c in doc["candidates"])
    assert len(re.findall(r"<title>[^<]* #\d+: ", path_svg)) == points == 14
    assert "<title>sync ×1 #2: 40 req/s offered, missed, 35.6 req/s served" in path_svg
    # the branches, and no fit where the walk made none
    assert "3 workers served less than 2: 4 not tried" in size
    assert "the USL fit along the workers</h3>" not in size
    # the points and the machine, from the first point's runs
    table = _section(text, "points")
    assert table.count("<tr>") == 15 and "points/014-gthread-2-4-60" in table
    assert "Intel" in _section(text, "machine") or "cores" in _section(text, "machine")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text


def test_a_size_json_beside_a_summary_is_a_section_of_that_report(size_dir: Path,
                                                                  tmp_path: Path) -> None:
    both = tmp_path / "both"
    shutil.copytree(size_dir / "points" / "001-sync-1-20", both)
    shutil.copy(size_dir / "size.json", both / "size.json")
    text = write_report(both).read_text()
    assert '<section id="size"><h2>Sizing</h2>' in text and 'id="runs"' in text
    assert text.index('id="size"') < text.index('id="runs"')


SLO = Slo("p95", 200.0, 0.01)


def _usl(n: int) -> float:
    return 400.0 * n / (1 + 0.05 * (n - 1) + 0.02 * n * (n - 1))


def _document(walk_workers: list[int]) -> dict[str, Any]:
    """size.json's shape from the real search over a known USL curve (3 rounds a point)."""

    def measure(candidate: Candidate, rate: float) -> Point:
        cap = _usl(candidate.workers)
        met = rate <= cap
        served = min(rate, cap)
        return Point(rate, [served * 0.98, served, served * 1.02],
                     [50.0 if met else 900.0] * 3, [0.0] * 3, met)

    walk = walk_branch(Branch("sync"), walk_workers, measure, SLO, 100, 10_000, 8)
    rec = recommend(walk.outcomes, SLO, 8)
    return {
        "format": "loadlab-size/1", "target": "app", "app": "app:app", "cpus": 8.0,
        "slo": {"percentile": "p95", "limit_ms": 200.0, "max_error_rate": 0.01,
                "text": str(SLO), "latency": "from the intended send time (open model)"},
        "search": {"rounds": 3, "duration_s": 5.0, "warmup_s": 2.0, "start_rate": 100.0,
                   "max_rate": 10000.0, "bisection_steps": 8},
        "candidates": [{**o.as_dict(), "branch": o.candidate.branch.label(),
                        "dominated": False} for o in walk.outcomes],
        "branches": [{"branch": walk.branch.label(), "stopped": walk.stopped,
                      "fit": walk.fit,
                      "workers": [o.candidate.workers for o in walk.outcomes]}],
        "recommendation": rec.as_dict(), "min_capacity": 1000.0,
        "below_min_capacity": False,
    }


def test_the_branch_fit_is_drawn_along_the_workers(tmp_path: Path) -> None:
    doc = _document([1, 2, 3, 4, 6, 8, 10])
    assert doc["branches"][0]["fit"], doc["branches"]  # the search made a fit
    [(branch, rounds, law)] = branch_fits(doc)
    measured = [c for c in doc["candidates"] if c["capacity_rps"] is not None]
    assert branch == "sync" and len(rounds) == 3 * len(measured) >= 3 * 4
    assert law.peak_n is not None and 5 < law.peak_n < 9  # √(0.95 / 0.02) = 6.9
    size = _section(render_size(doc, tmp_path), "size")
    assert "<h3>sync: the USL fit along the workers</h3>" in size
    fit_svg = size[size.index('aria-label="sync: throughput within the target against '
                              'workers, USL fit"'):]
    assert 'class="band"' in fit_svg and "peak N*=" in fit_svg
    assert fit_svg.count('<circle class="data"') == len(rounds)
    assert law.describe().replace("<", "&lt;") in size
    assert "--min-capacity 1,000" in size  # the gate's line on the capacity figure


def test_an_older_size_json_without_branch_labels_still_finds_its_fit() -> None:
    doc = _document([1, 2, 3, 4, 6, 8, 10])
    for c in doc["candidates"]:
        del c["branch"]
    assert len(branch_fits(doc)) == 1


@pytest.mark.browser
@pytest.mark.requires("chromium")
def test_the_size_report_is_drawn_in_chromium(size_dir: Path, tmp_path: Path) -> None:
    import playwright.sync_api as sync_api

    page_path = write_report(size_dir)
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900},
                                    java_script_enabled=False)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            headline = page.inner_text("section#size p.headline")
            labels = page.eval_on_selector_all(
                "section#size svg", "els => els.map(e => e.getAttribute('aria-label'))")
            drawn = page.eval_on_selector_all(
                "section#size svg",
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " const marks = [...e.querySelectorAll('.data')].filter(m => {"
                " const b = m.getBoundingClientRect(); return b.width + b.height > 1; });"
                " return [r.width, r.height, marks.length]; })")
            texts = page.eval_on_selector_all(
                "section#size svg text", "els => els.map(e => e.textContent)")
            page.screenshot(path=str(tmp_path / "size.png"), full_page=True)
        finally:
            browser.close()
    assert headline.startswith("gthread 2×4 serves 56 req/s")
    assert labels == ["capacity of each candidate within p95 < 100 ms",
                      "the search path of each candidate"]
    for width, height, _ in drawn:
        assert width > 600 and height > 120, drawn
    # capacity: a dot, an interval and a ring per candidate; path: 14 points (and the
    # legends' two marks each)
    assert drawn[0][2] == 4 * 3 + 2 and drawn[1][2] == 14 + 2, drawn
    for label in ("sync ×1", "sync ×2", "sync ×3", "gthread 2×4", "56.1 [55.2, 57]"):
        assert label in texts, texts
    assert all(url.startswith("file://") for url in requests), requests


@pytest.mark.parametrize(("text", "words"), [
    ("not json", "is not a loadlab size document"),
    ('{"format": "other"}', "is not a loadlab size document"),
    ('{"format": "loadlab-size/1", "candidates": [{}]}', "lacks what the report reads"),
])
def test_a_bad_size_json_is_one_line_exit_2(text: str, words: str, tmp_path: Path) -> None:
    (tmp_path / "size.json").write_text(text)
    _, tag = tagged_env()  # in this process (cli.main): refused before anything is written
    done = loadlab_here(["report", str(tmp_path)], tag)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "report.html").exists()
