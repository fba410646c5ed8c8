"""The Locust form of the compose lab in a real browser, where a user meets it: every
Target reaches its service (master and workers know every URL), a value that cannot run
is refused in the page, and a page of another site can neither start nor read a swarm."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from support.compose_project import Stack
from support.locust_form import (
    CHROMIUM,
    FLAGS,
    LOAD_ROUTES,
    cross_site_attempt,
    refuse_bad_values,
    run_every_target,
    swarm_state,
)
from support.locust_process import get, metrics

pytestmark = pytest.mark.browser


def served_at(url: str) -> float:
    """Load requests a service counted, from its own /metrics on its published port (the
    healthchecks' /healthz left out)."""
    return sum(v for (n, lb), v in metrics(get(f"{url}/metrics")).items()
               if n == "http_requests_total" and dict(lb).get("handler") in LOAD_ROUTES)


@pytest.mark.requires("chromium")
def test_the_compose_form_runs_every_target_and_refuses_other_sites(stack: Stack) -> None:
    import playwright.sync_api as sync_api
    web = stack.url("LOCUST_PORT")
    # An earlier test's `loadlab run --runtime compose` stops the service after its run.
    stack.compose("up", "--detach", "--wait", "--no-deps", "fastapi", "flask", timeout=300)
    ports = {"fastapi": "FASTAPI_PORT", "flask": "FLASK_PORT",
             "fastapi-gunicorn": "FASTAPI_GUNICORN_PORT", "flask-gevent": "FLASK_GEVENT_PORT",
             "fastapi-granian": "FASTAPI_GRANIAN_PORT", "flask-granian": "FLASK_GRANIAN_PORT"}
    counters = {name: partial(served_at, stack.url(port)) for name, port in ports.items()}
    # The variants are up only where a test asked for them: count only what answers.
    served = {name: count for name, count in counters.items() if _answers(count)}
    choices = {"fastapi": ({"fastapi"}, ""), "flask": ({"flask"}, ""),
               "both": ({"fastapi", "flask"}, ""), "host": ({"flask"}, "http://flask:8000")}
    choices.update({v: ({v}, "") for v in list(ports)[2:] if v in served})
    if swarm_state(web) in ("spawning", "running"):  # another test's swarm
        stack.locust("/stop", {})
    stack.wait_for("the master idle", lambda: swarm_state(web) in ("ready", "stopped"))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            before = {name: count() for name, count in served.items()}
            state = swarm_state(web)
            cross_site_attempt(browser, web, "http://flask:8000", expect_state=state)
            assert before == {name: count() for name, count in served.items()}
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(web)
            if state == "stopped":  # a previous test's swarm: the form is behind New
                page.get_by_role("button", name="New").click()
            refuse_bad_values(page, web, served, expect_state=state)
            run_every_target(page, web, served, choices)
        finally:
            browser.close()
    logs = stack.compose("logs", "locust-master").stdout
    assert "POST /swarm refused: cross-site request refused" in logs


def _answers(count: Callable[[], float]) -> bool:
    try:
        count()
    except OSError:
        return False
    return True
