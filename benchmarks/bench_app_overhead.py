"""What ``loadlab serve --app`` costs a user's app: the same app wrapped and unwrapped,
side by side.

For each example (``examples/fastapi_shop`` under Uvicorn, ``examples/flask_shop`` under
Gunicorn sync, one worker each) two servers run at the same time on the server core:

* ``unwrapped``: the server on the app itself (``uvicorn app:app``, ``gunicorn app:app``);
* ``wrapped``: ``loadlab serve --app app:app``, the lab's instrumentation around it and
  its side port scraped every ``--scrape-interval`` seconds as Prometheus would.

Each gets its own wrk on the load core, at once, on a route without I/O (the cheapest
request is where a fixed cost per request shows most). Compared: requests per CPU-second
of each server's process tree (the supervisor's CPU counts for ``wrapped``), per round,
the median of the ratios wrapped/unwrapped. Both share the machine's drift in the same
seconds, which makes the ratio usable on a busy machine where requests/s are not.

    .venv/bin/python benchmarks/bench_app_overhead.py [--rounds 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _reliability import process_group
from _sidebyside import at_once
from bench_metrics_overhead import LOAD_CORE, SERVER_CORE, Server, per_cpu_second
from bench_metrics_overhead import SCRAPE_INTERVAL_S as SCRAPE

from loadlab.launch import free_port

ROOT = Path(__file__).resolve().parent.parent
PATH = "/users/3/cart"


@dataclass(frozen=True)
class Example:
    name: str
    worker_class: str
    connections: int

    @property
    def app_dir(self) -> Path:
        return ROOT / "examples" / self.name

    def unwrapped(self, port: int) -> list[str]:
        if self.worker_class == "uvicorn":
            return [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(self.app_dir),
                    "--port", str(port), "--no-access-log", "--log-level", "warning"]
        return [sys.executable, "-m", "gunicorn", "app:app", "--chdir", str(self.app_dir),
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class",
                self.worker_class, "--log-level", "warning", "--backlog", "2048"]

    def wrapped(self, port: int, metrics_port: int) -> list[str]:
        return [sys.executable, "-m", "loadlab", "serve", "--app", "app:app", "--app-dir",
                str(self.app_dir), "--worker-class", self.worker_class, "--port", str(port),
                "--metrics-port", str(metrics_port)]


EXAMPLES = {e.name: e for e in (Example("fastapi_shop", "uvicorn", 64),
                                Example("flask_shop", "sync", 2))}


@contextlib.contextmanager
def running(example: Example, wrapped: bool) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    metrics_url = ""
    if wrapped:
        metrics_port = free_port()
        argv = example.wrapped(port, metrics_port)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    else:
        argv = example.unwrapped(port)
    url = f"http://127.0.0.1:{port}{PATH}"
    what = f"{example.name} {'wrapped' if wrapped else 'unwrapped'}"
    with process_group(["taskset", "-c", SERVER_CORE, *argv], env, url, what,
                       ready_s=60) as proc:
        yield Server(url, proc.pid, metrics_url)


def side_by_side(example: Example, rounds: int, seconds: float) -> list[float]:
    """Per round: wrapped's requests per CPU-second over unwrapped's, measured at once."""
    ratios = []
    for _ in range(rounds):
        with running(example, False) as bare, running(example, True) as lab:
            ratios.append(at_once(
                lambda s: per_cpu_second(s, seconds, example.connections), bare, lab))
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--examples", nargs="+", default=sorted(EXAMPLES),
                        choices=sorted(EXAMPLES))
    parser.add_argument("--scrape-interval", type=float, default=5.0,
                        help="seconds between scrapes of the wrapped app's side port (0: none)")
    args = parser.parse_args()
    SCRAPE[0] = args.scrape_interval
    if (os.cpu_count() or 1) < 2 or shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench_app_overhead: needs 2 cores, wrk and taskset", file=sys.stderr)
        return 2
    print(f"server core {SERVER_CORE}, load core {LOAD_CORE}, GET {PATH}")
    print(f"{'example':<16}{'server':<10}{'per-CPU wrapped/unwrapped (median)':>36}  rounds")
    for name in args.examples:
        example = EXAMPLES[name]
        ratios = side_by_side(example, args.rounds, args.duration)
        print(f"{name:<16}{example.worker_class:<10}{statistics.median(ratios):>36.3f}  "
              f"{' '.join(f'{r:.3f}' for r in ratios)}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
