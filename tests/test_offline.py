"""The offline image build: what it writes for compose, and one line when a tool is missing
(the build itself runs in the compose e2e wherever no registry answers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loadlab.offline import (
    BASE_IMAGE,
    POSTGRES_EXPORTER_IMAGE,
    POSTGRES_IMAGE,
    PROMETHEUS_IMAGE,
    write_env_file,
)


def test_env_file_points_compose_at_the_offline_images(tmp_path: Path) -> None:
    path = tmp_path / "images.env"
    write_env_file(path)
    values = dict(line.split("=", 1) for line in path.read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values == {"PYTHON_IMAGE": BASE_IMAGE, "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
                      "POSTGRES_IMAGE": POSTGRES_IMAGE,
                      "POSTGRES_EXPORTER_IMAGE": POSTGRES_EXPORTER_IMAGE}
    compose = (Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text()
    for name in values:
        assert f"${{{name}:-" in compose


def test_missing_docker_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "loadlab.offline"], capture_output=True,
                            text=True, env={**os.environ, "PATH": str(tmp_path)}, timeout=60,
                            check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "loadlab offline: error: docker not found: apt-get install -y docker.io, "
        "then start dockerd"]


def test_help_says_grafana_is_not_provided() -> None:
    result = subprocess.run([sys.executable, "-m", "loadlab.offline", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "Grafana" in result.stdout
