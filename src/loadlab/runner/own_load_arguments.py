"""The options of the user's own app and load, shared by ``run`` and ``size`` (argparse
only: ``loadlab --help`` builds every parser)."""

from __future__ import annotations

import argparse


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    """The user's own app, instead of the lab's services (as ``loadlab serve --app``)."""
    p.add_argument("--app", default=None, metavar="MODULE:ATTR",
                   help="your own ASGI or WSGI app (or path/to/file.py:ATTR)")
    p.add_argument("--app-dir", default=None, metavar="DIR",
                   help="--app: the directory its module is imported from (default: here)")
    p.add_argument("--interface", default=None, choices=["asgi", "wsgi"],
                   help="--app: force the interface instead of detecting it")


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    """The user's own load, instead of a --scenario of the lab's."""
    p.add_argument("--locustfile", default=None, metavar="FILE",
                   help="your own locustfile (its user classes, the lab's measurement)")
    p.add_argument("--request", action="append", default=None, metavar="TEMPLATE",
                   help='a request to send, repeatable: "[WEIGHT*]METHOD /path[/{id}] '
                        '[@body.json]" ({id}: a counter, {random}: 1..10000)')
