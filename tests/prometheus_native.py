"""A real Prometheus (Debian's binary) started through the lab's own entrypoint script.

Used by the tests that need Prometheus but no Docker: the config, the rules and every
dashboard query meet the real parser.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadlab.launch import free_port

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "prometheus" / "entrypoint.sh"


def start(data_dir: Path, scrape_interval: str = "5s") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port("127.0.0.1")
    env = {**os.environ, "SCRAPE_INTERVAL": scrape_interval,
           "PROMETHEUS_CONFIG_DIR": str(ROOT / "prometheus"),
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
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def get(port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # 400 with a JSON error body for a bad query
        return json.loads(exc.read())  # type: ignore[no-any-return]


@contextmanager
def running(data_dir: Path, scrape_interval: str = "5s") -> Iterator[int]:
    """Yield the port of a ready Prometheus; stopped (process group) on exit."""
    proc, port = start(data_dir, scrape_interval)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_text(data_dir)[-500:]
                    raise RuntimeError(f"prometheus did not start: {tail}") from None
                time.sleep(0.2)
        yield port
    finally:
        stop(proc)
