"""Dashboards as code: the committed JSON is the generator's output, the model is sound
(fixed uids, datasource by uid, refIds), and every query parses in a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import prometheus_native as prom
import pytest

from loadlab.cli import main as cli_main
from loadlab.dashboards import BOARDS, default_dir, render, stale
from loadlab.dashboards.common import DATASOURCE_UID
from loadlab.dashboards.queries import queries, substitute

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
    return list(board["panels"])


def test_fixed_unique_uids_and_panel_ids() -> None:
    uids = [board["uid"] for board in BOARD_JSON.values()]
    assert len(set(uids)) == len(uids) and all(uid.startswith("loadlab-") for uid in uids)
    for board in BOARD_JSON.values():
        ids = [panel["id"] for panel in _panels(board)]
        assert len(set(ids)) == len(ids) and None not in ids


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
