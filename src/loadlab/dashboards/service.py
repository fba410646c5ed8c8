"""Service drill-down: one service, handler by handler."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import dashboard as model

from loadlab.dashboards import database_row
from loadlab.dashboards.common import (
    DATASOURCE,
    RATE,
    new_dashboard,
    service_variable,
    timeseries_panel,
    with_panels,
)

UID = "loadlab-service"
SVC = 'service="$service"'
SEL = 'service="$service", handler=~"$handler"'


def handler_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("handler")
        .label("Handler")
        .datasource(DATASOURCE)
        .query('label_values(http_requests_total{service="$service"}, handler)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )


def requests_by_handler() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per second by handler", "reqps", "Route templates, never raw URLs.",
        (f"sum by (handler) (rate(http_requests_total{{{SEL}}}[{RATE}]))", "{{handler}}"),
    )


def status_codes() -> timeseries.Panel:
    return timeseries_panel(
        "Answers by status", "reqps", "4xx are bad input answered properly; 5xx are faults.",
        (f"sum by (status) (rate(http_requests_total{{{SEL}}}[{RATE}]))", "{{status}}"),
    )


def latency_p95_by_handler() -> timeseries.Panel:
    return timeseries_panel(
        "Latency p95 by handler", "s", "Server-side duration, 95th percentile.",
        (f"histogram_quantile(0.95, sum by (handler, le) "
         f"(rate(http_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{handler}}"),
    )


def latency_p99_by_handler() -> timeseries.Panel:
    return timeseries_panel(
        "Latency p99 by handler", "s", "Server-side duration, 99th percentile.",
        (f"histogram_quantile(0.99, sum by (handler, le) "
         f"(rate(http_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{handler}}"),
    )


def mean_latency_by_handler() -> timeseries.Panel:
    return timeseries_panel(
        "Mean latency by handler", "s", "Total time over count.",
        (f"sum by (handler) (rate(http_request_duration_seconds_sum{{{SEL}}}[{RATE}]))"
         f" / sum by (handler) (rate(http_request_duration_seconds_count{{{SEL}}}[{RATE}]))",
         "{{handler}}"),
    )


def client_vs_server() -> timeseries.Panel:
    """The Comparison board's question for this one service: what its users saw (Locust,
    by `target`) against what it measured, and the wait in between."""
    def client(metric: str) -> str:
        return f'rate({metric}{{target="$service"}}[{RATE}])'

    def client_quantile(q: str) -> str:
        return (f"histogram_quantile({q}, sum by (le) "
                f"({client('locust_response_time_seconds_bucket')}))")

    client_mean = (f"(sum({client('locust_response_time_seconds_sum')}) / "
                   f"sum({client('locust_response_time_seconds_count')}))")
    server_mean = (f"(sum(rate(http_request_duration_seconds_sum{{{SVC}}}[{RATE}])) / "
                   f"sum(rate(http_request_duration_seconds_count{{{SVC}}}[{RATE}])))")
    return timeseries_panel(
        "Client vs server latency, and the wait in between", "s",
        "Locust's response times for this service (from the send) against the service's own "
        "(from the moment the application got the request); waiting = client mean - server "
        "mean, the time spent queued in front of the application.",
        (client_quantile("0.50"), "client p50"),
        (client_quantile("0.99"), "client p99"),
        (f"histogram_quantile(0.50, sum by (le) "
         f"(rate(http_request_duration_seconds_bucket{{{SVC}}}[{RATE}])))", "server p50"),
        (f"histogram_quantile(0.99, sum by (le) "
         f"(rate(http_request_duration_seconds_bucket{{{SVC}}}[{RATE}])))", "server p99"),
        (f"{client_mean} - {server_mean}", "waiting"),
        min_zero=False,
    )


def accept_queue() -> timeseries.Panel:
    return timeseries_panel(
        "Accept queue (kernel backlog)", "short",
        "Connections completed by the kernel that the server has not accepted yet, against "
        "the listening socket's backlog. Keep-alive connections queue inside a worker, "
        "where the kernel cannot see them.",
        (f"sum(loadlab_accept_queue_connections{{{SVC}}})", "queued"),
        (f"max(loadlab_accept_queue_limit{{{SVC}}})", "limit"),
    )


def in_flight_by_handler() -> timeseries.Panel:
    return timeseries_panel(
        "In-flight by handler", "short", "Requests being handled now.",
        (f"sum by (handler) (http_requests_in_progress{{{SEL}}})", "{{handler}}"),
    )


def cpu_and_throttling() -> timeseries.Panel:
    return timeseries_panel(
        "CPU used, limit, throttled", "short",
        "Cores used, the limit (drawn only where there is one), and seconds per second "
        "spent throttled.",
        (f"sum(rate(loadlab_cpu_usage_seconds_total{{{SVC}}}[{RATE}]))", "used"),
        (f"max(loadlab_cpu_limit_cores{{{SVC}}}) > 0", "limit"),
        (f"sum(rate(loadlab_cpu_throttled_seconds_total{{{SVC}}}[{RATE}]))", "throttled"),
    )


def memory_and_workers() -> timeseries.Panel:
    return timeseries_panel(
        "Memory", "bytes", "Resident memory of all the service's processes.",
        (f"sum(loadlab_memory_bytes{{{SVC}}})", "memory"),
    )


def event_loop_lag() -> timeseries.Panel:
    return timeseries_panel(
        "Event-loop lag p50 / p99", "s", "Async servers only.",
        (f"histogram_quantile(0.50, sum by (le) "
         f"(rate(loadlab_event_loop_lag_seconds_bucket{{{SVC}}}[{RATE}])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) "
         f"(rate(loadlab_event_loop_lag_seconds_bucket{{{SVC}}}[{RATE}])))", "p99"),
    )


def thread_pool() -> timeseries.Panel:
    return timeseries_panel(
        "Thread pool and workers", "short", "Busy threads, pool size, live workers.",
        (f"sum(loadlab_threadpool_busy{{{SVC}}})", "busy threads"),
        (f"sum(loadlab_threadpool_size{{{SVC}}})", "pool size"),
        (f"sum(loadlab_workers{{{SVC}}})", "workers"),
    )


PANELS = (
    requests_by_handler, status_codes, client_vs_server, accept_queue,
    latency_p95_by_handler, latency_p99_by_handler,
    mean_latency_by_handler, in_flight_by_handler, cpu_and_throttling, memory_and_workers,
    event_loop_lag, thread_pool,
)


def build() -> db.Dashboard:
    board = (
        new_dashboard(UID, "loadlab: Service drill-down", "One service, handler by handler.")
        .with_variable(service_variable(multi=False))
        .with_variable(handler_variable())
    )
    return with_panels(board, PANELS, [(database_row.ROW, database_row.SERVICE)])
