"""``loadlab size``'s options (argparse only: ``loadlab --help`` builds every parser)."""

from __future__ import annotations

import argparse

from loadlab.runner.own_load_arguments import add_app_arguments, add_load_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_app_arguments(p)
    p.add_argument("--target", default=None, help="fastapi or flask: a built-in service "
                                                  "(instead of --app)")
    p.add_argument("--scenario", default=None, help="the lab's load (else --locustfile or "
                                                    "--request)")
    p.add_argument("--io-ms", default=None, help="with --scenario: the wait of io requests")
    p.add_argument("--cpu-work", default=None, help="with --scenario: cpu work units")
    add_load_arguments(p)
    p.add_argument("--cpus", required=True, help="the CPU budget in cores (e.g. 2)")
    p.add_argument("--slo", required=True, help='the latency target, e.g. "p95<200ms"')
    p.add_argument("--max-error-rate", default="0.01",
                   help="errors allowed within the target (share, default 0.01)")
    p.add_argument("--min-capacity", default=None, metavar="RPS",
                   help="exit 1 when the best configuration serves less than this")
    p.add_argument("--candidates", default=None, metavar="LIST",
                   help='an explicit set instead of the textbook points, e.g. '
                        '"sync:2,gthread:2x8,uvicorn:2"')
    p.add_argument("--python", default=None, metavar="default|ft",
                   help="the candidates' interpreter: ft is the free-threaded CPython 3.13t "
                        "that .ci/build-python-ft builds (gevent is left out there)")
    p.add_argument("--backpressure", default=None, metavar="N",
                   help="Granian: requests a worker takes at once; only the candidates "
                        "that take it (Granian's) are sized")
    p.add_argument("--runtime", default="native", choices=["native", "compose"],
                   help="native: local processes under a cgroup quota; compose: the compose "
                        "app profile (or the fastapi/flask service) with cpus: --cpus")
    p.add_argument("--db-pool-sizes", default=None, metavar="LIST",
                   help="database connections per process to try, e.g. 4,10")
    p.add_argument("--rounds", default="3",
                   help="most rounds per point: one run each, more only at a capacity "
                        "whose interval is wider than ±10%% (default 3)")
    p.add_argument("--budget", default="10m",
                   help="the time the whole search may take: what the search leaves of it "
                        "goes to more rounds (up to twice --rounds) for the capacities still "
                        "wider than ±10%%, the best first (0: none; default 10m)")
    p.add_argument("--duration", default="4s", help="measured time of each point's run")
    p.add_argument("--warmup", default="1s", help="warm-up of a candidate's first run (later "
                                                  "runs on its warm service: half)")
    p.add_argument("--start-rate", default="20", help="the ramp's first arrival rate (req/s)")
    p.add_argument("--max-rate", default="5000", help="the ramp's highest arrival rate")
    p.add_argument("--steps", default="3", help="bisection steps after the ramp")
    p.add_argument("--out", default="results/size", help="where size.json and runs go")
    p.add_argument("--replace", action="store_true",
                   help="start over in an --out that holds results (they are removed)")
