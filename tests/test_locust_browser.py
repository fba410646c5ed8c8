"""A real Chromium drives the Locust web UI: custom parameters, a shape, a swarm, a stop."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.locust_process import ROOT, SHAPES, Locust, free_port, get, metrics, wait_for
from support.services import start_service

from loadlab.launch import ServiceProcess

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
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


# The routes the forms below can load (json by default, io as chosen): a service's other
# requests (a healthcheck's /healthz) are not the load.
LOAD_ROUTES = frozenset({"/json", "/io"})


def served_by(proc: ServiceProcess) -> float:
    """Load requests the service itself counted."""
    return sum(v for (n, lb), v in metrics(get(f"{proc.url}/metrics")).items()
               if n == "http_requests_total" and dict(lb).get("handler") in LOAD_ROUTES)


def exported_targets(web: str) -> set[str]:
    return {dict(lb)["target"] for (n, lb), v in metrics(get(f"{web}/metrics")).items()
            if n == "locust_requests_total" and v > 0}


def swarm_state(web: str) -> str:
    return str(json.loads(get(f"{web}/stats/requests"))["state"])


class AttackerPage:
    """Another origin (another port on loopback) whose page posts the UI's /swarm form by
    itself and tries to read its statistics, as any web page the operator opens could."""

    def __init__(self, web: str, victim_host: str) -> None:
        page = f"""<!doctype html><html><body>
<form id="f" method="POST" action="{web}/swarm">
<input name="user_count" value="3"><input name="spawn_rate" value="3">
<input name="host" value="{victim_host}"></form>
<script>
fetch("{web}/stats/requests").then(r => r.text()).then(
  t => document.title = "read", e => document.title = "blocked");
</script></body></html>""".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AttackerPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


Counter = Callable[[], float]


def open_new_form(page: Any) -> None:
    """The form again once a swarm has stopped (the header's New)."""
    # A master's /stop answers once its workers report no users, which can take long after
    # the swarm says "stopped" (the page shows STOPPING meanwhile): a fresh page reads the
    # state as it is.
    page.reload()
    new = page.get_by_role("button", name="New")
    new.wait_for(timeout=15000)
    new.click()
    page.get_by_text("Custom parameters").click()


def refuse_bad_values(page: Any, web: str, served: dict[str, Counter],
                      expect_state: str = "ready") -> None:
    """Values that cannot run are refused when Start is pressed, the reason in the page,
    and nothing starts or reaches a service."""
    before = {name: count() for name, count in served.items()}
    page.get_by_text("Custom parameters").click()
    page.fill("input[name=ioMs]", "abc")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("io-ms 'abc': not a whole number").wait_for(timeout=15000)
    page.fill("input[name=ioMs]", "20")
    page.fill("input[name=userCount]", "1")
    page.select_option("select[name=target]", "both")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("needs at least 2 users").wait_for(timeout=15000)
    assert swarm_state(web) == expect_state
    assert before == {name: count() for name, count in served.items()}


def run_every_target(page: Any, web: str, served: dict[str, Counter],
                     choices: dict[str, tuple[set[str], str]]) -> None:
    """For each Target (-> the services that must count requests, the Host to type), Start
    in the form: every service of the choice counts requests within the same 10 s, the
    others none, and the exporter labels them; then Stop."""
    for target, (expect, host) in choices.items():
        if not page.locator("input[name=userCount]").is_visible():  # a swarm ran before
            open_new_form(page)
        page.fill("input[name=userCount]", "4")
        page.fill("input[name=spawnRate]", "4")
        page.fill("input[name=host]", host)
        page.select_option("select[name=scenario]", "io")
        page.fill("input[name=ioMs]", "20")
        page.select_option("select[name=target]", target)
        start = {name: count() for name, count in served.items()}
        page.get_by_role("button", name="Start").click()
        wait_for(lambda start=start, expect=expect: all(
            served[n]() > start[n] for n in expect), 10,
            f"{target}: requests counted at {sorted(expect)}", every_s=0.5)
        page.get_by_role("button", name="Stop").click()
        wait_for(lambda: swarm_state(web) == "stopped", 30, "the swarm to stop")
        moved = {n: count() - start[n] for n, count in served.items() if n not in expect}
        assert not any(moved.values()), (target, moved)
        # The exporter names the service each request went to (a worker's last requests
        # reach the master with its next report, up to 3 s after the stop).
        labelled = {"host" if target == "host" else s for s in expect}
        wait_for(lambda labelled=labelled: labelled <= exported_targets(web), 15,
                 f"{target}: locust_requests_total labelled {sorted(labelled)}")


def cross_site_attempt(browser: Any, web: str, victim: str,
                       expect_state: str = "ready") -> None:
    """A page of another origin posts /swarm and reads /stats/requests: both refused."""
    with AttackerPage(web, victim) as attacker:
        page = browser.new_page()
        page.goto(attacker.url)
        page.wait_for_function("document.title !== ''", timeout=15000)
        assert page.title() == "blocked"  # the cross-origin read got nothing
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
        assert "cross-site request refused" in page.content()
        page.close()
    assert swarm_state(web) == expect_state


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
