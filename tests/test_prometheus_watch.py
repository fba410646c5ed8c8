"""The compose runtime's Prometheus watch: a real Prometheus (Debian's binary) that is
there, then stopped; a real HTTP server answering 503 (starting) then ready; none at all."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import polling
from support import prometheus_server as prom

from loadlab.runner.prometheus_watch import PrometheusWatch, is_ready

FAST = 0.2  # seconds between checks in these tests


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 15) -> None:
    polling.wait_for(check, timeout_s, what)


@pytest.mark.requires("prometheus")
def test_ready_throughout_then_stopped_mid_run(tmp_path: Path) -> None:
    proc, port = prom.start(tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until("prometheus ready", lambda: is_ready(url), 30)
        watch = PrometheusWatch(url, interval_s=FAST).start()
        wait_until("three checks", lambda: watch.checks >= 3)
        whole = watch.record("fastapi")
        assert whole["prometheus"]["available"] is True and "notes" not in whole
        assert whole["prometheus"]["checks"] >= 3 and whole["prometheus"]["gaps"] == []
        prom.stop(proc)
        wait_until("a failed check", lambda: watch.failed_checks >= 3)
        watch.stop()
        fields = watch.record("fastapi")
    finally:
        prom.stop(proc)
    seen = fields["prometheus"]
    assert seen["available"] is False and seen["failed_checks"] >= 3
    [gap] = seen["gaps"]
    assert gap["recovered"] is False and gap["to_s"] > gap["from_s"] > 0
    assert seen["unavailable_s"] == pytest.approx(gap["to_s"] - gap["from_s"], abs=0.15)
    [note] = fields["notes"]
    assert "Prometheus was unavailable" in note and "s-end" in note
    assert "direct scrape of fastapi's /metrics" in note


class Starting(http.server.BaseHTTPRequestHandler):
    """/-/ready: 503 until the test says ready, as Prometheus answers while it starts."""

    ready = threading.Event()

    def do_GET(self) -> None:
        ok = self.path == "/-/ready" and self.ready.is_set()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def starting_server() -> Iterator[tuple[str, threading.Event]]:
    ready = threading.Event()
    handler = type("Handler", (Starting,), {"ready": ready})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ready
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_gap_that_recovers_is_closed(starting_server: tuple[str, threading.Event]) -> None:
    url, ready = starting_server
    watch = PrometheusWatch(url, interval_s=FAST).start()
    try:
        wait_until("failed checks", lambda: watch.failed_checks >= 3)
        ready.set()
        wait_until("the gap to close", lambda: bool(watch.gaps and watch.gaps[0].recovered))
        checks = watch.checks
        wait_until("a ready check after", lambda: watch.checks >= checks + 2)
    finally:
        watch.stop()
    fields = watch.record("flask")
    [gap] = fields["prometheus"]["gaps"]
    assert gap["recovered"] is True and gap["to_s"] >= gap["from_s"] + 2 * FAST
    assert fields["prometheus"]["unavailable_s"] < watch._elapsed()
    [note] = fields["notes"]
    assert f"{gap['from_s']:.0f}-{gap['to_s']:.0f} s" in note and "flask's /metrics" in note


def test_no_prometheus_in_the_stack_is_one_gap_over_the_whole_run() -> None:
    watch = PrometheusWatch(None, why_missing="no container found for prometheus").start()
    watch.stop()
    fields = watch.record("fastapi")
    assert fields["prometheus"]["available"] is False
    assert fields["prometheus"]["checks"] == 2 and fields["prometheus"]["failed_checks"] == 2
    [note] = fields["notes"]
    assert "not running in the stack (no container found for prometheus)" in note
