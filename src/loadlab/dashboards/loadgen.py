"""Load generator: Locust's side of the runs, by the service each request went to (Locust's
``target`` label: the compose service names, or ``host`` for the form's free Host field),
and its workers."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from loadlab.dashboards.common import RATE, new_dashboard, timeseries_panel, with_panels

UID = "loadlab-loadgen"


def users() -> timeseries.Panel:
    return timeseries_panel(
        "Users", "short", "Simulated users: whole swarm, by Target choice, and per worker.",
        ("sum(locust_users)", "swarm"),
        ("sum by (target) (locust_run_info)", "{{target}}"),
        ("sum by (worker) (locust_worker_users)", "{{worker}}"),
    )


def requests_by_name() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per second by name", "reqps", "As Locust names them (request name, method).",
        (f"sum by (name, method) (rate(locust_requests_total[{RATE}]))", "{{method}} {{name}}"),
    )


def failures_by_name() -> timeseries.Panel:
    total = f"sum by (name, method) (rate(locust_requests_total[{RATE}]))"
    return timeseries_panel(
        "Failures per second by name", "reqps", "0 while every request succeeds.",
        (f"sum by (name, method) (rate(locust_failures_total[{RATE}])) or {total} * 0",
         "{{method}} {{name}}"),
    )


def requests_by_target() -> timeseries.Panel:
    return timeseries_panel(
        "Requests and failures per second by target", "reqps",
        "Completed requests by the service they went to, and the failed ones among them.",
        (f"sum by (target) (rate(locust_requests_total[{RATE}]))", "{{target}}"),
        (f"sum by (target) (rate(locust_failures_total[{RATE}])) or "
         f"sum by (target) (rate(locust_requests_total[{RATE}])) * 0", "{{target}} failures"),
    )


def response_time_percentiles() -> timeseries.Panel:
    def quantile(q: str) -> tuple[str, str]:
        return (
            f"histogram_quantile({q}, sum by (target, le) "
            f"(rate(locust_response_time_seconds_bucket[{RATE}])))",
            f"{{{{target}}}} p{q[2:]}",
        )

    return timeseries_panel(
        "Response time p50 / p95 / p99 by target (client side)", "s",
        "What the users saw, queueing and network included, by the service they loaded.",
        quantile("0.50"), quantile("0.95"), quantile("0.99"),
    )


def client_vs_server_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Locust vs services: requests per second", "reqps",
        "Both sides of the same requests, per service; a gap means requests lost or still "
        "queued.",
        (f"sum by (target) (rate(locust_requests_total[{RATE}]))", "{{target}} locust"),
        (f'sum by (service) (rate(http_requests_total{{job="services", handler!="/metrics"}}'
         f"[{RATE}]))", "{{service}} service"),
    )


def requests_by_worker() -> timeseries.Panel:
    return timeseries_panel(
        "Requests per second by worker", "reqps",
        "Distributed mode: how the load spreads over the Locust workers.",
        (f"sum by (worker) (rate(locust_worker_requests_total[{RATE}]))", "{{worker}}"),
    )


def worker_cpu() -> timeseries.Panel:
    return timeseries_panel(
        "Worker CPU", "percent",
        "Each worker's CPU at its last report; near 100% the generator, not the service, "
        "is the limit: add workers (docker compose up -d --scale locust-worker=N).",
        ("max by (worker) (locust_worker_cpu_percent)", "{{worker}}"),
    )


def workers_by_state() -> timeseries.Panel:
    return timeseries_panel(
        "Workers by state", "short", "Workers the master knows (ready, running, missing).",
        ("sum by (state) (locust_workers)", "{{state}}"),
    )


PANELS = (
    users, requests_by_target, requests_by_name, failures_by_name, response_time_percentiles,
    client_vs_server_rate, requests_by_worker, worker_cpu, workers_by_state,
)


def build() -> db.Dashboard:
    board = new_dashboard(UID, "loadlab: Load generator",
                          "Locust's side: users, rates, client-side latency, workers.")
    return with_panels(board, PANELS)
