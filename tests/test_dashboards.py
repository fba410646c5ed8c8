"""Dashboards as code: the committed JSON is the generator's output, the model is sound
(fixed uids, datasource by uid, refIds), every query parses in a real Prometheus, and the
Database rows' queries return data from real services on a real PostgreSQL."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import prometheus_native as prom
import pytest
from lab_services import db_service

from loadlab.cli import main as cli_main
from loadlab.dashboards import BOARDS, database, default_dir, render, stale
from loadlab.dashboards.common import DATASOURCE_UID
from loadlab.dashboards.queries import queries, row_panels, substitute

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
    for needed in ("requests per second", "p50", "p95", "p99", "error", "in-flight",
                   "cpu used vs limit", "throttled", "memory", "event-loop lag",
                   "thread pool", "locust users", "locust requests"):
        assert needed in titles, needed
    board = BOARD_JSON["comparison.json"]
    in_row = " / ".join(p["title"].lower() for p in row_panels(board, database.ROW))
    for needed in ("pool in use / waiting", "pool wait p95", "connections by state",
                   "database cpu"):
        assert needed in in_row, needed
    service = board["templating"]["list"][0]
    assert service["name"] == "service" and service["multi"] and service["includeAll"]
    assert any(a.get("expr") for a in board["annotations"]["list"]), "no load-run annotation"


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
                        for p in row_panels(BOARD_JSON["service.json"], database.ROW))
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
    for where, expr in queries(BOARD_JSON["comparison.json"], row=database.ROW):
        found.append((f"comparison {where}",
                      substitute(expr, {"service": "fastapi|flask"}, rate_interval=RATE)))
    for service in NATIVE_SERVICES:
        for where, expr in queries(BOARD_JSON["service.json"], row=database.ROW):
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
            empty = _empty(port, checks, start)
            rounds = 0
            # Bounded: at most 60 rounds of 24 requests, paced so that the load spans
            # several scrapes (a rate needs two samples in its window).
            while empty and rounds < 60:
                statuses = list(pool.map(answered, urls * 4))
                assert statuses == [200] * len(statuses), statuses
                rounds += 1
                time.sleep(0.25)
                empty = _empty(port, checks, start)
            assert empty == [], f"no data after {rounds} rounds of load:\n" + "\n".join(empty)
            print(f"\nDatabase rows: data after {rounds} rounds of {len(urls) * 4} requests")
