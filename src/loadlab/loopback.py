"""Which binds stay on this machine: the one rule for the Locust UI's guard
(locust/webauth.py), the compose runtime's published ports, and Grafana's entrypoint
(grafana/entrypoint.sh, in shell since Grafana's image has no Python; the tests run both
over one table of binds)."""

from __future__ import annotations

LOOPBACK_NAMES = ("localhost", "::1", "[::1]")


def is_loopback(bind: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; anything else (0.0.0.0, a LAN address) is widened."""
    return bind.startswith("127.") or bind in LOOPBACK_NAMES
