"""The Comparison board during a `both` run against the compose lab, as a user starts it from
the form: FastAPI and Flask loaded in the same seconds, Flask on one sync worker under 50
users waiting 50 ms. The board must show both services at one instant, and where Flask's
time went: in the queue before the application, which its own histogram cannot see."""

from __future__ import annotations

import json
import time

from support.compose_project import KIND_SPECIFIC, Stack

from loadlab.dashboards import render
from loadlab.dashboards.queries import queries, substitute

USERS = "100"  # `both` splits them evenly: 50 for each service
SCRAPE_TIMEOUT_S = 2.0  # the e2e lab scrapes every 2 s; Prometheus's timeout is at most that
WINDOW_S = 30
# Panels with no per-service series in an HTTP-only run: the database rows.
NOT_IN_THIS_RUN = ("loadlab_db_", "pg_")


def _comparison() -> dict:
    return json.loads(render()["comparison.json"])


def _panel_expr(title: str, legend: str) -> str:
    for panel in _comparison()["panels"]:
        if panel.get("title", "").startswith(title):
            expr = next(t["expr"] for t in panel["targets"] if t["legendFormat"] == legend)
            return substitute(expr, {"service": "fastapi|flask", "handler": ".*"},
                              rate_interval="20s")
    raise AssertionError(f"no panel {title!r} on the Comparison board")


def _state(stack: Stack) -> str:
    return str(stack.locust("/stats/requests")["state"])


def test_a_both_run_shows_flasks_queue_and_both_services_at_one_instant(stack: Stack) -> None:
    stack.compose("up", "--detach", "--wait", "--no-deps", "flask", timeout=300,
                  FLASK_WORKERS="1")
    try:
        if _state(stack) in ("spawning", "running"):  # another test's swarm
            stack.locust("/stop", {})
        stack.wait_for("the master idle", lambda: _state(stack) in ("ready", "stopped"), 90)
        # The recreated container has a new address: wait until Prometheus scrapes it alone
        # (the old one lingers as a down target until its DNS refresh).
        stack.wait_for("the new flask alone in Prometheus", lambda: stack.query(
            'count(up{job="services",service="flask"}) == 1 and '
            'min(up{job="services",service="flask"}) == 1'), 90)
        started = time.time()
        reply = stack.locust("/swarm", {"user_count": USERS, "spawn_rate": USERS, "host": "",
                                        "target": "both", "scenario": "io", "io_ms": "50"})
        assert reply.get("success") is True, reply
        try:
            _flask_waits_in_the_queue(stack)
            _every_panel_shows_both(stack)
            _flask_is_scraped_throughout(stack, started)
        finally:
            stack.locust("/stop", {})
            stack.wait_for("the swarm to stop", lambda: _state(stack) == "stopped", 90)
    finally:
        stack.compose("up", "--detach", "--wait", "--no-deps", "flask", timeout=300)


def _flask_waits_in_the_queue(stack: Stack) -> None:
    """Flask's "waiting before the application" reaches ten times its server-side p50;
    FastAPI's stays a tenth of Flask's (no queue there)."""
    waiting = _panel_expr("Time waiting before", "{{service}} waiting")
    p50 = _panel_expr("Server latency", "{{service}} p50")

    def queued() -> tuple[dict[str, float], dict[str, float]] | None:
        wait, served = stack.query(waiting), stack.query(p50)
        ready = {"fastapi", "flask"} <= set(wait) and "flask" in served
        return (wait, served) if ready and wait["flask"] >= 10 * served["flask"] else None

    wait, served = stack.wait_for("Flask's queue on the board", queued, 150)
    assert wait["fastapi"] < wait["flask"] / 10, (wait, served)


def _every_panel_shows_both(stack: Stack) -> None:
    """Every per-service query of the Comparison board has series for both services in
    the same 30 s window (the database rows and figures only one kind of server has
    aside)."""
    end = time.time()
    missing, checked = [], 0
    for where, expr in queries(_comparison()):
        if any(k in expr for k in (*KIND_SPECIFIC, *NOT_IN_THIS_RUN)):
            continue
        filled = substitute(expr, {"service": "fastapi|flask", "handler": ".*"},
                            rate_interval="20s")
        data = stack.prometheus("/api/v1/query_range", query=filled,
                                start=f"{end - WINDOW_S}", end=f"{end}", step="2")
        seen = {series["metric"].get("service") for series in data["result"]}
        if seen <= {None} and data["result"]:
            continue  # a whole-lab figure (users running, say): no service to compare
        checked += 1
        if lacking := sorted({"fastapi", "flask"} - seen):
            missing.append(f"{where}: no {', '.join(lacking)}")
    assert checked >= 10 and missing == [], missing


def _flask_is_scraped_throughout(stack: Stack, started: float) -> None:
    """The saturated service never drops out of Prometheus: every scrape since the load
    began answered (`up` 1) and none came near its timeout (the supervisor's side port
    answers, not the busy worker). Judged on the scrapes made, at least three: after the
    container is recreated, Prometheus's DNS discovery can drop its target for a refresh
    cycle (seen once: one of three 2 s steps held a sample, none of them 0), which leaves
    no sample rather than a failed one and is not the service's doing."""
    flask = '{job="services",service="flask"}'

    def since_started(expr: str) -> dict[str, float]:
        # The window starts when the load did, after the recreated container was scraped
        # alone: its predecessor's samples are all older.
        window = f"{int((time.time() - started) * 1000)}ms"
        return stack.query(expr.replace("WINDOW", window))

    scrapes = stack.wait_for("three scrapes of Flask under load", lambda: since_started(
        f"sum by (service) (count_over_time(up{flask}[WINDOW])) >= 3"), 60)
    up = since_started(f"min by (service) (min_over_time(up{flask}[WINDOW]))")
    assert up.get("flask") == 1.0, (up, scrapes)
    took = since_started(
        f"max by (service) (max_over_time(scrape_duration_seconds{flask}[WINDOW]))")
    assert took["flask"] < SCRAPE_TIMEOUT_S / 2, took
