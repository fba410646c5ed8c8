"""Locust's web form in a real Chromium, for the native and the compose tests of it: the
browser's flags, the form's steps, a cross-site page that tries to start a swarm."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

from loadlab.launch import ServiceProcess
from support.locust_process import get, metrics, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

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
