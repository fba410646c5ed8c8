"""Settings of a running service, read from the environment that ``loadlab serve`` sets."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What a service knows about itself; ``loadlab serve`` exports these as LOADLAB_*."""

    # An empty variable means the default: compose passes `${LOADLAB_DB_POOL_SIZE:-}`
    # through when the knob is not set, and "" is no number.
    model_config = SettingsConfigDict(env_prefix="LOADLAB_", extra="ignore",
                                      env_ignore_empty=True)

    server: str = "unknown"
    worker_class: str = "unknown"
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=1, ge=1)
    # Where /upstream calls: empty means this service's own /io.
    upstream_url: str = Field(default="", validation_alias="UPSTREAM_URL")
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    # FastAPI's /cpu/process pool, per worker process.
    process_pool_size: int = Field(default=2, ge=1, le=64)
    # The database behind /db, /queries, /db/sleep: empty means none configured (503).
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    # Connections per worker process; None picks the worker class's default (db.py).
    db_pool_size: int | None = Field(default=None, ge=1, le=1000)
    # How long a request waits for a pooled connection before a 503.
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=300)


def env_name(field: str) -> str:
    """The variable a setting is read from (``db_pool_size`` -> ``LOADLAB_DB_POOL_SIZE``)."""
    alias = ServiceSettings.model_fields[field].validation_alias if \
        field in ServiceSettings.model_fields else None
    if isinstance(alias, str):
        return alias
    return f"{ServiceSettings.model_config.get('env_prefix', '')}{field.upper()}"
