"""report.html: self-contained, and its plots really drawn in a real (headless) Chromium."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadlab.report.fit import usl
from loadlab.report.html import write_report
from loadlab.report.results import FORMAT

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
                   "memory_bytes": 40e6 * workers},
    }


def summary() -> dict[str, Any]:
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
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    (tmp_path / "claims.json").write_text(json.dumps([
        {"id": "threads-not-parallel-cpu", "claim": "threads do not speed up CPU work",
         "verdict": "holds", "evidence": "1 thread 90 req/s, 4 threads 92 req/s"}]))
    return write_report(tmp_path)


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(http" not in text
    assert text.count("<svg") >= 5
    assert "threads-not-parallel-cpu" in text and "holds" in text
    assert "USL" in text and "σ=" in text  # the fits and their parameters
    assert "failed: the service exited" in text


@pytest.mark.browser
@pytest.mark.requires("chromium")
def test_plots_are_drawn_in_chromium(report: Path, tmp_path: Path) -> None:
    import playwright.sync_api as sync_api
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            boxes = page.eval_on_selector_all(
                "figure svg, figure img",
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " return [r.width, r.height, e.querySelectorAll('path,line,rect').length]; })")
            shot = Path(os.environ.get("LOADLAB_REPORT_SCREENSHOT", tmp_path / "report.png"))
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert len(boxes) >= 5
    for width, height, marks in boxes:
        assert width > 200 and height > 100 and marks > 10
    assert all(url.startswith("file://") for url in requests), requests
    assert shot.stat().st_size > 10_000
