"""Where the lab's files are found: never in an arbitrary current directory, whose
`services/` would otherwise be imported and run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loadlab.launch import free_port
from loadlab.paths import REPO_ENV, holds_this_install, lab_path, roots

ROOT = Path(__file__).resolve().parents[1]
PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
raise SystemExit("planted code ran")
"""


def _plant(directory: Path, marker: Path) -> None:
    for framework in ("fastapi", "flask"):
        app = directory / "services" / framework / f"{framework}_app.py"
        app.parent.mkdir(parents=True)
        app.write_text(PLANTED.format(marker=str(marker)))
    (directory / "docker-compose.yml").write_text("services: {}\n")


def test_an_arbitrary_current_directory_is_not_a_root(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _plant(tmp_path, tmp_path / "ran")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(REPO_ENV, raising=False)
    assert not holds_this_install(tmp_path)
    assert tmp_path not in roots()
    found = lab_path("services", "fastapi/fastapi_app.py")
    assert not found.resolve().is_relative_to(tmp_path.resolve())
    monkeypatch.chdir(ROOT)  # the checkout loadlab runs from is one
    assert holds_this_install(ROOT) and ROOT in [root.resolve() for root in roots()]
    monkeypatch.setenv(REPO_ENV, str(tmp_path))  # named explicitly, it is the root
    assert lab_path("services", "fastapi/fastapi_app.py") == tmp_path / "services"


def test_loadlab_serve_from_a_planted_directory_runs_the_lab_s_own_service(
        tmp_path: Path) -> None:
    """`loadlab serve fastapi` started in a directory holding its own
    services/fastapi/fastapi_app.py serves the lab's service; the planted file never runs."""
    planted, marker = tmp_path / "planted", tmp_path / "ran"
    _plant(planted, marker)
    env = {k: v for k, v in os.environ.items()
           if k not in (REPO_ENV, "LOADLAB_SERVICES_DIR", "PYTHONPATH")}
    port = free_port("127.0.0.1")
    serve = subprocess.Popen([sys.executable, "-m", "loadlab", "serve", "fastapi", "--port",
                              str(port)], cwd=planted, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and serve.poll() is None and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.1)
        assert not marker.exists(), "the planted services/ ran"
        assert answer is not None and answer.json() == {"status": "ok"}, serve.poll()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
        serve.communicate(timeout=60)
