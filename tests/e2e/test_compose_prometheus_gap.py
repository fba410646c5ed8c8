"""Prometheus stopped in the middle of `loadlab run --runtime compose`: the run still has
the server's figures (the runner scrapes the service's own /metrics) and records the gap.

Uses the session's stack; Prometheus is started again and healthy before the test ends,
whatever happened. Like the other compose-runtime test, the run leaves `fastapi` stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from support.compose_project import Stack

from loadlab.procs import kill_group
from loadlab.runner.prometheus_watch import is_ready


def health(stack: Stack, service: str) -> str:
    ps = stack.compose("ps", "--all", "--format", "json", service, check=False).stdout
    text = ps.strip()
    rows = json.loads(text) if text.startswith("[") else [
        json.loads(line) for line in text.splitlines() if line.strip()]
    return str(rows[0].get("Health") or rows[0].get("State")) if rows else "absent"


def end_run(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the run's own process group: it stops its Locust and its service."""
    if proc.poll() is None:
        kill_group(proc.pid, 90, proc=proc)


def test_prometheus_stopped_mid_run_figures_from_the_direct_scrape(
        stack: Stack, tmp_path: Path) -> None:
    prometheus = stack.url("PROMETHEUS_PORT")
    assert is_ready(prometheus), "Prometheus must be ready before the run"
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadlab", "run", "--runtime", "compose", "--target",
         "fastapi", "--scenario", "json", "--users", "4", "--duration", "8s", "--warmup",
         "2s", "--out", str(out)],
        env=stack.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        # Locust's log appears once the service is up, the watch has begun and load starts.
        stack.wait_for("the run's load to start", lambda: proc.poll() is not None or any(
            (out / "raw").glob("*.locust.log")), 240)
        assert proc.poll() is None, proc.communicate()
        time.sleep(1.5)  # a ready check or two before the stop
        stack.compose("stop", "--timeout", "5", "prometheus", timeout=60)
        assert not is_ready(prometheus)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        end_run(proc)
        stack.compose("start", "prometheus", timeout=120, check=False)
        stack.wait_for("Prometheus healthy again",
                       lambda: health(stack, "prometheus") == "healthy", 120)
    assert proc.returncode == 0, stdout[-1500:] + stderr[-1500:]
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    # The run itself is whole: load, and the server's figures from its own /metrics.
    assert run["status"] == "ok" and run["requests"] > 0 and run["failures"] == 0, run
    server = run["server"]
    assert server["cpu_seconds"] is not None and server["cpu_seconds"] > 0, server
    assert server["source"].startswith("cpu: metrics"), server
    assert server["memory_bytes"] and server["memory_bytes"] > 0, server
    # The gap: Prometheus answered ready at first, then never again in this run.
    seen = run["prometheus"]
    assert seen["available"] is False, seen
    assert seen["url"] == prometheus, seen
    [gap] = seen["gaps"]
    assert gap["from_s"] > 0 and gap["recovered"] is False, seen
    assert seen["checks"] > seen["failed_checks"] > 0, seen
    assert seen["unavailable_s"] > 0, seen
    [note] = run["notes"]
    assert "Prometheus was unavailable" in note and "direct scrape" in note, note
    printed = [line for line in stderr.splitlines() if "note: Prometheus" in line]
    assert len(printed) == 1 and note in printed[0], stderr[-1500:]
    print(f"\n{printed[0].strip()}\n(cpu_seconds {server['cpu_seconds']}, "
          f"{run['requests']} requests, {seen['checks']} checks)")
