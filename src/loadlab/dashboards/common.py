"""Shared pieces of the dashboards: the datasource by uid, queries, panel defaults.

The datasource uid is fixed here and in grafana/provisioning/datasources/, so the
dashboards never depend on what Grafana happened to name things.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "loadlab-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"  # Grafana: at least four scrape intervals (see timeInterval)
REF_IDS = "ABCDEFGHIJ"


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
            .calcs(["mean", "max", "lastNotNull"])
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


def swarm_annotation() -> db.AnnotationQuery:
    """Shade the time a Locust swarm ran, on every panel."""
    return (
        db.AnnotationQuery()
        .name("Load runs")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("rgba(255, 152, 48, 0.4)")
        .expr("sum(locust_users) > 0")
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


PanelMaker = Callable[[], timeseries.Panel]


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
