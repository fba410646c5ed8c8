"""Apply the lab's seed data (``seed.sql``, the one copy, shared with compose) to a server."""

from __future__ import annotations

from importlib.resources import files

from loadlab.scenarios import WORLD_ROWS

__all__ = ["FORTUNE_ROWS", "WORLD_ROWS", "seed", "seed_sql"]
FORTUNE_ROWS = 12


def seed_sql() -> str:
    return files("loadlab.pgcluster").joinpath("seed.sql").read_text(encoding="utf-8")


def seed(url: str, timeout_s: float = 30.0) -> None:
    """Create and fill ``world`` and ``fortune`` unless they are already there."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute(seed_sql().encode())  # no parameters: one simple-protocol batch
