"""The whole lab under docker compose: real images, real Prometheus, real Locust swarm.

Offline machines (no registry) build through `make offline-images` and run without
Grafana, the one service that cannot be had there; its dashboards' queries are all run
against the real Prometheus instead.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from support.compose_project import KIND_SPECIFIC, PROFILE_VARIANTS, VARIANT_SERVICES, Stack

from loadlab.dashboards import database_row, render
from loadlab.dashboards.queries import queries, substitute


def scrape_settle(stack: Stack, scrapes: int = 2) -> None:
    """Wait until Prometheus has scraped every target ``scrapes`` times from now on (a rate
    needs two samples after the load), as its /api/v1/targets reports."""
    for _ in range(scrapes):
        since = time.time()
        stack.wait_for(f"every target scraped after {since:.0f}", lambda since=since: all(
            datetime.fromisoformat(target["lastScrape"]).timestamp() > since
            for target in stack.prometheus("/api/v1/targets")["activeTargets"]), 60)


def test_up_within_budget_and_all_healthy(stack: Stack) -> None:
    ps = stack.compose("ps", "--format", "json").stdout
    rows = [json.loads(line) for line in ps.splitlines() if line.strip()] if not \
        ps.lstrip().startswith("[") else json.loads(ps)
    health = {row["Name"]: row.get("Health") for row in rows}
    assert health and all(state == "healthy" for state in health.values()), health
    print(f"\nup --wait to all healthy: {stack.up_seconds:.1f} s ({len(health)} containers)")
    took = stack.healthy_after
    print("start to first passing check: " + ", ".join(
        f"{name.removeprefix(stack.project + '-')} {took[name]:.1f} s" for name in sorted(took)))
    assert stack.up_seconds < 120


def test_containers_run_as_non_root_without_capabilities(stack: Stack) -> None:
    """What the compose file asks for (USER, cap_drop: ALL), seen in the running processes."""
    ps = stack.compose("ps", "--services", "--status", "running").stdout.split()
    assert {"fastapi", "flask", "locust-master", "prometheus"} <= set(ps), ps
    for service in ps:
        status = stack.compose("exec", "-T", service, "cat", "/proc/1/status").stdout
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = fields["Uid"].split()
        assert uids and all(uid != "0" for uid in uids), (service, fields["Uid"])
        assert int(fields["CapEff"].strip(), 16) == 0, (service, fields["CapEff"])


def test_cpu_limit_seen_inside_equals_the_configured_cpus(stack: Stack) -> None:
    limits = stack.wait_for("both services scraped", lambda: (
        lambda found: found if {"fastapi", "flask"} <= set(found) else None)(
        stack.query("max by (service) (loadlab_cpu_limit_cores)")))
    assert limits["fastapi"] == float(stack.env["FASTAPI_CPUS"])
    assert limits["flask"] == float(stack.env["FLASK_CPUS"])


def test_database_seeded_and_watched_by_its_exporter(stack: Stack) -> None:
    """The postgres service is seeded by seed.sql; Prometheus has its exporter's figures,
    connections by state, and the container's CPU under the services' names."""
    import psycopg

    url = f"postgresql://loadlab@127.0.0.1:{stack.ports['POSTGRES_PORT']}/loadlab"
    # No TCP client is trusted: the generated password, where the services read it.
    password = stack.compose("exec", "-T", "postgres", "cat",
                             "/run/loadlab/postgres/password").stdout
    with psycopg.connect(url, password=password, connect_timeout=10,
                         autocommit=True) as conn:
        counts = conn.execute("SELECT (SELECT count(*) FROM world), "
                              "(SELECT count(*) FROM fortune)").fetchone()
        version = conn.execute("SHOW server_version_num").fetchone()
        # This connection, idle now, shows in the exporter's connections by state.
        idle = stack.wait_for("an idle connection counted", lambda: stack.query(
            'pg_stat_activity_count{service="postgres", datname="loadlab", state="idle"}'
            ' >= 1'))
    assert counts == (10_000, 12)
    assert version is not None and int(version[0]) // 10_000 == 15
    assert idle["postgres"] >= 1
    up = stack.wait_for("the exporter scraped", lambda: stack.query(
        'pg_up{service="postgres"} == 1'))
    assert up == {"postgres": 1.0}
    states = stack.prometheus("/api/v1/query", query='pg_stat_activity_count'
                              '{service="postgres", datname="loadlab"}')["result"]
    assert {r["metric"].get("state") for r in states} >= {"active", "idle"}, states
    assert stack.query('pg_stat_database_xact_commit{service="postgres", '
                       'datname="loadlab"}')["postgres"] > 0
    cpu = stack.query('loadlab_cpu_usage_seconds_total{service="postgres"}')
    assert cpu["postgres"] > 0, cpu
    limit = stack.query('loadlab_cpu_limit_cores{service="postgres"}')
    assert limit["postgres"] == float(stack.env["POSTGRES_CPUS"])


def swarm(stack: Stack, host: str, seconds: float, **options: str) -> dict[str, int]:
    """A bounded swarm through the master's HTTP API; returns Locust's counts by name."""
    stack.locust("/swarm", {"user_count": "8", "spawn_rate": "8", "host": host, **options})
    try:
        time.sleep(seconds)
    finally:
        stack.locust("/stop", {})
    stack.wait_for("the swarm to stop",
                   lambda: stack.locust("/stats/requests")["state"] == "stopped", 90)
    return locust_counts(stack)


def locust_counts(stack: Stack) -> dict[str, int]:
    stats = stack.locust("/stats/requests")["stats"]
    return {s["name"]: int(s["num_requests"]) for s in stats if s["name"] != "Aggregated"}


def counter(stack: Stack, expr: str) -> float:
    values = stack.query(expr)
    return sum(values.values())


def test_request_counts_agree_with_locust(stack: Stack) -> None:
    served = 'sum(http_requests_total{service="fastapi", handler="/json"})'
    sent = 'sum(locust_requests_total{name="/json"})'
    before_served, before_sent = counter(stack, served), counter(stack, sent)
    counts = swarm(stack, "http://fastapi:8000", 8, scenario="json", target="fastapi")
    assert counts.get("/json", 0) > 100, counts
    scrape_settle(stack)
    # Locust's exporter (scraped by Prometheus) counts exactly what Locust's stats count.
    # The workers' last reports reach the master's stats and its exporter a moment after
    # the stop; both must then agree exactly.
    deadline = time.monotonic() + 20
    while True:
        counts = locust_counts(stack)
        exported = counter(stack, sent) - before_sent
        if exported == counts["/json"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert exported == counts["/json"], (exported, counts)
    # The service saw the same requests; users cut off by /stop may have had one in flight.
    # Each worker passes its tallies on within a second, Prometheus scrapes them after.
    deadline = time.monotonic() + 20
    while (delta := counter(stack, served) - before_served) < counts["/json"]:
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counts["/json"] <= delta <= counts["/json"] + 8, (delta, counts)


def test_half_a_cpu_under_cpu_load_is_throttled(stack: Stack) -> None:
    throttled = 'sum(loadlab_cpu_throttled_periods_total{service="flask"})'
    before = counter(stack, throttled)
    counts = swarm(stack, "http://flask:8000", 8, scenario="cpu", cpu_work="200",
                   target="flask")
    assert counts.get("/cpu", 0) > 0, counts
    scrape_settle(stack)
    assert counter(stack, throttled) > before
    share = stack.query('max_over_time(service:loadlab_cpu_throttled_periods:'
                        'ratio_rate30s{service="flask"}[1m])')
    assert share["flask"] > 0, share


DB_PATHS = ("/db", "/queries?n=3", "/db/sleep?ms=20")


@pytest.fixture(scope="module")
def db_traffic(stack: Stack) -> float:
    """A little database load on both services, over a few scrapes (a rate needs two
    samples in its window): 15 rounds of 24 requests to the published loopback ports.
    Returns when it began."""
    began = time.time()
    urls = [f"{stack.url(port)}{path}" for port in ("FASTAPI_PORT", "FLASK_PORT")
            for path in DB_PATHS]

    def answered(url: str) -> int:
        with urllib.request.urlopen(url, timeout=30) as reply:
            reply.read()
            return int(reply.status)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(15):
            statuses = list(pool.map(answered, urls * 4))
            assert statuses == [200] * len(statuses), statuses
            time.sleep(0.5)  # pacing the load over several 2 s scrapes, not a readiness wait
    return began


def test_database_panels_return_data(stack: Stack, db_traffic: float) -> None:
    """Both Database rows, variables filled in as for the lab's two services: numbers,
    not only series, once the load has been scraped."""
    board = {name: json.loads(text) for name, text in render().items()}
    checks = [(f"comparison {where}", substitute(expr, {"service": "fastapi|flask"},
                                                 rate_interval="20s"))
              for where, expr in queries(board["comparison.json"], row=database_row.ROW)]
    checks += [(f"service={service} {where}",
                substitute(expr, {"service": service}, rate_interval="20s"))
               for service in ("fastapi", "flask")
               for where, expr in queries(board["service.json"], row=database_row.ROW)]
    assert len(checks) == 9 + 2 * 8

    def empty() -> list[str]:
        missing = []
        for where, expr in checks:
            data = stack.prometheus("/api/v1/query_range", query=expr,
                                    start=f"{db_traffic}", end=f"{time.time()}", step="2")
            values = [float(v) for series in data["result"] for _, v in series["values"]]
            if not any(math.isfinite(v) for v in values):
                missing.append(f"{where}: {expr}")
        return missing

    try:
        stack.wait_for("data in every Database panel", lambda: not empty(), 30)
    except AssertionError:
        assert empty() == []
        raise
    # The pools' size as configured: fastapi 1 Uvicorn worker x 10 (+1 for /db/blocking,
    # not used here); flask FLASK_WORKERS sync workers x 1.
    size = stack.query("sum by (service) (loadlab_db_pool_size)")
    assert size == {"fastapi": 10.0, "flask": float(stack.env["FLASK_WORKERS"])}, size


def test_every_dashboard_query_returns_data(stack: Stack, db_traffic: float) -> None:
    """Each panel's, annotation's and variable's query, variables filled in, over the
    time the lab has run (Grafana sends range queries): it parses and returns data."""
    start = time.time() - 600
    values = {"service": "fastapi|flask", "handler": ".*"}
    drill_down = {"service": "fastapi", "handler": ".*"}  # async: has event-loop lag
    empty = []
    for name, text in render().items():
        board = json.loads(text)
        for where, expr in queries(board):
            filled = substitute(expr, drill_down if name == "service.json" else values,
                                rate_interval="20s")
            data = stack.prometheus("/api/v1/query_range", query=filled, start=f"{start}",
                                    end=f"{time.time()}", step="2")
            if not data["result"]:
                empty.append(f"{name} {where}: {filled}")
    assert empty == []



def test_the_variants_profile_is_in_every_dashboard_query(stack: Stack) -> None:
    """With the `variants` profile up, each panel that shows FastAPI or Flask shows every
    service (Gunicorn + uvicorn-worker, gevent and Granian's two too), after a little load
    on each.
    The profile's services stop again at the end: the later tests keep the machine's
    cores."""
    stack.compose("up", "--detach", "--wait", *PROFILE_VARIANTS, timeout=300)
    try:
        _every_panel_shows_every_variant(stack)
    finally:
        stack.compose("rm", "--stop", "--force", *PROFILE_VARIANTS, timeout=120)


def _every_panel_shows_every_variant(stack: Stack) -> None:
    for service in VARIANT_SERVICES:
        # By the form's Target: the boards' client-side series carry it as `target`.
        counts = swarm(stack, f"http://{service}:8000", 3, scenario="json", target=service)
        assert counts.get("/json", 0) > 0, (service, counts)
    scrape_settle(stack)
    start = time.time() - 600
    values = {"service": "|".join(VARIANT_SERVICES), "handler": ".*"}
    missing, checked = [], 0
    for name in ("comparison.json", "service.json"):
        for where, expr in queries(json.loads(render()[name])):
            data = stack.prometheus("/api/v1/query_range", query=substitute(expr, values),
                                    start=f"{start}", end=f"{time.time()}", step="2")
            seen = {series["metric"].get("service") for series in data["result"]}
            if not {"fastapi", "flask"} & seen or any(k in expr for k in KIND_SPECIFIC):
                continue
            checked += 1
            if lacking := sorted(set(VARIANT_SERVICES) - seen):
                missing.append(f"{name} {where}: no {', '.join(lacking)}")
    assert checked >= 5 and missing == []


def test_loadlab_run_with_the_compose_runtime(stack: Stack, tmp_path: Path) -> None:
    """`loadlab run --runtime compose` recreates fastapi at half a core and measures it."""
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "loadlab", "run", "--runtime", "compose", "--target",
         "fastapi", "--scenario", "cpu", "--users", "6", "--duration", "8s", "--warmup",
         "2s", "--cpus", "0.5", "--workers", "1", "--out", str(out)],
        env=stack.environ(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    assert run["status"] == "ok" and run["requests"] > 0 and run["failures"] == 0
    assert run["server"]["cpu_limit"] == 0.5
    # Sampled on the supervisor's side port (published on an ephemeral host port), which
    # answers while the workers are busy, not on the service's own /metrics.
    assert run["server"]["scrape"] == "side-port" and run["server"]["scrape_errors"] == 0
    scrape_settle(stack)
    limit = stack.query('last_over_time(loadlab_cpu_limit_cores{service="fastapi"}[1m])')
    assert limit["fastapi"] == 0.5


@pytest.mark.parametrize("knob, value, reason", [
    ("FLASK_WORKER_CLASS", "uvicorn", "does not fit flask"),
    ("FLASK_THREADS", "8", "needs --worker-class gthread"),
])
def test_bad_env_leaves_the_service_unhealthy_with_one_line(
        stack: Stack, knob: str, value: str, reason: str) -> None:
    # A service that never starts needs no start-up grace: unhealthy after three checks.
    bad = {knob: value, "HEALTHCHECK_START_PERIOD": "1s"}
    up = stack.compose("up", "--detach", "--wait", "--no-deps", "--force-recreate", "flask",
                       check=False, timeout=120, **bad)
    assert up.returncode != 0 and "unhealthy" in up.stderr, up.stderr
    logs = stack.compose("logs", "--no-log-prefix", "flask", **bad).stdout
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], lines
    ps = stack.compose("ps", "--all", "--format", "{{.Status}}", "flask", **bad)
    assert "unhealthy" in ps.stdout and "Restarting" not in ps.stdout, ps.stdout
