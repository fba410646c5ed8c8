"""The lab as a swarm stack, live: deploy, health, scaling, DNS discovery of every task,
`loadlab run --runtime swarm`, and the one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from support import polling

from loadlab.stack import Stack

from .conftest import SwarmLab


def prometheus(lab: SwarmLab, expr: str) -> list[dict[str, Any]]:
    url = f"{lab.url('PROMETHEUS_PORT')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = json.loads(reply.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def total(lab: SwarmLab, expr: str) -> float:
    return sum(float(row["value"][1]) for row in prometheus(lab, expr))


def wait_for(what: str, check: Any, timeout_s: float = 90) -> Any:
    return polling.wait_for(check, timeout_s, what, every_s=1)


def loadlab(lab: SwarmLab, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadlab", *args], env=lab.environ(**env),
                          capture_output=True, text=True, timeout=300, check=False)


def test_every_task_healthy_after_deploy(swarm_lab: SwarmLab) -> None:
    done, waiting = swarm_lab.stack.converged()
    assert done, waiting
    for service in swarm_lab.stack.services():
        tasks = swarm_lab.stack.tasks(service)
        assert tasks and all(t["state"] == "running" for t in tasks), (service, tasks)
    print(f"\nstack deploy to every task healthy: {swarm_lab.deploy_seconds:.1f} s")


def test_prometheus_scrapes_each_task_found_by_tasks_dns(swarm_lab: SwarmLab) -> None:
    """Targets come from `tasks.<service>` and are the tasks' own addresses. (A host-mode
    port allows one task of a service per node, so services scale over nodes; on one node
    the per-task series that grow are the Locust workers', below.)"""
    url = f"{swarm_lab.url('PROMETHEUS_PORT')}/api/v1/targets?state=active"

    def services_up() -> list[dict[str, Any]] | None:
        with urllib.request.urlopen(url, timeout=30) as reply:
            targets = json.loads(reply.read())["data"]["activeTargets"]
        found = [t for t in targets if t["labels"].get("job") == "services"
                 and t["health"] == "up"]
        return found if {t["labels"]["service"] for t in found} == {"fastapi", "flask"} \
            else None

    targets = wait_for("both services scraped", services_up)
    for target in targets:
        service = target["labels"]["service"]
        assert target["discoveredLabels"]["__meta_dns_name"] == f"tasks.{service}"
        task = swarm_lab.stack.tasks(service)[0]
        inspect = subprocess.run(["docker", "inspect", task["id"]], capture_output=True,
                                 text=True, timeout=30, check=True)
        addresses = {address.split("/")[0] for attachment in
                     json.loads(inspect.stdout)[0]["NetworksAttachments"]
                     for address in attachment["Addresses"]}
        assert target["labels"]["instance"].split(":")[0] in addresses, (target, addresses)


def test_scaling_workers_from_one_to_three_shows_three_series(swarm_lab: SwarmLab) -> None:
    stack = swarm_lab.stack
    wait_for("one worker series", lambda: len(prometheus(swarm_lab, "locust_worker_users"))
             == 1)
    seconds = stack.scale("locust-worker", 3, wait_s=120)
    print(f"\nscale locust-worker 1 -> 3, every task healthy: {seconds:.1f} s")
    rows = wait_for("three worker series", lambda: (
        lambda found: found if len(found) == 3 else None)(
        prometheus(swarm_lab, "locust_worker_users")))
    assert len({row["metric"]["worker"] for row in rows}) == 3, rows


def test_loadlab_run_with_the_swarm_runtime(swarm_lab: SwarmLab, tmp_path: Path) -> None:
    """Counts agree three ways: the run's record (the master's statistics), Locust's
    exporter, and the service's own counter (plus at most one in flight per user)."""
    served = 'sum(http_requests_total{service="fastapi", handler="/json"})'
    sent = 'sum(locust_requests_total{name="/json"})'
    before_served, before_sent = total(swarm_lab, served), total(swarm_lab, sent)
    out = tmp_path / "results"
    run = loadlab(swarm_lab, "run", "--runtime", "swarm", "--target", "fastapi",
                  "--scenario", "json", "--users", "6", "--duration", "6s", "--warmup", "0s",
                  "--cpus", "0.5", "--out", str(out))
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    summary = json.loads((out / "summary.json").read_text())
    record = summary["runs"][0]
    assert record["status"] == "ok" and record["failures"] == 0, record
    assert record["requests"] > 100 and record["server"]["cpu_limit"] == 0.5
    assert record["swarm"]["workers"] == len(swarm_lab.stack.tasks("locust-worker"))
    manifest = summary["manifest"]
    assert manifest["runtime"] == "swarm" and manifest["nodes"][0]["addr"] == "127.0.0.1"
    assert manifest["nodes"][0]["cpu_model"] and manifest["nodes"][0]["cores"] >= 1
    assert {"fastapi", "locust-master", "locust-worker"} <= set(manifest["tasks"])
    assert (out / record["locust_json"]).is_file()  # the master's statistics, kept here
    master = json.loads((out / record["locust_json"]).read_text())
    by_name = {row["name"]: row["num_requests"] for row in master["stats"]}
    deadline = time.monotonic() + 30
    while (exported := total(swarm_lab, sent) - before_sent) != by_name["/json"]:
        assert time.monotonic() < deadline, (exported, by_name, before_sent)
        time.sleep(1)
    assert by_name["/json"] == record["requests"], by_name
    delta = wait_for("the service's count", lambda: (
        lambda d: d if d >= record["requests"] else None)(
        total(swarm_lab, served) - before_served), 30)
    assert record["requests"] <= delta <= record["requests"] + 6, (delta, record["requests"])


def one_line_exit_2(done: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_input_one_line_each(swarm_lab: SwarmLab) -> None:
    one_line_exit_2(loadlab(swarm_lab, "run", "--runtime", "swarm", "--target", "fastapi",
                            "--scenario", "json", "--duration", "2s",
                            LOADLAB_STACK="nosuchstack"),
                    "no stack 'nosuchstack'", "loadlab stack deploy")
    missing = loadlab(swarm_lab, "stack", "deploy", "fastapi", "--name", "llmissing",
                      LOADLAB_TAG="no-such-tag")
    one_line_exit_2(missing, "loadlab/fastapi:no-such-tag", "make offline-images")
    one_line_exit_2(loadlab(swarm_lab, "stack", "deploy", "fastapi", "--name", "lllabel",
                            "--placement", "labels"),
                    "loadlab.role=sut", "docker node update --label-add")
    assert Stack(name="llmissing").services() == {} and Stack(name="lllabel").services() == {}
