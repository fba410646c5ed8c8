"""Container entry point: run a ``loadlab`` command; on a configuration error, stay down.

A bad ``.env`` (a CPU count that is not a number, an unknown worker class, threads without
gthread) makes ``loadlab serve`` exit 2 with a one-line reason. Exiting would make the
restart policy start it again and again; instead the process keeps running without
serving, so the log holds that one line, the healthcheck reports the container
unhealthy, and ``docker compose up --wait`` fails naming it. SIGTERM ends it at once.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
from collections.abc import Sequence

from loadlab.cli import build_parser
from loadlab.cli import main as cli_main

CONFIG_ERROR = 2


def usage_error(argv: Sequence[str]) -> str | None:
    """argparse's complaint about argv as one line (it prints the whole usage first)."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code:
            return captured.getvalue().strip().splitlines()[-1]
    return None


def park() -> None:
    """Wait, serving nothing, until the container is stopped."""
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    signal.sigwait(stop)


def run(argv: Sequence[str]) -> int:
    reason = usage_error(argv)
    if reason is not None:
        print(reason, file=sys.stderr, flush=True)
        code = CONFIG_ERROR
    else:
        code = cli_main(argv)
    if code != CONFIG_ERROR:
        return code
    park()
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
