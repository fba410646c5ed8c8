"""Gunicorn configuration for the fastapi service (the settings live in the core)."""

from loadlab.gunicorn_conf import *  # noqa: F403
