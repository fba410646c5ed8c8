"""The owner of a ``loadlab db up`` cluster: starts it, records it, stops it on SIGTERM.

``loadlab db up`` returns at once, so something must outlive it and own the postmaster
(whose death signal fires when its owner ends). This small process is that owner: killed
in any way, it takes the cluster with it; the next start sweeps the directory.

Run as ``python -m loadlab.pgcluster.keeper STATE_FILE [--max-connections N]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

import psutil

from loadlab.fileio import atomic_write
from loadlab.pgcluster.cluster import PostgresCluster

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # one stop at a time
    raise _Stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadlab.pgcluster.keeper")
    parser.add_argument("state_file", type=Path)
    parser.add_argument("--max-connections", type=int, default=100)
    args = parser.parse_args(argv)
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    cluster = PostgresCluster(max_connections=args.max_connections)
    try:
        cluster.start()
        me = psutil.Process()
        state = {"keeper_pid": me.pid, "keeper_created": me.create_time(),
                 "url": cluster.url, "directory": str(cluster.directory),
                 "log": str(cluster.log_path), **cluster.describe()}
        atomic_write(args.state_file, json.dumps(state, indent=2), mode=0o600)  # holds the password
        print(f"DATABASE_URL={cluster.url}", flush=True)
        assert cluster.proc is not None
        code = cluster.proc.wait()  # a stop signal interrupts this with _Stop
        print(f"postgres exited by itself with {code}: {cluster.log_tail()}", file=sys.stderr)
        return 1
    except _Stop:
        return 0
    finally:
        cluster.stop()
        args.state_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
