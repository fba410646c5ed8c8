"""Grafana's guarded entrypoint (grafana/entrypoint.sh), run for real with stand-ins for
Grafana's own programs (neither the image nor a package can run here): anonymous access
off on a widened bind, and a set admin password applied to an existing database through
`grafana cli admin reset-admin-password` (Grafana reads GF_SECURITY_ADMIN_PASSWORD only when
it creates the admin user), never through argv; telemetry off in compose."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "grafana" / "entrypoint.sh"
SECRET = "s3cret for test"

# Records how it was called (argv, stdin) the way `grafana cli` would be, then exits with
# $FAKE_CLI_EXIT after printing a Grafana-like error line when that is not 0.
FAKE_CLI = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_CLI_LOG.args"
cat > "$FAKE_CLI_LOG.stdin"
if [ "${FAKE_CLI_EXIT:-0}" != 0 ]; then
    echo "logger=cli t=now level=info msg=starting"
    echo "Error: failed to reset admin password: database is locked"
fi
exit "${FAKE_CLI_EXIT:-0}"
"""


def run(tmp_path: Path, bind: str, password: str | None, database: bool = True,
        cli_exit: int = 0) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if database:
        (data / "grafana.db").write_bytes(b"SQLite format 3\x00")
    cli = tmp_path / "grafana"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    log = tmp_path / "cli"
    env = {"PATH": "/usr/bin:/bin", "LOADLAB_BIND": bind, "LOADLAB_PARK_ON_ERROR": "0",
           "GF_AUTH_ANONYMOUS_ENABLED": "true",  # as compose sets it
           "GF_PATHS_DATA": str(data), "GRAFANA_CLI": str(cli), "FAKE_CLI_LOG": str(log),
           "FAKE_CLI_EXIT": str(cli_exit),
           # env stands in for the image's /run.sh: it shows what Grafana would get.
           "GRAFANA_ENTRYPOINT": "/usr/bin/env"}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    result = subprocess.run(["sh", str(ENTRY)], capture_output=True, text=True, env=env,
                            timeout=10, check=False)
    return result, log


def environment(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.5", "::"])
def test_widened_bind_turns_anonymous_access_off(tmp_path: Path, bind: str) -> None:
    result, _ = run(tmp_path, bind, SECRET)
    assert environment(result)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "::1"])
def test_loopback_keeps_anonymous_viewers(tmp_path: Path, bind: str) -> None:
    result, log = run(tmp_path, bind, None)
    env = environment(result)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # Grafana's own default applies
    assert not log.with_suffix(".args").exists()  # nothing to apply


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
def test_a_set_password_is_applied_to_an_existing_database(tmp_path: Path, bind: str) -> None:
    """A volume made with admin/admin on loopback, restarted with a password: the password
    reaches the admin user before Grafana starts, on stdin, never in argv."""
    result, log = run(tmp_path, bind, SECRET)
    assert environment(result)["GF_SECURITY_ADMIN_PASSWORD"] == SECRET
    args = log.with_suffix(".args").read_text().splitlines()
    assert args[0] == "cli" and args[-3:] == ["admin", "reset-admin-password",
                                               "--password-from-stdin"]
    assert "--homepath" in args and "--config" in args
    assert SECRET not in args
    assert log.with_suffix(".stdin").read_text() == SECRET + "\n"


def test_a_new_volume_takes_the_password_from_grafana_itself(tmp_path: Path) -> None:
    result, log = run(tmp_path, "0.0.0.0", SECRET, database=False)
    assert environment(result)["GF_SECURITY_ADMIN_PASSWORD"] == SECRET
    assert not log.with_suffix(".args").exists()


def test_a_password_that_cannot_be_applied_stops_grafana(tmp_path: Path) -> None:
    """Starting anyway would publish whatever password the database still holds."""
    result, _ = run(tmp_path, "0.0.0.0", SECRET, cli_exit=1)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "GRAFANA_ADMIN_PASSWORD" in line and "database is locked" in line
    assert SECRET not in result.stderr


@pytest.mark.parametrize("password", [None, "", "admin"])
def test_widened_bind_refuses_the_default_admin(tmp_path: Path, password: str | None) -> None:
    result, log = run(tmp_path, "0.0.0.0", password)
    assert result.returncode == 2 and result.stdout == ""
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr
    assert not log.with_suffix(".args").exists()


def test_compose_grafana_phones_nowhere_and_is_pinned() -> None:
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    env = grafana["environment"]
    for key in ("GF_ANALYTICS_REPORTING_ENABLED", "GF_ANALYTICS_CHECK_FOR_UPDATES",
                "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "GF_NEWS_NEWS_FEED_ENABLED"):
        assert env[key] == "false", key
    assert env["GF_SECURITY_DISABLE_GRAVATAR"] == "true"
    image = grafana["image"].removeprefix("${GRAFANA_IMAGE:-").removesuffix("}")
    major, minor, _patch = (int(part) for part in image.split(":")[1].split("."))
    # CVE-2025-4123 (11.2-12.0) and CVE-2026-21720 (up to 12.3.0) are fixed from 12.4 on.
    assert (major, minor) >= (12, 4), image
    assert f"GRAFANA_IMAGE={image}\n" in (ROOT / ".env.example").read_text()
    assert grafana["entrypoint"] == ["/bin/sh", "/etc/loadlab/grafana-entrypoint.sh"]
    assert os.access(ENTRY, os.R_OK)
