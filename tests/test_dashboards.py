"""Dashboards as code: the committed JSON is the generator's output, the model is sound
(fixed uids, datasource by uid, refIds), every query parses in a real Prometheus, and the
Database rows' queries return data from real services on a real PostgreSQL."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import prometheus_server as prom
from support.locust_process import Locust
from support.services import db_service, start_service

from loadlab.cli import main as cli_main
from loadlab.dashboards import BOARDS, database_row, default_dir, render, stale
from loadlab.dashboards.common import DATASOURCE_UID, SCHEMA_VERSION, SERVICE_COLORS
from loadlab.dashboards.queries import queries, row_panels, substitute
from loadlab.launch import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "grafana" / "dashboards"
BOARD_JSON = {name: json.loads(text) for name, text in render().items()}
PROVISIONED_DS = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def test_committed_json_equals_the_generator() -> None:
    assert default_dir() == COMMITTED
    assert stale(COMMITTED) == [], "run `loadlab dashboards` and commit the JSON"
    assert sorted(p.name for p in COMMITTED.glob("*.json")) == sorted(BOARDS)


def test_check_flag_fails_on_a_hand_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert cli_main(["dashboards", "--out", str(tmp_path)]) == 0
    assert cli_main(["dashboards", "--check", "--out", str(tmp_path)]) == 0
    edited = tmp_path / "comparison.json"
    edited.write_text(edited.read_text().replace("Requests per second", "Requests/s"))
    assert cli_main(["dashboards", "--check", "--out", str(tmp_path)]) == 1
    assert "comparison.json" in capsys.readouterr().err


def test_output_is_deterministic() -> None:
    assert render() == render()


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that draw something (rows only group them)."""
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def test_fixed_unique_uids_and_panel_ids() -> None:
    uids = [board["uid"] for board in BOARD_JSON.values()]
    assert len(set(uids)) == len(uids) and all(uid.startswith("loadlab-") for uid in uids)
    for board in BOARD_JSON.values():
        ids = [panel["id"] for panel in board["panels"]]  # rows included
        assert len(set(ids)) == len(ids) and None not in ids and 0 not in ids


def test_datasource_by_the_provisioned_uid_everywhere() -> None:
    assert f"uid: {DATASOURCE_UID}" in PROVISIONED_DS.read_text()
    for board in BOARD_JSON.values():
        for panel in _panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert ref_ids and len(set(ref_ids)) == len(ref_ids) and "" not in ref_ids
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
        for variable in board.get("templating", {}).get("list", []):
            assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_comparison_has_the_panels_the_lab_needs() -> None:
    titles = " / ".join(p["title"].lower() for p in _panels(BOARD_JSON["comparison.json"]))
    for needed in ("summary", "requests per second", "requests per cpu-second",
                   "client latency p50 / p95 / p99", "server latency p50 / p95 / p99",
                   "waiting before the application", "little's law", "accept queue",
                   "failures: client and server 5xx", "cpu used vs limit", "throttled",
                   "memory", "event-loop lag", "thread pool", "locust users"):
        assert needed in titles, needed
    board = BOARD_JSON["comparison.json"]
    in_row = " / ".join(p["title"].lower() for p in row_panels(board, database_row.ROW))
    for needed in ("pool in use / waiting", "pool wait p95", "connections by state",
                   "database cpu"):
        assert needed in in_row, needed
    service = board["templating"]["list"][0]
    assert service["name"] == "service" and service["multi"] and service["includeAll"]
    assert any(a.get("expr") for a in board["annotations"]["list"]), "no load-run annotation"


def _exprs(board: dict[str, Any], title: str) -> list[str]:
    panel = next(p for p in _panels(board) if p["title"].startswith(title))
    return [t["expr"] for t in panel["targets"]]


def test_comparison_joins_the_client_to_the_server_by_service() -> None:
    """Client-side series come from Locust by its `target` label, renamed `service` so the
    waiting time and queue are client minus server for the same service (Little's law)."""
    board = BOARD_JSON["comparison.json"]
    client = _exprs(board, "Client latency")
    assert all("locust_response_time_seconds_bucket{target=~\"$service\"}" in e
               and '"service", "$1", "target", "(.*)"' in e for e in client)
    waiting = _exprs(board, "Time waiting before")[0]
    assert waiting.count("locust_response_time_seconds_") == 2  # client sum / count
    assert waiting.count("http_request_duration_seconds_") == 2  # server sum / count
    assert "- on (service)" in waiting
    in_flight = _exprs(board, "Requests in flight")
    assert "- on (service)" in in_flight[2]
    assert "loadlab_accept_queue_connections" in _exprs(board, "Accept queue")[0]
    per_cpu = _exprs(board, "Requests per CPU-second")[0]
    assert "http_requests_total" in per_cpu and "loadlab_cpu_usage_seconds_total" in per_cpu


def test_limit_lines_only_where_there_is_one() -> None:
    for board in BOARD_JSON.values():
        for panel in _panels(board):
            for target in panel["targets"]:
                if "loadlab_cpu_limit_cores" in target["expr"]:
                    assert target["expr"].endswith("> 0"), (panel["title"], target["expr"])


def _js_regex(pattern: str) -> re.Pattern[str]:
    """Grafana's stringToJsRegex: ``/re/flags`` as written, anything else anchored."""
    if pattern.startswith("/"):
        body, _, flags = pattern[1:].rpartition("/")
        return re.compile(body, re.I if "i" in flags else 0)
    return re.compile(f"^{pattern}$")


def _series_style(panel: dict[str, Any], name: str) -> dict[str, Any]:
    """The properties a series named ``name`` gets from the panel's overrides, in order
    (later overrides win, as in Grafana)."""
    style: dict[str, Any] = {}
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        hit = ((matcher["id"] == "byRegexp" and _js_regex(matcher["options"]).search(name))
               or (matcher["id"] == "byName" and matcher["options"] == name))
        if hit:
            style.update({p["id"]: p["value"] for p in override["properties"]})
    return style


def _all_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return found


SERIES = ("{s}", "{s} p99", "{s} client in flight", "{s} limit", "{s} used")


def test_every_panel_gives_each_service_the_same_colour() -> None:
    """Whatever the panel and whatever a series of a service shows, its colour is the
    service's; `flask` never takes `flask-gevent`'s series (nor fastapi the gunicorn one)."""
    colours: dict[str, set[str]] = {name: set() for name in SERVICE_COLORS}
    for name, board in BOARD_JSON.items():
        for panel in _all_panels(board):
            if panel["type"] == "table":
                mappings = _series_style(panel, "service")["mappings"][0]["options"]
                for service in SERVICE_COLORS:
                    colours[service].add(mappings[service]["color"])
                continue
            for service in SERVICE_COLORS:
                for form in SERIES:
                    style = _series_style(panel, form.format(s=service))
                    assert style.get("color", {}).get("mode") == "fixed", (name, panel["title"])
                    colours[service].add(style["color"]["fixedColor"])
    assert all(len(found) == 1 for found in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(SERVICE_COLORS)  # distinct


def test_limits_and_p99_are_dashed_and_the_rest_solid() -> None:
    for board in BOARD_JSON.values():
        for panel in _all_panels(board):
            if panel["type"] != "timeseries":
                continue
            for series in ("fastapi p99", "flask limit", "p99", "max_connections",
                           "flask-gevent size"):
                style = _series_style(panel, series)
                assert style.get("custom.lineStyle", {}).get("fill") == "dash", series
            for series in ("fastapi", "flask p95", "fastapi client in flight", "p50"):
                assert "custom.lineStyle" not in _series_style(panel, series), series


def test_tooltips_show_every_series_and_legends_no_mean() -> None:
    for board in BOARD_JSON.values():
        assert board["graphTooltip"] == 1  # shared crosshair
        for panel in _all_panels(board):
            if panel["type"] != "timeseries":
                continue
            assert panel["options"]["tooltip"] == {"mode": "multi", "sort": "desc"}
            assert "mean" not in panel["options"]["legend"]["calcs"], panel["title"]


def test_links_keep_the_time_range() -> None:
    uids = {board["uid"] for board in BOARD_JSON.values()}
    for board in BOARD_JSON.values():
        assert board["links"] and all(link["keepTime"] and link["tags"] == ["loadlab"]
                                      for link in board["links"])
    comparison = BOARD_JSON["comparison.json"]
    linked = 0
    for panel in _all_panels(comparison):
        legends = [t.get("legendFormat", "") for t in panel["targets"]]
        if panel["type"] == "table":
            links = _series_style(panel, "service")["links"]
        elif any(legend.startswith("{{service}}") for legend in legends):
            links = panel["fieldConfig"]["defaults"]["links"]
        else:
            continue
        linked += 1
        for link in links:
            path, _, query = link["url"].partition("?")
            assert path.removeprefix("/d/") in uids
            assert "var-service=" in query and "${__url_time_range}" in query
    assert linked >= 15


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert match, duration
    return float(match[1]) * units[match[2]]


def test_load_run_annotation_shades_within_a_scrape_interval() -> None:
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    interval = _seconds(scrape["global"]["scrape_interval"])
    for board in BOARD_JSON.values():
        (annotation,) = [a for a in board["annotations"]["list"] if a.get("expr")]
        assert _seconds(annotation["step"]) <= interval
        assert _seconds(annotation["target"]["interval"]) <= interval
        assert annotation["target"]["expr"] == annotation["expr"]
        assert "locust_run_info" in annotation["expr"]
        text = annotation["titleFormat"] + annotation["textFormat"]
        for label in ("{{target}}", "{{users}}", "{{scenario}}"):
            assert label in text, label


def _datasources(node: Any) -> Iterator[Any]:
    """Every datasource reference anywhere in a board's JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from _datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def test_every_datasource_reference_resolves() -> None:
    provisioned = yaml.safe_load(PROVISIONED_DS.read_text())["datasources"]
    known = {(ds["type"], ds["uid"]) for ds in provisioned}
    for name, board in BOARD_JSON.items():
        refs = list(_datasources(board))
        assert len(refs) > 20, name
        for ref in refs:
            assert isinstance(ref, dict) and (ref["type"], ref["uid"]) in known, (name, ref)


def test_boards_are_written_in_the_pinned_grafanas_model() -> None:
    for board in BOARD_JSON.values():
        assert board["schemaVersion"] == SCHEMA_VERSION
        assert "style" not in board


@pytest.mark.requires("prometheus")
def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    values = {"service": "fastapi|flask", "handler": ".*"}
    with prom.running(tmp_path) as port:
        for name, board in BOARD_JSON.items():
            for where, expr in queries(board):
                reply = prom.get(port, "/api/v1/query", query=substitute(expr, values))
                assert reply["status"] == "success", f"{name} {where}: {reply.get('error')}"


def test_drill_down_has_the_database_panels() -> None:
    in_row = " / ".join(p["title"].lower()
                        for p in row_panels(BOARD_JSON["service.json"], database_row.ROW))
    for needed in ("query duration p50 / p95 by query", "queries per second by query",
                   "pool wait p95", "pool size / in use / waiting", "errors per second by kind"):
        assert needed in in_row, needed


# --- The Database rows against real services, a real PostgreSQL and its exporter ----------
SCRAPE = "1s"
RATE = "5s"  # Grafana's $__rate_interval at a 1 s scrape interval: 4 scrapes
DB_PATHS = ("/db", "/queries?n=3", "/db/sleep?ms=20")
NATIVE_SERVICES = {  # the compose lab's two services, as `loadlab serve` runs them natively
    "fastapi": dict(framework="fastapi", worker_class="uvicorn", workers=1),
    "flask": dict(framework="flask", worker_class="gthread", workers=2, threads=2),
}


def _database_queries() -> list[tuple[str, str]]:
    """(where, expr) of both Database rows, variables filled in for each service."""
    found = []
    for where, expr in queries(BOARD_JSON["comparison.json"], row=database_row.ROW):
        found.append((f"comparison {where}",
                      substitute(expr, {"service": "fastapi|flask"}, rate_interval=RATE)))
    for service in NATIVE_SERVICES:
        for where, expr in queries(BOARD_JSON["service.json"], row=database_row.ROW):
            found.append((f"service={service} {where}",
                          substitute(expr, {"service": service}, rate_interval=RATE)))
    return found


def wait_until_scraped(port: int, expected: list[tuple[str, str]], timeout_s: float = 30,
                       ) -> None:
    """Every target, by its (job, service) labels as in compose, scraped and up."""
    deadline = time.monotonic() + timeout_s
    while True:
        targets = prom.get(port, "/api/v1/targets")["data"]["activeTargets"]
        up = sorted((t["labels"]["job"], t["labels"]["service"]) for t in targets
                    if t["health"] == "up")
        if up == expected:
            return
        assert time.monotonic() < deadline, f"targets not all up: {targets}"
        time.sleep(0.2)


def _empty(port: int, checks: list[tuple[str, str]], start: float) -> list[str]:
    """The queries whose range (as Grafana asks) holds no number yet (NaN: not yet)."""
    empty = []
    for where, expr in checks:
        reply = prom.get(port, "/api/v1/query_range", query=expr, start=f"{start}",
                         end=f"{time.time()}", step="1")
        assert reply["status"] == "success", f"{where}: {reply.get('error')}"
        values = [float(v) for series in reply["data"]["result"] for _, v in series["values"]]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{where}: {expr}")
    return empty


@pytest.mark.slow
@pytest.mark.requires("prometheus", "postgres_exporter")
def test_database_rows_return_data_natively(tmp_path: Path, database_url: str) -> None:
    """Real services with a pool each, postgres_exporter with the lab's CPU query, and
    Prometheus with the lab's jobs and rules: after a little /db, /queries and /db/sleep
    load, every query of both Database rows has numbers."""
    checks = _database_queries()
    assert len(checks) == 9 + 2 * 8, [where for where, _ in checks]
    with db_service(database_url, **NATIVE_SERVICES["fastapi"]) as fastapi, \
            db_service(database_url, **NATIVE_SERVICES["flask"]) as flask, \
            prom.postgres_exporter(database_url, tmp_path) as exporter:
        config = prom.lab_config(tmp_path / "config", {
            "services": {"fastapi": f"127.0.0.1:{fastapi.cfg.port}",
                         "flask": f"127.0.0.1:{flask.cfg.port}"},
            "postgres": {"postgres": exporter},
        })
        data = tmp_path / "data"
        data.mkdir()
        with prom.running(data, scrape_interval=SCRAPE, config_dir=config) as port, \
                httpx.Client(timeout=20) as client, ThreadPoolExecutor(4) as pool:
            start = time.time()
            wait_until_scraped(port, [("postgres", "postgres"), ("services", "fastapi"),
                                      ("services", "flask")])

            def answered(url: str) -> int:
                return client.get(url).status_code

            urls = [f"{svc.url}{path}" for svc in (fastapi, flask) for path in DB_PATHS]
            empty = _no_limit_is_absent(port, _empty(port, checks, start), start)
            rounds = 0
            # Bounded: at most 60 rounds of 24 requests, paced so that the load spans
            # several scrapes (a rate needs two samples in its window).
            while empty and rounds < 60:
                statuses = list(pool.map(answered, urls * 4))
                assert statuses == [200] * len(statuses), statuses
                rounds += 1
                time.sleep(0.25)
                empty = _no_limit_is_absent(port, _empty(port, checks, start), start)
            assert empty == [], f"no data after {rounds} rounds of load:\n" + "\n".join(empty)
            print(f"\nDatabase rows: data after {rounds} rounds of {len(urls) * 4} requests")


# --- Every other query of every board against real services, a real Locust swarm (one
# distributed, one local, each loading its own service) and Prometheus -------------------
SWARM_USERS = "4"


def _board_queries() -> list[tuple[str, str]]:
    """(where, expr) of every query outside the Database rows (the test above holds those
    to data with a real PostgreSQL), variables filled in as Grafana would."""
    found = []
    for name, board in BOARD_JSON.items():
        in_row = set(queries(board, row=database_row.ROW))
        services = list(NATIVE_SERVICES) if name == "service.json" else ["fastapi|flask"]
        for service in services:
            for where, expr in queries(board):
                if (where, expr) in in_row:
                    continue
                filled = substitute(expr, {"service": service, "handler": ".*"},
                                    rate_interval=RATE)
                found.append((f"{name} service={service} {where}", filled))
    return found


def _no_limit_is_absent(port: int, empty: list[str], start: float) -> list[str]:
    """A limit line is drawn only where there is one (``... > 0``): natively there is none,
    so such a query counts as answered when the limit's own series exists (reads 0)."""
    left = []
    for entry in empty:
        where, expr = entry.split(": ", 1)
        if expr.endswith(" > 0") and "limit" in expr:
            bare = expr.removesuffix(" > 0")
            if not _empty(port, [(where, bare)], start):
                continue
        left.append(entry)
    return left


def _drill_down_answered_once(empty: list[str]) -> list[str]:
    """The drill-down shows one service: a panel for one kind of server (event-loop lag:
    async servers only) has data for one of the two, which shows its series exist."""
    def key(entry: str) -> tuple[str, str] | None:
        match = re.match(r"service\.json service=(\S+) (.*?): ", entry)
        return (match[1], match[2]) if match else None

    missing = {k for entry in empty if (k := key(entry))}
    return [entry for entry in empty
            if (k := key(entry)) is None
            or all((service, k[1]) in missing for service in NATIVE_SERVICES)]


def _scraped_at(service: ServiceProcess) -> str:
    """Where Prometheus scrapes a service, as in compose: the supervisor's side port, which
    answers while every worker is busy (the service's own /metrics waits in its queue)."""
    url = getattr(service, "metrics_url", None) or f"{service.url}/metrics"
    return urllib.parse.urlsplit(str(url)).netloc


def _swarm(target: str, url: str, web_port: int, *extra: str) -> Locust:
    """Locust's web UI on loopback, loading ``target`` through its LOADLAB_*_URL (as the
    compose lab does) until stopped."""
    env = {"LOADLAB_FASTAPI_URL": url} if target == "fastapi" else {"LOADLAB_FLASK_URL": url}
    return Locust([
        "--host", url, "--target", target, "--scenario", "io", "--io-ms", "10",
        "-u", SWARM_USERS, "-r", "20", "-t", "120s", "--autostart", "--autoquit", "5",
        "--web-host", "127.0.0.1", "--web-port", str(web_port), *extra,
    ], env=env)


@pytest.mark.slow
@pytest.mark.requires("prometheus")
def test_every_query_returns_data_natively(tmp_path: Path) -> None:
    """FastAPI loaded by a distributed swarm (master and one worker), Flask by a local one,
    both scraped with the lab's jobs and rules: every query of every board (Database rows
    aside) returns numbers, so each names series that exist with the labels it uses."""
    checks = _board_queries()
    fastapi = start_service(**NATIVE_SERVICES["fastapi"])
    flask = start_service(**NATIVE_SERVICES["flask"])
    master_web, master_port, local_web = free_port(), free_port(), free_port()
    swarms = [
        _swarm("fastapi", fastapi.url, master_web, "--master", "--expect-workers", "1",
               "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)),
        Locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)],
               env={"LOADLAB_FASTAPI_URL": fastapi.url}),
        _swarm("flask", flask.url, local_web),
    ]
    try:
        for swarm in swarms:
            swarm.start()
        config = prom.lab_config(tmp_path / "config", {
            "services": {"fastapi": _scraped_at(fastapi), "flask": _scraped_at(flask)},
            "locust": {"locust-master": f"127.0.0.1:{master_web}",
                       "locust-local": f"127.0.0.1:{local_web}"},
        })
        data = tmp_path / "data"
        data.mkdir()
        with prom.running(data, scrape_interval=SCRAPE, config_dir=config) as port:
            start = time.time()
            wait_until_scraped(port, [("locust", "locust-local"), ("locust", "locust-master"),
                                      ("services", "fastapi"), ("services", "flask")])
            deadline = time.monotonic() + 90

            def unanswered() -> list[str]:
                return _drill_down_answered_once(
                    _no_limit_is_absent(port, _empty(port, checks, start), start))

            empty = unanswered()
            while empty and time.monotonic() < deadline:
                time.sleep(1)  # the swarms keep loading; the next scrape may fill the rest
                empty = unanswered()
            assert empty == [], f"{len(empty)} of {len(checks)} queries without data:\n" + \
                "\n".join(empty)
    finally:
        for swarm in swarms:
            swarm.terminate()
        for swarm in swarms:
            swarm.finish(timeout_s=30)
        fastapi.stop()
        flask.stop()


# --- The wait a saturated sync worker puts in front of the application: a line on the board
QUEUE_USERS = "25"  # a `both` run of 50 users split evenly


def _panel_expr(title: str, legend: str) -> str:
    board = BOARD_JSON["comparison.json"]
    panel = next(p for p in _panels(board) if p["title"].startswith(title))
    expr = next(t["expr"] for t in panel["targets"] if t["legendFormat"] == legend)
    return substitute(expr, {"service": "fastapi|flask"}, rate_interval=RATE)


def _by_service(port: int, expr: str) -> dict[str, float]:
    reply = prom.get(port, "/api/v1/query", query=expr)
    assert reply["status"] == "success", reply
    return {r["metric"]["service"]: float(r["value"][1]) for r in reply["data"]["result"]
            if math.isfinite(float(r["value"][1]))}


@pytest.mark.slow
@pytest.mark.requires("prometheus")
def test_one_sync_workers_queue_is_a_line_on_the_comparison_board(tmp_path: Path) -> None:
    """Flask on one Gunicorn sync worker and FastAPI on Uvicorn, 25 users each waiting 50 ms
    per request: the board's "time waiting before the application" for Flask is at least
    10x its own server-side p50 (the requests queue in the kernel's backlog, which the
    server's histogram cannot see), FastAPI's stays a tenth of that at most (Locust's own
    overhead on a busy machine, no queue), and Flask's requests
    waiting (Little's law) and accept queue show the queue as a count."""
    flask = start_service(framework="flask", worker_class="sync", workers=1)
    fastapi = start_service(framework="fastapi", worker_class="uvicorn", workers=1)
    flask_web, fastapi_web = free_port(), free_port()
    swarms = []
    for target, svc, web in (("flask", flask, flask_web), ("fastapi", fastapi, fastapi_web)):
        swarm = _swarm(target, svc.url, web)
        swarm.args[swarm.args.index("--io-ms") + 1] = "50"
        swarm.args[swarm.args.index("-u") + 1] = QUEUE_USERS
        swarms.append(swarm)
    waiting = _panel_expr("Time waiting before", "{{service}} waiting")
    p50 = _panel_expr("Server latency", "{{service}} p50")
    in_queue = _panel_expr("Requests in flight", "{{service}} waiting")
    accept = _panel_expr("Accept queue", "{{service}}")
    try:
        for swarm in swarms:
            swarm.start()
        config = prom.lab_config(tmp_path / "config", {
            "services": {"fastapi": _scraped_at(fastapi), "flask": _scraped_at(flask)},
            "locust": {"locust-flask": f"127.0.0.1:{flask_web}",
                       "locust-fastapi": f"127.0.0.1:{fastapi_web}"},
        })
        data = tmp_path / "data"
        data.mkdir()
        with prom.running(data, scrape_interval=SCRAPE, config_dir=config) as port:
            wait_until_scraped(port, [("locust", "locust-fastapi"), ("locust", "locust-flask"),
                                      ("services", "fastapi"), ("services", "flask")])

            def queued() -> bool:
                wait, served = _by_service(port, waiting), _by_service(port, p50)
                return ("flask" in wait and "flask" in served
                        and wait["flask"] >= 10 * served["flask"])

            deadline = time.monotonic() + 90
            while not queued() and time.monotonic() < deadline:
                time.sleep(1)  # the queue builds up over the first rate windows
            wait, served = _by_service(port, waiting), _by_service(port, p50)
            print(f"\nwaiting {wait}, server p50 {served}, requests waiting "
                  f"{_by_service(port, in_queue)}, accept queue {_by_service(port, accept)}")
            assert wait.get("flask", 0) >= 10 * served["flask"], (wait, served)
            assert wait["fastapi"] < wait["flask"] / 10, (wait, served)  # no queue there
            assert _by_service(port, in_queue)["flask"] >= 5
            assert _by_service(port, accept)["flask"] >= 5
    finally:
        for swarm in swarms:
            swarm.terminate()
        for swarm in swarms:
            swarm.finish(timeout_s=30)
        flask.stop()
        fastapi.stop()
