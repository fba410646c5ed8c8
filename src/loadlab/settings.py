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
    # Where /upstream calls: empty means this service's own /io, at the address it is bound
    # to (never one a request names: a Host header would make the service a proxy).
    upstream_url: str = Field(default="", validation_alias="UPSTREAM_URL")
    # The address `loadlab serve` bound (host:port, [v6]:port), exported as LOADLAB_BIND.
    bind: str = ""
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    # FastAPI's /cpu/process pool, per worker process.
    process_pool_size: int = Field(default=2, ge=1, le=64)
    # The database behind /db, /queries, /db/sleep: empty means none configured (503).
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    # Connections per worker process; None picks the worker class's default (servers.py).
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


def own_io_url(bind: str) -> str | None:
    """``http://HOST:PORT/io`` of a service bound to ``bind`` (``host:port``); a wildcard
    host (0.0.0.0, ::) is reached on loopback. None when ``bind`` names no port."""
    host, sep, port = bind.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    host = host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/io"


def upstream_target(settings: ServiceSettings, server: tuple[str, int] | None) -> str | None:
    """Where ``/upstream`` calls: UPSTREAM_URL, else the service's own ``/io`` at its bound
    address (LOADLAB_BIND, else ``server``, the local end of the connection as the server
    reports it). Never anything taken from the request. None when nothing is known."""
    if settings.upstream_url:
        return settings.upstream_url
    own = own_io_url(settings.bind)
    if own is None and server is not None:
        own = own_io_url(f"{server[0]}:{server[1]}")
    return own
