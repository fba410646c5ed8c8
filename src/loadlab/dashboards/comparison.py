"""Comparison: the lab's services side by side, one line per service (variant).

Every panel answers one question of the lab; ``$service`` picks the variants to compare
(all by default: fastapi, flask, and the profile variants when they run).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from loadlab.dashboards import database
from loadlab.dashboards.common import (
    RATE,
    new_dashboard,
    service_variable,
    timeseries_panel,
    with_panels,
)

UID = "loadlab-comparison"
SEL = 'service=~"$service"'


def requests_per_second() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per second", "reqps", "Answered requests per second, all handlers.",
        (f"sum by (service) (rate(http_requests_total{{{SEL}}}[{RATE}]))", "{{service}}"),
    )


def latency_percentiles() -> timeseries.Panel:
    def quantile(q: str) -> tuple[str, str]:
        return (
            f"histogram_quantile({q}, sum by (service, le) "
            f"(rate(http_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
            f"{{{{service}}}} p{q[2:]}",
        )

    return timeseries_panel(
        "Latency p50 / p95 / p99", "s",
        "Server-side request duration percentiles (from the services' histograms).",
        quantile("0.50"), quantile("0.95"), quantile("0.99"),
    )


def error_ratio() -> timeseries.Panel:
    total = f"sum by (service) (rate(http_requests_total{{{SEL}}}[{RATE}]))"
    errors = f'sum by (service) (rate(http_requests_total{{{SEL}, status=~"5.."}}[{RATE}]))'
    return timeseries_panel(
        "Error ratio (5xx)", "percentunit",
        "Share of answers with a 5xx status; 0 while every request succeeds.",
        (f"({errors} or {total} * 0) / {total}", "{{service}}"),
    )


def in_flight() -> timeseries.Panel:
    return timeseries_panel(
        "In-flight requests", "short", "Requests being handled now, summed over workers.",
        (f"sum by (service) (http_requests_in_progress{{{SEL}}})", "{{service}}"),
    )


def cpu_used_vs_limit() -> timeseries.Panel:
    return timeseries_panel(
        "CPU used vs limit", "short",
        "Cores used by the whole service (all workers) against its CPU limit.",
        (f"sum by (service) (rate(loadlab_cpu_usage_seconds_total{{{SEL}}}[{RATE}]))",
         "{{service}} used"),
        (f"max by (service) (loadlab_cpu_limit_cores{{{SEL}}})", "{{service}} limit"),
    )


def throttled_share() -> timeseries.Panel:
    return timeseries_panel(
        "CFS throttled share", "percentunit",
        "Share of scheduler periods in which the service hit its CPU quota.",
        (f"sum by (service) (rate(loadlab_cpu_throttled_periods_total{{{SEL}}}[{RATE}]))"
         f" / sum by (service) (rate(loadlab_cpu_periods_total{{{SEL}}}[{RATE}]))",
         "{{service}}"),
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
         f"(rate(loadlab_event_loop_lag_seconds_bucket{{{SEL}}}[{RATE}])))", "{{service}}"),
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
        "Locust users", "short", "Simulated users running in the swarm.",
        ("sum(locust_users)", "users"),
    )


def locust_rps() -> timeseries.Panel:
    return timeseries_panel(
        "Locust requests and failures per second", "reqps",
        "The load generator's view: completed requests and failures.",
        (f"sum(rate(locust_requests_total[{RATE}]))", "requests"),
        (f"sum(rate(locust_failures_total[{RATE}]))", "failures"),
    )


PANELS = (
    requests_per_second, latency_percentiles, error_ratio, in_flight, cpu_used_vs_limit,
    throttled_share, memory, event_loop_lag, thread_pool, workers, locust_users, locust_rps,
)


def build() -> db.Dashboard:
    board = new_dashboard(
        UID, "loadlab: Comparison",
        "FastAPI on Uvicorn against Flask on Gunicorn (and any variant), side by side.",
    ).with_variable(service_variable(multi=True))
    return with_panels(board, PANELS, [(database.ROW, database.COMPARISON)])
