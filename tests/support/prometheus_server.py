"""A real Prometheus (Debian's binary) started through the lab's own entrypoint script.

Used by the tests that need Prometheus but no Docker: the config, the rules and every
dashboard query meet the real parser. ``lab_config`` turns the compose config into one that
scrapes native processes, and ``postgres_exporter`` runs Debian's postgres_exporter with
the lab's extra query, so the dashboards' queries can also be held to returning data.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from loadlab.launch import free_port
from loadlab.procs import kill_group

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "prometheus" / "entrypoint.sh"
CONFIG_DIR = ROOT / "prometheus"
EXPORTER = "prometheus-postgres-exporter"  # Debian's name for postgres_exporter
EXPORTER_QUERIES = ROOT / "postgres" / "exporter-queries.yml"


def lab_config(directory: Path, targets: dict[str, dict[str, str]]) -> Path:
    """A config directory like prometheus/ (the lab's rules, its job names and relabelling)
    whose jobs scrape static targets: ``{job: {service: "host:port"}}``; jobs not named
    are dropped. The ``service`` label is what compose's DNS names give."""
    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [address], "labels": {"service": service}}
                                 for service, address in targets[job["job_name"]].items()]
        job["relabel_configs"] = [rule for rule in job.get("relabel_configs", [])
                                  if "__meta_dns_name" not in rule.get("source_labels", [])]
        jobs.append(job)
    config["scrape_configs"] = jobs
    directory.mkdir(parents=True, exist_ok=True)
    # The entrypoint puts SCRAPE_INTERVAL in where this marker is (as in the lab's file).
    text = yaml.safe_dump(config, sort_keys=False)
    for key in ("scrape_interval", "evaluation_interval"):
        text = text.replace(f"  {key}: {config['global'][key]}\n",
                            f"  {key}: {config['global'][key]} # SCRAPE_INTERVAL\n")
    (directory / "prometheus.yml").write_text(text)
    (directory / "rules").symlink_to(CONFIG_DIR / "rules")
    return directory


def start(data_dir: Path, scrape_interval: str = "5s", config_dir: Path = CONFIG_DIR,
          ) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port("127.0.0.1")
    env = {**os.environ, "SCRAPE_INTERVAL": scrape_interval,
           "PROMETHEUS_CONFIG_DIR": str(config_dir),
           "PROMETHEUS_DATA_DIR": str(data_dir)}
    with (data_dir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT), f"--storage.tsdb.path={data_dir}",
             f"--web.listen-address=127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    return proc, port


def log_text(data_dir: Path) -> str:
    path = data_dir / "prometheus.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        kill_group(proc.pid, 15, proc=proc)


def get(port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # 400 with a JSON error body for a bad query
        return json.loads(exc.read())  # type: ignore[no-any-return]


def _wait_http(proc: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-500:] if log.is_file() else ""
                raise RuntimeError(f"{what} did not start: {tail}") from None
            time.sleep(0.2)


@contextmanager
def running(data_dir: Path, scrape_interval: str = "5s", config_dir: Path = CONFIG_DIR,
            ) -> Iterator[int]:
    """Yield the port of a ready Prometheus; stopped (process group) on exit."""
    proc, port = start(data_dir, scrape_interval, config_dir)
    try:
        _wait_http(proc, f"http://127.0.0.1:{port}/-/ready", data_dir / "prometheus.log",
                   "prometheus")
        yield port
    finally:
        stop(proc)


@contextmanager
def postgres_exporter(database_url: str, log_dir: Path) -> Iterator[str]:
    """Yield ``host:port`` of a ready postgres_exporter watching ``database_url``, with
    the lab's extra query (the database's CPU), as compose runs it; stopped on exit."""
    port = free_port("127.0.0.1")
    separator = "&" if "?" in database_url else "?"
    env = {**os.environ, "DATA_SOURCE_NAME": f"{database_url}{separator}sslmode=disable"}
    log = log_dir / "postgres-exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [EXPORTER, f"--extend.query-path={EXPORTER_QUERIES}",
             f"--web.listen-address=127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)
    try:
        _wait_http(proc, f"http://127.0.0.1:{port}/", log, EXPORTER)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)
