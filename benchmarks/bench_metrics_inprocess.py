"""The metrics middleware's own CPU cost per request, without a network or a server.

Drives the bare apps directly (ASGI calls, WSGI calls) with and without the middleware,
alternated, and reports CPU microseconds per request (``time.process_time``, so a busy
machine slows the figures less than it does wall-clock throughput). Each mode runs in a
fresh interpreter, since prometheus_client picks single- or multi-process mode at import.
Each figure is the fastest of the rounds (a busy machine only ever slows a round down).

    .venv/bin/python benchmarks/bench_metrics_inprocess.py [--requests 2000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def asgi_cost(app: Any, requests: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/json", "raw_path": b"/json",
             "root_path": "", "query_string": b"", "headers": [(b"host", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Any) -> None:
        return None

    async def run() -> float:
        started = time.process_time()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        return time.process_time() - started

    return asyncio.run(run()) / requests * 1e6


def wsgi_cost(app: Any, requests: int) -> float:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/json", "QUERY_STRING": "",
               "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr}

    def start_response(*_: Any) -> None:
        return None

    started = time.process_time()
    for _ in range(requests):
        body = app(dict(environ), start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
    return (time.process_time() - started) / requests * 1e6


def child(framework: str, requests: int, rounds: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    if framework == "fastapi":
        import bare_fastapi as module
        cost = asgi_cost
    else:
        import bare_flask as module  # type: ignore[no-redef]
        cost = wsgi_cost
    apps = {"bare": module.create_app(), "metrics": module.create_instrumented_app()}
    for app in apps.values():
        cost(app, 500)  # warm-up: caches, label children, files
    runs: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            runs[name].append(cost(app, requests))
    # The fastest round: other work on a shared machine only ever adds time to a round.
    return {name: min(values) for name, values in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.requests, args.rounds)))
        return 0
    print(f"{'framework':<10}{'mode':<16}{'bare µs':>9}{'+metrics µs':>13}{'cost µs':>9}")
    for framework in ("fastapi", "flask"):
        for mode in ("single-process", "multiprocess"):
            env = dict(os.environ)
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with tempfile.TemporaryDirectory(prefix="loadlab-bench-") as directory:
                if mode == "multiprocess":
                    env["PROMETHEUS_MULTIPROC_DIR"] = directory
                out = subprocess.run(
                    [sys.executable, __file__, "--child", framework, "--requests",
                     str(args.requests), "--rounds", str(args.rounds)],
                    env=env, capture_output=True, text=True, check=True, timeout=1800).stdout
            figures = json.loads(out)
            print(f"{framework:<10}{mode:<16}{figures['bare']:>9.1f}{figures['metrics']:>13.1f}"
                  f"{figures['metrics'] - figures['bare']:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
