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


def test_arm64_without_emulation_is_one_line(tmp_path: Path) -> None:
    from loadlab.offline import OfflineError, require_arm64_emulation

    if os.uname().machine in ("aarch64", "arm64"):
        return  # native: nothing to emulate
    for text in (None, "disabled\ninterpreter /x\nflags: F\n",
                 "enabled\ninterpreter /x\nflags: P\n"):
        entry = tmp_path / "qemu-aarch64"
        entry.unlink(missing_ok=True)
        if text is not None:
            entry.write_text(text)
        try:
            require_arm64_emulation(entry)
        except OfflineError as exc:
            assert "update-binfmts" in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"accepted {text!r}")
    entry.write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                     "flags: PF\noffset 0\n")
    require_arm64_emulation(entry)
