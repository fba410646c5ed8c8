"""Prometheus config and rules: promtool accepts them, and a real Prometheus loads them
through the lab's entrypoint (which puts SCRAPE_INTERVAL in) and evaluates every rule."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support import prometheus_server as prom

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "prometheus" / "prometheus.yml"
RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))

pytestmark = pytest.mark.requires("prometheus")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULES)} rule files found" in result.stdout


def test_promtool_check_rules() -> None:
    assert RULES, "no rule files"
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules() -> None:
    result = promtool("test", "rules", str(ROOT / "tests" / "prometheus" / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_and_the_locust_master_are_scraped() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    names = jobs["services"]["dns_sd_configs"][0]["names"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    lab_services = {name for name, svc in compose.items()
                    if "healthcheck.sh" in " ".join(svc.get("healthcheck", {})["test"])
                    and "8000" in " ".join(svc["healthcheck"]["test"])}
    assert set(names) == lab_services
    assert jobs["locust"]["static_configs"][0]["targets"] == ["locust-master:8089"]


def test_services_are_scraped_at_the_supervisors_side_port() -> None:
    """Not the service port, where the scrape would queue behind the load."""
    from loadlab.metrics.side import CONTAINER_PORT
    from loadlab.serve import ServerConfig, metrics_port

    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["services"]["dns_sd_configs"][0]["port"] == CONTAINER_PORT == 9000
    in_image = metrics_port(ServerConfig(framework="flask", port=8000),
                            {"LOADLAB_IN_CONTAINER": "1"})
    assert in_image == CONTAINER_PORT
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-lab-service"]
    assert compose["expose"] == [str(CONTAINER_PORT)]


def test_entrypoint_applies_the_scrape_interval_and_rules_load(tmp_path: Path) -> None:
    with prom.running(tmp_path, scrape_interval="2s") as port:
        config = prom.get(port, "/api/v1/status/config")["data"]["yaml"]
        assert yaml.safe_load(config)["global"]["scrape_interval"] == "2s"
        groups = prom.get(port, "/api/v1/rules")["data"]["groups"]
        loaded = sum(len(group["rules"]) for group in groups)
        in_files = sum(len(group["rules"]) for path in RULES
                       for group in yaml.safe_load(path.read_text())["groups"])
        assert loaded == in_files
        # Every rule is evaluated without error (no data is fine, a bad query is not).
        deadline = time.monotonic() + 20
        while True:
            rules = [rule for group in prom.get(port, "/api/v1/rules")["data"]["groups"]
                     for rule in group["rules"]]
            if all(rule["health"] != "unknown" for rule in rules):
                break
            assert time.monotonic() < deadline, "rules were never evaluated"
            time.sleep(0.5)
        assert [r["name"] for r in rules if r["health"] != "ok"] == []


def _traps_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler now (/proc status SigCgt): a shell's trap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & 1 << (signal.SIGTERM - 1))


def test_bad_scrape_interval_one_line_and_no_exit(tmp_path: Path) -> None:
    proc, _ = prom.start(tmp_path, scrape_interval="five")
    try:
        # Its line written, the entrypoint must go on to wait (its SIGTERM trap set), not
        # exit into a restart loop.
        deadline = time.monotonic() + 30
        while proc.poll() is None and not (prom.log_text(tmp_path).endswith("\n")
                                           and _traps_sigterm(proc.pid)):
            assert time.monotonic() < deadline, prom.log_text(tmp_path)
            time.sleep(0.05)
        assert proc.poll() is None, "the entrypoint must wait, not exit into a restart loop"
        lines = prom.log_text(tmp_path).strip().splitlines()
        assert lines == ["prometheus: SCRAPE_INTERVAL=five is not a duration like 5s or 500ms"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 2
