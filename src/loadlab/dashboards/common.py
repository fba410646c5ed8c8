"""Shared pieces of the dashboards: the datasource by uid, queries, panel defaults, and the
look every board shares (a fixed colour per service, dashed limits and p99, tooltips with
every series, links between the boards).

The datasource uid is fixed here and in grafana/provisioning/datasources/, so the
dashboards never depend on what Grafana happened to name things.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "loadlab-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"  # Grafana: at least four scrape intervals (see timeInterval)
REF_IDS = "ABCDEFGHIJ"
# The dashboard JSON model these boards are written in: the pinned Grafana (13.1) reads
# newer models too and migrates nothing here (schema 42 changes only hidden-field
# tooltips; 43 only formatTime transformations, neither of which the boards use).
SCHEMA_VERSION = 42
SERVICE_UID = "loadlab-service"  # the drill-down board, target of every service's data link

# One colour per service on every panel of every board: Locust's `target` and the services'
# own `service` label carry these names (compose service names), and every series whose
# legend starts with one ("fastapi", "fastapi p99", "fastapi limit") takes its colour.
SERVICE_COLORS = {
    "fastapi": "green",
    "flask": "blue",
    "fastapi-gunicorn": "orange",
    "flask-gevent": "purple",
    "app": "yellow",  # a user's app (compose profile `app`)
    "postgres": "red",
}
# Lines that are bounds or tails, not the typical value: drawn dashed and unfilled.
DASHED = r"(.* )?(limit|p99|size|max_connections)( .*)?"
# Where the annotation and summary read Locust's run: at most the scrape interval of the
# lab's Prometheus (5 s by default), so a 20 s run is shaded within one scrape.
ANNOTATION_STEP = "5s"


def service_pattern(service: str) -> str:
    """The series of ``service``: its name alone or followed by a space and what it shows.
    Grafana anchors a pattern without slashes (``^...$``), so ``flask`` never takes
    ``flask-gevent``'s series."""
    return f"{service}( .*)?"


def query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .range()
    )


def timeseries_panel(
    title: str, unit: str, description: str, *queries: tuple[str, str],
    width: int = 12, height: int = 8, min_zero: bool = True,
) -> timeseries.Panel:
    """A time series of (expr, legend) queries; refIds A, B, ... in order."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            # No mean: over the board's window it would average idle time in.
            .calcs(["max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if min_zero:
        panel = panel.min(0)
    for ref_id, (expr, legend) in zip(REF_IDS, queries, strict=False):
        panel = panel.with_target(query(expr, legend, ref_id))
    return panel


def service_variable(multi: bool) -> db.QueryVariable:
    """The lab's services (variants), from the info metric every service exports."""
    return (
        db.QueryVariable("service")
        .label("Service")
        .datasource(DATASOURCE)
        .query("label_values(loadlab_server_info, service)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )


# Users per target choice while a swarm runs (locust_run_info{target,scenario}), the user
# count turned into a label so the annotation's text can say it (a ramp-up draws one short
# region per count on the way); the Locust master's own `service` label is summed away.
RUN_QUERY = ('count_values by (target, scenario) ("users", '
             "sum by (target, scenario) (locust_run_info) > 0)")


def swarm_annotation() -> db.AnnotationQuery:
    """Shade the time a Locust swarm ran, on every panel (step and text added by finish)."""
    return (
        db.AnnotationQuery()
        .name("Load runs")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("rgba(255, 152, 48, 0.4)")
        .expr(RUN_QUERY)
    )


def new_dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["loadlab"])
        .refresh("5s")
        .time("now-15m", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .annotation(swarm_annotation())
    )


PanelMaker = Callable[[], timeseries.Panel | table.Panel]


def with_panels(board: db.Dashboard, panels: Sequence[PanelMaker],
                rows: Sequence[tuple[str, Sequence[PanelMaker]]] = ()) -> db.Dashboard:
    """Panels first, then each (title, panels) under a row; ids 1, 2, ... in that order,
    so adding a row never renumbers the panels above it."""
    panel_id = 0
    for make in panels:
        panel_id += 1
        board = board.with_panel(make().id(panel_id))
    for title, makers in rows:
        panel_id += 1
        board = board.with_row(db.Row(title).id(panel_id))
        for make in makers:
            panel_id += 1
            board = board.with_panel(make().id(panel_id))
    return board


# --- The look every board shares, applied to the built JSON ---------------------------------
def color_override(service: str, color: str) -> dict[str, Any]:
    return {"matcher": {"id": "byRegexp", "options": service_pattern(service)},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}


def dashed_override() -> dict[str, Any]:
    return {"matcher": {"id": "byRegexp", "options": DASHED},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                           {"id": "custom.fillOpacity", "value": 0}]}


SERVICE_LINK = {  # from a series that has a `service` label to that service's drill-down
    "title": "Drill down: ${__field.labels.service}",
    "url": f"/d/{SERVICE_UID}?var-service=${{__field.labels.service}}&${{__url_time_range}}",
}
BOARD_LINKS = [{
    "title": "loadlab boards", "type": "dashboards", "tags": ["loadlab"], "asDropdown": False,
    "includeVars": False, "keepTime": True, "targetBlank": False, "icon": "external link",
    "tooltip": "", "url": "",
}]


def _style_panel(panel: dict[str, Any]) -> None:
    config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
    own = config.get("overrides") or []
    shared = [color_override(s, c) for s, c in SERVICE_COLORS.items()]
    if panel["type"] == "timeseries":
        shared.append(dashed_override())
        if any(t.get("legendFormat", "").startswith("{{service}}")
               for t in panel.get("targets", [])):
            config["defaults"]["links"] = [copy.deepcopy(SERVICE_LINK)]
    config["overrides"] = shared + own  # the panel's own (table columns) after the colours
    if panel["type"] == "table" and not panel.get("options"):
        panel["options"] = {"showHeader": True, "cellHeight": "sm",
                            "sortBy": [{"displayName": "Service", "desc": False}]}
    for key in ("repeatDirection", "transparent"):  # SDK leftovers Grafana does not need
        panel.pop(key, None)


def _annotation(annotation: dict[str, Any]) -> dict[str, Any]:
    """The legacy fields (expr, step, titleFormat, textFormat) and the query model newer
    Grafana reads (target with its min step), so either path samples every 5 s."""
    annotation.update({
        "step": ANNOTATION_STEP,
        "titleFormat": "Load run: {{target}}",
        "textFormat": "target {{target}}, {{users}} users, scenario {{scenario}}",
        "tagKeys": "target,scenario",
        "useValueForTime": False,
        "target": {"expr": annotation["expr"], "interval": ANNOTATION_STEP, "refId": "Anno",
                   "range": True, "instant": False,
                   "legendFormat": "{{target}} {{users}} users {{scenario}}"},
    })
    return annotation


def finish(board: dict[str, Any]) -> dict[str, Any]:
    """The shared look on a built board: colours and dashes on every panel, data links to
    the drill-down, links between the boards, the annotation's step and text."""
    board["schemaVersion"] = SCHEMA_VERSION
    board.pop("style", None)  # dropped from the model long ago (Grafana ignores it)
    board["links"] = copy.deepcopy(BOARD_LINKS)
    board["graphTooltip"] = 1  # shared crosshair: the same instant on every panel
    for panel in board.get("panels", []):
        if panel["type"] == "row":
            for inner in panel.get("panels", []):
                _style_panel(inner)
        else:
            _style_panel(panel)
    for variable in board.get("templating", {}).get("list", []):
        for key in ("id", "auto", "auto_count", "auto_min"):  # interval-variable leftovers
            variable.pop(key, None)
        if variable.get("includeAll"):
            variable["current"] = {"text": "All", "value": "$__all"}
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            _annotation(annotation)
    return board
