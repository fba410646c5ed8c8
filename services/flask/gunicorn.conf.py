"""Gunicorn configuration for the flask service (the settings live in the core)."""

from loadlab.gunicorn_conf import *  # noqa: F403
