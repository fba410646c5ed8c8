"""A real Chromium drives the Locust web UI: custom parameters, a shape, a swarm, a stop."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.locust_form import (
    CHROMIUM,
    FLAGS,
    cross_site_attempt,
    refuse_bad_values,
    run_every_target,
    served_by,
)
from support.locust_process import ROOT, SHAPES, Locust, free_port, get, wait_for
from support.services import start_service

from loadlab.launch import ServiceProcess

SCREENSHOT = ROOT / "docs" / "locust-ui.png"
# LOADLAB_UPDATE_DOCS=1 refreshes docs/locust-ui.png (after the shape's second step);
# otherwise the screenshot goes to the test's temporary directory and the tree stays clean.
UPDATE_DOCS = os.environ.get("LOADLAB_UPDATE_DOCS") == "1"
IO_MS = 40

pytestmark = pytest.mark.browser


@pytest.mark.requires("chromium")
def test_web_ui_swarm_with_custom_parameters_and_shape(fastapi: ServiceProcess,
                                                       tmp_path: Path) -> None:
    import playwright.sync_api as sync_api
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    lo = Locust(["--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port),
                 "--host", "http://127.0.0.1:9"],
                locustfile=f"{ROOT / 'locust' / 'locustfile.py'},{SHAPES}").start()
    try:
        wait_for(lambda: get(web), 30, "the Locust web UI")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(web)
                page.fill("input[name=host]", fastapi.url)  # the form's host wins over --host
                page.select_option("select[name=shapeClass]", "StepShape")
                page.get_by_text("Custom parameters").click()
                page.select_option("select[name=scenario]", "io")
                page.fill("input[name=ioMs]", str(IO_MS))
                page.fill("input[name=cpuWork]", "7")
                page.fill("input[name=shapePeakUsers]", "8")
                page.get_by_role("button", name="Start").click()

                def rps_on_page() -> float:
                    # the header's "RPS" box: its label and the current figure
                    box = page.get_by_text("RPS", exact=True).locator("xpath=..").inner_text()
                    return float(box.replace("RPS", "").strip() or 0)

                wait_for(rps_on_page, 30, "the page to show RPS above zero", every_s=0.5)
                page.get_by_role("tab", name="Charts").click()
                # let the charts draw a few points (and the step shape take a step)
                page.wait_for_timeout(14000 if UPDATE_DOCS else 3000)
                page.screenshot(path=str(tmp_path / "ui.png"))
                stats = json.loads(get(f"{web}/stats/requests"))
                page.get_by_role("button", name="Stop").click()
                wait_for(lambda: json.loads(get(f"{web}/stats/requests"))["state"] == "stopped",
                         30, "the swarm to stop")
            finally:
                browser.close()
    finally:
        lo.terminate()
        run = lo.finish(timeout_s=60)
    rows = {s["name"]: s for s in stats["stats"]}
    # The scenario and io ms typed into the form reached the users: only /io, waiting IO_MS.
    assert set(rows) == {"/io", "Aggregated"}, rows.keys()
    assert rows["/io"]["num_failures"] == 0 and rows["/io"]["num_requests"] > 0
    assert rows["/io"]["min_response_time"] >= IO_MS
    assert "Traceback" not in run.output
    assert (tmp_path / "ui.png").read_bytes().startswith(b"\x89PNG")
    if UPDATE_DOCS:
        shutil.copyfile(tmp_path / "ui.png", SCREENSHOT)


# --- every Target of the form, a refused value and a cross-site page ----------------------

@pytest.fixture(scope="module")
def both_services(fastapi: ServiceProcess) -> Iterator[dict[str, ServiceProcess]]:
    flask = start_service(framework="flask", worker_class="gthread", workers=1, threads=8)
    try:
        yield {"fastapi": fastapi, "flask": flask}
    finally:
        flask.stop()


@pytest.mark.requires("chromium")
def test_every_target_of_the_form_loads_its_service_and_other_sites_are_refused(
        both_services: dict[str, ServiceProcess]) -> None:
    import playwright.sync_api as sync_api
    fastapi, flask = both_services["fastapi"], both_services["flask"]
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    lo = Locust(["--web-host", "127.0.0.1", "--web-port", str(port),
                 "--host", "http://127.0.0.1:9"],
                env={"LOADLAB_FASTAPI_URL": fastapi.url, "LOADLAB_FLASK_URL": flask.url})
    lo.start()
    served = {name: (lambda p=p: served_by(p)) for name, p in both_services.items()}
    choices = {"fastapi": ({"fastapi"}, ""), "flask": ({"flask"}, ""),
               "both": ({"fastapi", "flask"}, ""), "host": ({"flask"}, flask.url)}
    try:
        wait_for(lambda: get(web), 30, "the Locust web UI")
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                before = {name: count() for name, count in served.items()}
                cross_site_attempt(browser, web, flask.url)
                assert before == {name: count() for name, count in served.items()}
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(web)
                refuse_bad_values(page, web, served)
                run_every_target(page, web, served, choices)
            finally:
                browser.close()
    finally:
        lo.terminate()
        run = lo.finish(timeout_s=60)
    assert "POST /swarm refused: cross-site request refused" in run.output
    assert "Traceback" not in run.output
