"""report.html: self-contained, every run drawn, and its figures really drawn in Chromium."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadlab.report import figures, headline
from loadlab.report.concurrency import memory_per_request, served
from loadlab.report.fit import usl
from loadlab.report.html import write_report
from loadlab.runs.store import FORMAT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic_results as synthetic
from support.runner_cli import kill_tagged, loadlab, tagged_env

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GAPS = re.compile(r"not enough|no series|nothing to (draw|show)|cannot be drawn", re.I)


def run(target: str, klass: str, workers: int, users: int, rps: float, scenario: str,
        cpus: float = 0.0, key: str = "") -> dict[str, Any]:
    return {
        "key": key or f"{target}-{klass}-{workers}-{users}-{scenario}-{cpus}", "status": "ok",
        "target": target, "framework": target, "worker_class": klass, "workers": workers,
        "threads": 1, "cpus": cpus, "scenario": scenario, "users": users, "rps": rps,
        "requests": int(rps * 10), "failures": 0, "io_ms": 100, "cpu_work": 100,
        "latency_ms": {"p50": 1000 * users / rps, "p95": 1500 * users / rps,
                       "p99": 1800 * users / rps, "max": 2000 * users / rps,
                       "mean": 1000 * users / rps},
        "server": {"name": "uvicorn" if target == "fastapi" else "gunicorn",
                   "cpu_cores_used": min(workers, 2) * 0.9, "cpu_limit": cpus,
                   "throttled_share": 0.3 if cpus and workers > cpus else 0.0,
                   "memory_bytes": 40e6 * workers, "requests_in_progress": 3.0},
    }


def sweep() -> dict[str, Any]:
    runs = []
    for target, klass, lam in (("fastapi", "uvicorn", 95.0), ("flask", "sync", 90.0)):
        for n in (1, 2, 4, 8):
            rps = float(usl(np.array([n], dtype=float), lam, 0.1, 0.02)[0])
            runs.append(run(target, klass, n, 16, rps, "cpu", cpus=0.0))
        for users in (10, 50, 200):
            rps = users * 9.0 if target == "fastapi" else min(users, 4) * 9.0
            runs.append(run(target, klass, 4, users, rps, "io"))
        for cpus in (1.0, 2.0):
            runs.append(run(target, klass, 4, 16, 90 * cpus, "cpu", cpus=cpus))
    runs.append({**run("flask", "sync", 1, 4, 1.0, "json"), "status": "failed",
                 "error": "the service exited during the run: killed"})
    return {"format": FORMAT, "loadlab_version": "0.1.0", "runs": runs,
            "manifest": {"git_commit": "abc", "cores": 2, "command_lines": ["loadlab x"]}}


@pytest.fixture
def report(tmp_path: Path) -> Path:
    (tmp_path / "summary.json").write_text(json.dumps(sweep()))
    (tmp_path / "claims.json").write_text(json.dumps([
        {"id": "threads-not-parallel-cpu", "claim": "threads do not speed up CPU work",
         "verdict": "holds", "evidence": "1 thread 90 req/s, 4 threads 92 req/s"}]))
    return write_report(tmp_path)


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(http" not in text and "<script" not in text
    assert text.count("<svg") >= 5
    assert "threads-not-parallel-cpu" in text and "holds" in text
    assert "USL" in text and "σ=" in text  # the fits and their parameters
    assert "failed: the service exited" in text
    assert "cpus=0" not in text and "no limit" in text
    assert not GAPS.search(text)


@pytest.mark.parametrize("n", [1, 2, 13])
def test_one_two_and_many_runs_draw_every_figure_without_a_gap(n: int, tmp_path: Path) -> None:
    summary = synthetic.write(tmp_path, n)
    text = write_report(tmp_path).read_text()
    assert not GAPS.search(text)
    overview = text[text.index('id="overview"'):text.index('id="over-time"')]
    assert overview.count("<svg") == 1
    assert overview.count('class="data"') >= 4 * n  # a bar and three percentiles a run
    timelines = text[text.index('id="over-time"'):text.index('id="distribution"')]
    assert timelines.count("<svg") == n and timelines.count('class="warmup"') >= 5 * n
    assert text.count('class="headline"') >= 1
    first = summary["runs"][0]
    assert f"{first['rps']:,.0f} req/s" in text
    if n >= 2:
        assert "×" in text.split('class="headline"')[1].split("</p>")[0]


def test_memory_per_request_counts_served_requests_not_the_queue() -> None:
    # Shaped like the runner's records: 50 users waiting 50 ms on each stack; one sync
    # worker's gauge reads 0 at every scrape (it is busy answering the scrape), while the
    # clients' queue in front of it holds ~50 requests.
    sync = synthetic.record("s", "flask", users=50, rps=19.5, latency_ms=2560.0,
                            in_progress=0.0, memory_mb=89.0)
    loop = synthetic.record("a", "fastapi", users=50, rps=910.0, latency_ms=52.0,
                            in_progress=49.1, memory_mb=81.0)
    assert served(sync) == 1.0 and served(loop) == pytest.approx(50.1)
    per_sync, per_loop = memory_per_request(sync), memory_per_request(loop)
    assert per_sync is not None and per_loop is not None
    assert per_sync >= 5 * per_loop
    svg = figures.memory([sync, loop])
    assert svg is not None and "MB / request" in svg and "89 MB" in svg


def test_headline_names_the_comparison() -> None:
    sync = synthetic.record("s", "flask", users=50, rps=20.8, latency_ms=2600.0,
                            in_progress=0.0, memory_mb=89.0)
    loop = synthetic.record("a", "fastapi", users=50, rps=950.0, latency_ms=52.0,
                            in_progress=49.1, memory_mb=81.0)
    (line,) = headline.sentences([sync, loop])
    assert line.startswith("FastAPI on one Uvicorn process served 950 req/s, 46× Flask on "
                           "one Gunicorn sync worker, for the same 50 users each waiting "
                           "50 ms; p50 52 ms against 2.6 s")


# --- a real run of both stacks, its report opened in Chromium -------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("real") / "results"
    environment, tag = tagged_env()
    try:
        result = loadlab(["run", "--target", "both", "--scenario", "io", "--users", "50",
                          "--duration", "5s", "--warmup", "2s", "--out", str(out)],
                         environment, timeout=240)
        assert result.returncode == 0, result.stderr[-2000:]
        yield out, result.stdout
    finally:
        kill_tagged(tag)


@pytest.mark.slow
def test_real_run_prints_the_headline_and_counts_served_requests(
        real_run: tuple[Path, str]) -> None:
    out, stdout = real_run
    assert re.search(r"FastAPI on one Uvicorn process served [\d,]+ req/s, [\d.,]+× Flask",
                     stdout), stdout
    runs = {r["target"]: r for r in json.loads((out / "summary.json").read_text())["runs"]}
    per = {t: memory_per_request(r) for t, r in runs.items()}
    assert per["flask"] is not None and per["fastapi"] is not None, runs
    # one sync worker serves one request; the event loop serves (nearly) all 50
    assert per["flask"] >= 3 * per["fastapi"], per


@pytest.mark.browser
@pytest.mark.requires("chromium")
def test_real_run_report_draws_every_figure_with_data(real_run: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    import playwright.sync_api as sync_api

    page_path = real_run[0] / "report.html"
    assert page_path.stat().st_size < 3_000_000
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900},
                                    java_script_enabled=False)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            headline_text = page.inner_text("section#headline")
            drawn = {}
            for section in ("overview", "over-time", "distribution", "memory"):
                drawn[section] = page.eval_on_selector_all(
                    f"section#{section} svg",
                    "els => els.map(e => { const r = e.getBoundingClientRect();"
                    " const marks = [...e.querySelectorAll('.data')].filter(m => {"
                    " const b = m.getBoundingClientRect(); return b.width + b.height > 1; });"
                    " return [r.width, r.height, marks.length]; })")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert "FastAPI" in headline_text and "Flask" in headline_text and "×" in headline_text
    assert len(drawn["overview"]) == 1 and len(drawn["over-time"]) == 2, drawn
    assert len(drawn["distribution"]) == 1 and len(drawn["memory"]) == 1, drawn
    for section, boxes in drawn.items():
        for width, height, marks in boxes:
            assert width > 400 and height > 80 and marks >= 2, (section, boxes)
    # each run's over-time figure: throughput, latency, requests, CPU and memory lines
    assert all(marks >= 8 for _, _, marks in drawn["over-time"]), drawn["over-time"]
    assert all(url.startswith("file://") for url in requests), requests
