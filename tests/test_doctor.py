"""``loadlab doctor``: the real report, and the Compose v1/v2 rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadlab import cpulimit, doctor


def test_doctor_reports_every_capability_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "loadlab", "doctor"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines()
            if line[:3] in ("ok ", "-- ")}
    assert {"cores", "cpu", "metrics", "docker", "compose", "promtool", "wrk", "chromium",
            "locust"} <= set(rows)
    assert f"{os.cpu_count()} cores" in rows["cores"]
    # What doctor says about CPU limits is what serve --cpus would use.
    mechanism = cpulimit.native_mechanism()
    assert rows["cpu"].startswith("ok ") is (mechanism != "affinity")
    for tool in ("wrk", "promtool"):
        assert rows[tool].startswith("ok ") is (shutil.which(tool) is not None)


def fake_bin(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_compose_v1_only_is_named_with_the_way_to_v2(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin(tmp_path, "docker", "exit 1")  # no compose plugin
    fake_bin(tmp_path, "docker-compose", "echo 1.29.2")
    monkeypatch.setenv("PATH", str(tmp_path))
    check = doctor.check_compose()
    assert not check.ok
    assert "only Compose v1 (docker-compose 1.29.2)" in check.detail
    assert "Compose v2" in check.hint
    fake_bin(tmp_path, "docker", 'test "$1 $2" = "compose version" && echo 2.26.1')
    assert doctor.check_compose() == doctor.Check("compose v2", True, "docker compose 2.26.1")


def test_affinity_only_machine_gets_a_hint() -> None:
    check = doctor.check_cgroup(probe=lambda: "affinity")
    assert not check.ok and "systemd-run" in check.hint
    line = doctor.render([check])
    assert line.splitlines()[0].startswith("-- ") and "to get it:" in line


@pytest.mark.parametrize(("server", "safe"), [("20.10.24+dfsg1", False), ("27.5.1", False),
                                              ("28.0.0", True), ("29.1.2", True)])
def test_an_engine_before_28_is_named_for_its_loopback_ports(server: str, safe: bool) -> None:
    """moby#45610: before Engine 28, 127.0.0.1-published ports answer the local network."""
    check = doctor.check_engine_loopback(server)
    assert check is not None and check.ok is safe
    if not safe:
        assert "45610" in check.detail and "Engine 28" in check.hint


def test_doctor_warns_on_this_engine_when_it_is_old(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin(tmp_path, "docker", 'test "$1" = info && echo 20.10.24+dfsg1')
    monkeypatch.setenv("PATH", str(tmp_path))
    names = {check.name: check for check in doctor.collect()}
    assert not names["loopback ports"].ok
    assert "older than 28" in doctor.render([names["loopback ports"]])
