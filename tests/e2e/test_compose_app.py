"""The compose ``app`` profile: an example app from its own directory, on the lab's service
image plus its requirements, under a chosen server with a CPU limit, reading the lab's
database and scraped by Prometheus with route templates as ``handler``."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from support.compose_project import Stack, engine_problem, published_port, registry_answers
from support.system_tools import require

from loadlab import offline


def _image_missing(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True,
                          timeout=60, check=False).returncode != 0


@pytest.fixture(scope="module")
def app_stack() -> Iterator[Stack]:
    require("docker", engine_problem())
    images: dict[str, str] = {}
    if not registry_answers():
        images = offline.compose_env()
        if any(_image_missing(images[k]) for k in ("PYTHON_IMAGE", "PROMETHEUS_IMAGE",
                                                    "POSTGRES_IMAGE")):
            subprocess.run([sys.executable, "-m", "loadlab.offline"], check=True,
                           timeout=1800, capture_output=True)
    lab = Stack(project=f"loadlab-e2e-app-{os.getpid()}", tag=f"e2e-app-{os.getpid()}", env={
        **images, "COMPOSE_PROFILES": "app", "APP_PORT": str(published_port()),
        "LOADLAB_APP_DIR": "./examples/flask_shop", "LOADLAB_APP": "app:app",
        "LOADLAB_APP_BASE": "flask", "APP_WORKER_CLASS": "gthread", "APP_WORKERS": "2",
        "APP_THREADS": "4", "APP_CPUS": "1", "POSTGRES_PASSWORD": "e2e-app-secret"})
    try:
        lab.compose("build", "fastapi", "flask", timeout=900)
        lab.compose("build", "app", timeout=900)
        lab.compose("up", "--detach", "--wait", "app", "postgres", "prometheus", timeout=300)
        yield lab
    finally:
        lab.down()
        subprocess.run(["docker", "image", "rm", "--force", f"loadlab/app:{lab.tag}"],
                       capture_output=True, timeout=120, check=False)
        left = lab.leftovers()
        assert left == {}, f"docker compose down -v left {left} behind"


def _get(stack: Stack, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.env['APP_PORT']}{path}",
                                timeout=30) as reply:
        reply.read()
        return int(reply.status)


def test_the_app_profile_serves_measures_and_is_scraped(app_stack: Stack) -> None:
    for path in ("/products/1", "/products/42", "/users/3/cart", "/shipping/12345/quote"):
        assert _get(app_stack, path) == 200, path
    products = 'http_requests_total{service="app",handler="/products/<int:product_id>"}'
    app_stack.wait_for("Prometheus to scrape the app's requests",
                       lambda: app_stack.query(f"sum by (service) ({products})").get("app")
                       == 2, timeout_s=90)
    info = app_stack.prometheus("/api/v1/query", query='loadlab_server_info{service="app"}')
    labels = info["result"][0]["metric"]
    assert (labels["framework"], labels["server"], labels["worker_class"], labels["workers"],
            labels["threads"], labels["cpus"]) == ("app", "gunicorn", "gthread", "2", "4", "1")
