"""Comparison: the lab's services side by side, one line per service (variant), on one
time axis: what the users saw (Locust, by the service a request went to), what the
servers measured, and the difference between the two, which is the time a request
waited before the application saw it (the kernel's accept queue in front of busy sync
workers, a worker's own queue).

Every panel answers one question of the lab; ``$service`` picks the variants to compare
(all by default: fastapi, flask, and the profile variants when they run). Locust's series
carry the service as ``target``; ``label_replace`` renames it ``service`` so both sides
join, take the same colour and link to the same drill-down.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, table, timeseries
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from loadlab.dashboards import database_row
from loadlab.dashboards.common import (
    DATASOURCE,
    RATE,
    REF_IDS,
    SERVICE_COLORS,
    SERVICE_UID,
    new_dashboard,
    service_variable,
    timeseries_panel,
    with_panels,
)

UID = "loadlab-comparison"
SEL = 'service=~"$service"'
TARGET = 'target=~"$service"'  # Locust's label for the same services
RANGE = "$__range"  # the summary: over the whole selected time range


# --- The queries, for a window (the panels' rate interval or the summary's range) -----------
def client(metric: str, window: str) -> str:
    """Locust's per-target rate of ``metric``, its `target` renamed `service`."""
    return (f'label_replace(rate({metric}{{{TARGET}}}[{window}]), '
            '"service", "$1", "target", "(.*)")')


def server_rps(window: str = RATE) -> str:
    return f"sum by (service) (rate(http_requests_total{{{SEL}}}[{window}]))"


def client_rps(window: str = RATE) -> str:
    return f"sum by (service) ({client('locust_requests_total', window)})"


def cores(window: str = RATE) -> str:
    return f"sum by (service) (rate(loadlab_cpu_usage_seconds_total{{{SEL}}}[{window}]))"


def per_cpu_second(window: str = RATE) -> str:
    return f"{server_rps(window)} / {cores(window)}"


def client_quantile(q: str, window: str = RATE) -> str:
    return (f"histogram_quantile({q}, sum by (service, le) "
            f"({client('locust_response_time_seconds_bucket', window)}))")


def server_quantile(q: str, window: str = RATE) -> str:
    return (f"histogram_quantile({q}, sum by (service, le) "
            f"(rate(http_request_duration_seconds_bucket{{{SEL}}}[{window}])))")


def client_busy(window: str = RATE) -> str:
    """Seconds of response per second = requests in flight at the client (Little's law)."""
    return f"sum by (service) ({client('locust_response_time_seconds_sum', window)})"


def server_busy(window: str = RATE) -> str:
    """Seconds of handling per second = requests in progress in the application."""
    return f"sum by (service) (rate(http_request_duration_seconds_sum{{{SEL}}}[{window}]))"


def client_mean(window: str = RATE) -> str:
    return (f"({client_busy(window)} / sum by (service) "
            f"({client('locust_response_time_seconds_count', window)}))")


def server_mean(window: str = RATE) -> str:
    return (f"({server_busy(window)} / sum by (service) "
            f"(rate(http_request_duration_seconds_count{{{SEL}}}[{window}])))")


def waiting_time(window: str = RATE) -> str:
    """Client mean minus server mean: the time before the application saw the request."""
    return f"{client_mean(window)} - on (service) {server_mean(window)}"


def waiting_requests(window: str = RATE) -> str:
    """Little's law on both sides: in flight at the client minus in progress at the server."""
    return f"{client_busy(window)} - on (service) {server_busy(window)}"


def client_failure_ratio(window: str = RATE) -> str:
    failures = f"sum by (service) ({client('locust_failures_total', window)})"
    return f"({failures} or {client_rps(window)} * 0) / {client_rps(window)}"


def server_error_ratio(window: str = RATE) -> str:
    errors = (f'sum by (service) (rate(http_requests_total{{{SEL}, status=~"5.."}}'
              f"[{window}]))")
    return f"({errors} or {server_rps(window)} * 0) / {server_rps(window)}"


# --- The summary table ------------------------------------------------------------------
SUMMARY = (  # (column, unit, expr over the selected range)
    ("req/s", "reqps", server_rps(RANGE)),
    ("client p95", "s", client_quantile("0.95", RANGE)),
    ("client p99", "s", client_quantile("0.99", RANGE)),
    ("server p95", "s", server_quantile("0.95", RANGE)),
    ("server p99", "s", server_quantile("0.99", RANGE)),
    ("client failures", "percentunit", client_failure_ratio(RANGE)),
    ("server 5xx", "percentunit", server_error_ratio(RANGE)),
    ("cores", "short", cores(RANGE)),
    ("req per CPU-second", "short", per_cpu_second(RANGE)),
    ("waiting (mean)", "s", waiting_time(RANGE)),
)


def _prop(id_val: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=id_val, value=value)


def summary() -> table.Panel:
    panel = (
        table.Panel()
        .title("Summary over the selected time range")
        .description(
            "Per service, over the whole range picked above: zoom to a run to compare it. "
            "Client columns are what Locust's users saw; server columns what the service "
            "measured; waiting is the client's mean minus the server's mean.")
        .datasource(DATASOURCE)
        .span(24)
        .height(7)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(model.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True},
            "indexByName": {"service": 0, **{f"Value #{r}": i + 1
                                             for i, r in enumerate(REF_IDS)}},
            "renameByName": {},
        }))
        .override_by_name("service", [
            _prop("displayName", "Service"),
            _prop("custom.cellOptions", {"type": "color-text"}),
            _prop("mappings", [{"type": "value", "options": {
                name: {"color": color, "index": i}
                for i, (name, color) in enumerate(SERVICE_COLORS.items())}}]),
            _prop("links", [{
                "title": "Drill down: ${__value.raw}",
                "url": f"/d/{SERVICE_UID}?var-service=${{__value.raw}}&${{__url_time_range}}",
            }]),
        ])
    )
    for ref_id, (column, unit, expr) in zip(REF_IDS, SUMMARY, strict=True):
        panel = panel.with_target(
            prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
            .instant().format(PromQueryFormat.TABLE).legend_format("__auto"))
        panel = panel.override_by_name(f"Value #{ref_id}", [
            _prop("displayName", column), _prop("unit", unit), _prop("decimals", 3)])
    return panel


# --- Time series ------------------------------------------------------------------------
def requests_per_second() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per second: server and client", "reqps",
        "Answered requests per second as the service counts them, and completed requests "
        "as Locust counts them (by the service they went to).",
        (server_rps(), "{{service}}"),
        (client_rps(), "{{service}} client"),
    )


def requests_per_cpu_second() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per CPU-second", "short",
        "Answered requests per second over the cores the whole service used: what one "
        "core's second buys on each stack.",
        (per_cpu_second(), "{{service}}"),
    )


def client_latency() -> timeseries.Panel:
    return timeseries_panel(
        "Client latency p50 / p95 / p99 (what the users saw)", "s",
        "Locust's response times by the service they went to, from the moment the request "
        "was sent: queueing in front of the application and timeouts included.",
        (client_quantile("0.50"), "{{service}} p50"),
        (client_quantile("0.95"), "{{service}} p95"),
        (client_quantile("0.99"), "{{service}} p99"),
    )


def server_latency() -> timeseries.Panel:
    return timeseries_panel(
        "Server latency p50 / p95 / p99 and mean (inside the application)", "s",
        "The services' own histograms: from the moment the application got the request. "
        "Everything before that (the kernel's backlog, a busy worker) is invisible here.",
        (server_quantile("0.50"), "{{service}} p50"),
        (server_quantile("0.95"), "{{service}} p95"),
        (server_quantile("0.99"), "{{service}} p99"),
        (server_mean(), "{{service}} mean"),
    )


def waiting_before_application() -> timeseries.Panel:
    return timeseries_panel(
        "Time waiting before the application (client mean - server mean)", "s",
        "Mean time a request spent between Locust sending it and the application starting "
        "it: the accept queue in front of busy sync workers, a worker's own queue, the "
        "network. Near 0 while the service keeps up.",
        (waiting_time(), "{{service}} waiting"),
        min_zero=False,
    )


def requests_waiting() -> timeseries.Panel:
    return timeseries_panel(
        "Requests in flight: client, server, waiting (Little's law)", "short",
        "In flight at the client (response seconds per second) against in progress in the "
        "application (handling seconds per second); the difference is how many requests "
        "wait in front of the application on average.",
        (client_busy(), "{{service}} client in flight"),
        (server_busy(), "{{service}} server in progress"),
        (waiting_requests(), "{{service}} waiting"),
        min_zero=False,
    )


def accept_queue() -> timeseries.Panel:
    return timeseries_panel(
        "Accept queue (kernel backlog)", "short",
        "Connections the kernel has completed but the server has not accepted yet, on the "
        "service's listening socket(s), against the socket's backlog. Keep-alive "
        "connections queue inside a worker instead, where the kernel cannot see them.",
        (f"sum by (service) (loadlab_accept_queue_connections{{{SEL}}})", "{{service}}"),
        (f"max by (service) (loadlab_accept_queue_limit{{{SEL}}})", "{{service}} limit"),
    )


def failures() -> timeseries.Panel:
    return timeseries_panel(
        "Failures: client and server 5xx", "percentunit",
        "Share of requests Locust counted as failed (timeouts and resets included, which "
        "the service never sees) and share of answers the service sent with a 5xx status.",
        (client_failure_ratio(), "{{service}} client failures"),
        (server_error_ratio(), "{{service}} server 5xx"),
    )


def cpu_used_vs_limit() -> timeseries.Panel:
    return timeseries_panel(
        "CPU used vs limit", "short",
        "Cores used by the whole service (all workers) against its CPU limit, drawn only "
        "where there is one.",
        (cores(), "{{service}} used"),
        (f"max by (service) (loadlab_cpu_limit_cores{{{SEL}}}) > 0", "{{service}} limit"),
    )


def throttled_share() -> timeseries.Panel:
    periods = f"sum by (service) (rate(loadlab_cpu_periods_total{{{SEL}}}[{RATE}]))"
    return timeseries_panel(
        "CFS throttled share", "percentunit",
        "Share of scheduler periods in which the service hit its CPU quota; 0 for a "
        "service without a quota (it has no periods to count).",
        (f"sum by (service) (rate(loadlab_cpu_throttled_periods_total{{{SEL}}}[{RATE}]))"
         f" / ({periods} > 0) or {periods} * 0", "{{service}}"),
    )


def memory() -> timeseries.Panel:
    return timeseries_panel(
        "Memory", "bytes", "Resident memory of the whole service (all workers).",
        (f"sum by (service) (loadlab_memory_bytes{{{SEL}}})", "{{service}}"),
    )


def event_loop_lag() -> timeseries.Panel:
    return timeseries_panel(
        "Event-loop lag p99", "s",
        "How late the event loop wakes a sleeping task; async servers only. CPU work on "
        "the loop (/cpu/blocking) shows up here.",
        (f"histogram_quantile(0.99, sum by (service, le) "
         f"(rate(loadlab_event_loop_lag_seconds_bucket{{{SEL}}}[{RATE}])))", "{{service}} p99"),
    )


def thread_pool() -> timeseries.Panel:
    return timeseries_panel(
        "Thread pool busy / size", "short",
        "FastAPI's sync-endpoint pool (AnyIO, 40 tokens) and Gunicorn gthread threads.",
        (f"sum by (service) (loadlab_threadpool_busy{{{SEL}}})", "{{service}} busy"),
        (f"sum by (service) (loadlab_threadpool_size{{{SEL}}})", "{{service}} size"),
    )


def workers() -> timeseries.Panel:
    return timeseries_panel(
        "Live workers", "short", "Worker processes that serve requests.",
        (f"sum by (service) (loadlab_workers{{{SEL}}})", "{{service}}"),
    )


def locust_users() -> timeseries.Panel:
    return timeseries_panel(
        "Locust users by target", "short",
        "Simulated users running in the swarm, by the form's Target choice (`both` loads "
        "FastAPI and Flask at once, users split evenly).",
        ("sum by (target) (locust_run_info)", "{{target}}"),
        ("sum(locust_users)", "all users"),
    )


PANELS = (
    summary, requests_per_second, requests_per_cpu_second, client_latency, server_latency,
    waiting_before_application, requests_waiting, accept_queue, failures, cpu_used_vs_limit,
    throttled_share, memory, event_loop_lag, thread_pool, workers, locust_users,
)


def build() -> db.Dashboard:
    board = new_dashboard(
        UID, "loadlab: Comparison",
        "FastAPI on Uvicorn against Flask on Gunicorn (and any variant), side by side: "
        "what the users saw, what the servers measured, and the wait in between.",
    ).with_variable(service_variable(multi=True))
    return with_panels(board, PANELS, [(database_row.ROW, database_row.COMPARISON)])
