"""The server registry is the one home of "what a server is": what derives from it agrees."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.services import VARIANTS, start_service

from loadlab import servers, service_db
from loadlab.metrics.acceptqueue import effective_backlog
from loadlab.metrics.collectors import ServerLabels, service_families
from loadlab.metrics.definitions import THREADPOOL_SIZE
from loadlab.runner import manifest
from loadlab.runs.record import variant_label
from loadlab.serve import ServeError, ServerConfig, build_command
from loadlab.serverinfo import package_versions
from loadlab.servers import LISTEN_BACKLOG


def test_the_contract_suite_runs_every_worker_class_of_every_server() -> None:
    covered = {(v["framework"], v["worker_class"]) for v in VARIANTS.values()}
    expected = {(fw, k) for fw, classes in servers.WORKER_CLASSES.items() for k in classes}
    assert covered == expected


def test_every_framework_is_served_by_some_server_on_its_interface() -> None:
    for framework, interface in servers.INTERFACES.items():
        assert any(interface in s.interfaces for s in servers.SERVERS.values()), framework
        assert servers.DEFAULT_WORKER_CLASS[framework] in servers.WORKER_CLASSES[framework]


@pytest.mark.parametrize("worker_class", sorted(servers.CLASSES))
def test_each_class_builds_its_servers_command(worker_class: str) -> None:
    server, klass = servers.CLASSES[worker_class]
    framework = next(fw for fw, i in servers.INTERFACES.items() if i in klass.interfaces)
    cfg = ServerConfig(framework=framework, worker_class=worker_class)  # type: ignore[arg-type]
    assert cfg.server == server.name
    argv = build_command(cfg)
    assert argv[1:3] == ["-m", server.name]
    assert variant_label({"target": framework, "worker_class": worker_class, "workers": 2},
                         "prose") == \
        f"{servers.FRAMEWORK_TITLES[framework]} on 2 {klass.many}"


def test_the_manifest_records_the_database_driver_and_the_load_generator() -> None:
    assert {"psycopg", "psycopg-pool", "locust"} <= set(manifest.PACKAGES)
    assert set(servers.PACKAGES) <= set(manifest.PACKAGES)
    assert {"psycopg", "uvicorn", "gunicorn"} <= set(package_versions())


def test_pool_defaults_follow_the_worker_class() -> None:
    assert service_db.default_pool_size("sync", 1) == 1
    assert service_db.default_pool_size("gthread", 6) == 6
    assert service_db.default_pool_size("uvicorn", 1) == servers.CONCURRENT_POOL_SIZE
    assert service_db.default_pool_size("gevent", 1) == servers.CONCURRENT_POOL_SIZE


def test_thread_pool_gauges_only_for_thread_per_request_classes() -> None:
    def has_pool(worker_class: str) -> bool:
        labels = ServerLabels(framework="flask", server="gunicorn", worker_class=worker_class,
                              workers=1, threads=4)
        return any(f.name == THREADPOOL_SIZE for f in service_families(labels, []))

    assert has_pool("gthread")
    assert not has_pool("sync")


def test_threads_need_a_thread_per_request_class() -> None:
    with pytest.raises(ServeError, match="gthread"):
        ServerConfig(framework="flask", worker_class="sync", threads=2)


def test_granian_serves_each_app_on_its_interface_without_its_own_metrics_port() -> None:
    asgi = build_command(ServerConfig(framework="fastapi", worker_class="granian", workers=2))
    wsgi = build_command(ServerConfig(framework="flask", worker_class="granian", threads=3,
                                      backpressure=8))
    assert asgi[asgi.index("--interface") + 1] == "asgi"
    assert wsgi[wsgi.index("--interface") + 1] == "wsgi"
    assert wsgi[wsgi.index("--blocking-threads") + 1] == "3"
    assert wsgi[wsgi.index("--backpressure") + 1] == "8"
    assert "--no-metrics" in asgi and "--metrics" not in asgi


@pytest.mark.parametrize("options, message", [
    (dict(framework="fastapi", worker_class="granian", threads=2), "--threads"),
    (dict(framework="flask", worker_class="sync", backpressure=4), "--backpressure"),
])
def test_granian_options_that_do_not_fit_are_refused(options: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(ServeError, match=message):
        ServerConfig(**options)  # type: ignore[arg-type]


@pytest.mark.slow  # a two-worker Granian started (Granian's services run in make test)
def test_the_accept_queue_counts_the_socket_of_every_granian_worker() -> None:
    """Each Granian worker binds its own socket on the shared port (SO_REUSEPORT) and the
    root process holds none: the gauge must find them in the workers."""
    service = start_service(framework="flask", worker_class="granian", workers=2)
    try:
        limit = effective_backlog(LISTEN_BACKLOG)
        deadline = time.monotonic() + 30
        found: dict[str, float] = {}
        while time.monotonic() < deadline:  # the second worker may bind after the first
            text = httpx.get(service.metrics_url, timeout=10).text
            found = {f.name: f.samples[0].value for f in text_string_to_metric_families(text)
                     if f.name.startswith("loadlab_accept_queue")}
            if found.get("loadlab_accept_queue_limit") == 2 * limit:
                break
            time.sleep(0.2)
        assert found == {"loadlab_accept_queue_connections": 0.0,
                         "loadlab_accept_queue_limit": 2.0 * limit}
    finally:
        service.stop()
