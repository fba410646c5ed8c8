"""``--runtime NAME`` -> the runtime that starts the services: ``native`` (local
processes), ``compose`` (the compose stack) or ``swarm`` (the stack on a Docker Swarm).

Apart from the runtimes themselves, which all sit on ``runtime_base``, so that none of them
imports another.
"""

from __future__ import annotations

from loadlab.runner.compose import ComposeRuntime
from loadlab.runner.native import NativeRuntime
from loadlab.runner.options import OptionError
from loadlab.runner.runtime_base import Runtime


def runtime_for(name: str, port: int | None = None) -> Runtime:
    """``port``: the native runtime's one port (None: a free port per start)."""
    if name == "native":
        return NativeRuntime(port=port)
    if name == "compose":
        return ComposeRuntime()
    if name == "swarm":
        from loadlab.runner.swarm import SwarmRuntime  # Docker tooling, only when asked

        return SwarmRuntime()
    raise OptionError(f"unknown runtime {name!r}: choose native, compose or swarm")
