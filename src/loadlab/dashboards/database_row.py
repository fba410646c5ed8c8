"""The Database row of the Comparison and drill-down boards.

The services' side (their pools and queries, ``loadlab_db_*``) and the database's own
(postgres_exporter, job ``postgres``, label ``service="postgres"``): connections by state
and the database's CPU under the services' metric names.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries

from loadlab.dashboards.common import RATE, timeseries_panel

ROW = "Database"
DATABASE = 'service="postgres"'
COMPARE = 'service=~"$service"'  # the Comparison board's services
ONE = 'service="$service"'  # the drill-down's service


# --- Comparison: the services side by side, and the database beside them -------------------
def pool_per_service() -> timeseries.Panel:
    return timeseries_panel(
        "DB pool in use / waiting", "short",
        "Pooled connections lent out and requests waiting for one, summed over workers, "
        "against the pools' size. Waiting above 0: the pool, not the framework, is the limit.",
        (f"sum by (service) (loadlab_db_pool_in_use{{{COMPARE}}})", "{{service}} in use"),
        (f"sum by (service) (loadlab_db_pool_waiting{{{COMPARE}}})", "{{service}} waiting"),
        (f"sum by (service) (loadlab_db_pool_size{{{COMPARE}}})", "{{service}} size"),
    )


def pool_wait_p95_per_service() -> timeseries.Panel:
    return timeseries_panel(
        "DB pool wait p95", "s", "Time a request waited for a pooled connection.",
        (f"histogram_quantile(0.95, sum by (service, le) "
         f"(rate(loadlab_db_pool_wait_seconds_bucket{{{COMPARE}}}[{RATE}])))", "{{service}}"),
    )


def connections_by_state() -> timeseries.Panel:
    return timeseries_panel(
        "Database connections by state", "short",
        "What PostgreSQL sees (postgres_exporter): every service's workers x pool size, "
        "against max_connections.",
        (f"sum by (state) (pg_stat_activity_count{{{DATABASE}}})", "{{state}}"),
        (f"max(pg_settings_max_connections{{{DATABASE}}})", "max_connections"),
    )


def database_cpu() -> timeseries.Panel:
    return timeseries_panel(
        "Database CPU vs the services", "short",
        "Cores the database uses against its limit (drawn only where there is one), next "
        "to the services' cores.",
        (f"sum(rate(loadlab_cpu_usage_seconds_total{{{DATABASE}}}[{RATE}]))", "postgres used"),
        (f"max(loadlab_cpu_limit_cores{{{DATABASE}}}) > 0", "postgres limit"),
        (f"sum by (service) (rate(loadlab_cpu_usage_seconds_total{{{COMPARE}}}[{RATE}]))",
         "{{service}} used"),
    )


COMPARISON = (pool_per_service, pool_wait_p95_per_service, connections_by_state, database_cpu)


# --- Drill-down: one service, query by query --------------------------------------------
def query_duration() -> timeseries.Panel:
    def quantile(q: str) -> tuple[str, str]:
        return (
            f"histogram_quantile({q}, sum by (query, le) "
            f"(rate(loadlab_db_query_duration_seconds_bucket{{{ONE}}}[{RATE}])))",
            f"{{{{query}}}} p{q[2:]}",
        )

    return timeseries_panel(
        "DB query duration p50 / p95 by query", "s",
        "One query on a pooled connection: world (a row by primary key), sleep (pg_sleep).",
        quantile("0.50"), quantile("0.95"),
    )


def query_rate() -> timeseries.Panel:
    return timeseries_panel(
        "DB queries per second by query", "ops", "/queries?n=N runs N world queries.",
        (f"sum by (query) (rate(loadlab_db_query_duration_seconds_count{{{ONE}}}[{RATE}]))",
         "{{query}}"),
    )


def pool_wait_p95() -> timeseries.Panel:
    return timeseries_panel(
        "DB pool wait p95", "s", "Time a request waited for a pooled connection.",
        (f"histogram_quantile(0.95, sum by (le) "
         f"(rate(loadlab_db_pool_wait_seconds_bucket{{{ONE}}}[{RATE}])))", "p95"),
    )


def pool() -> timeseries.Panel:
    return timeseries_panel(
        "DB pool size / in use / waiting", "short",
        "Summed over workers; in use counts connections being (re)made too.",
        (f"sum(loadlab_db_pool_size{{{ONE}}})", "size"),
        (f"sum(loadlab_db_pool_in_use{{{ONE}}})", "in use"),
        (f"sum(loadlab_db_pool_waiting{{{ONE}}})", "waiting"),
    )


def errors_by_kind() -> timeseries.Panel:
    errors = f"sum by (kind) (rate(loadlab_db_errors_total{{{ONE}}}[{RATE}]))"
    # A kind's series exists from its first error on: until then, one 0 line ("none").
    calls = f"sum(rate(loadlab_db_query_duration_seconds_count{{{ONE}}}[{RATE}]))"
    return timeseries_panel(
        "DB errors per second by kind", "ops",
        "Database calls answered 503: unavailable, pool_timeout, query. 0 while all succeed.",
        (f'{errors} or on () label_replace({calls} * 0, "kind", "none", "", "")', "{{kind}}"),
    )


SERVICE = (query_duration, query_rate, pool_wait_p95, pool, errors_by_kind)
