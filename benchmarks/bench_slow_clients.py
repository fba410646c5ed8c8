"""Slow clients: K connections trickle their request (one header byte every 100 ms) while
another client times ordinary /json requests. Which servers let a few slow clients hold
every worker?

For each variant (one fresh service on one core): a baseline without slow clients, then
K = 2, 8, 32 trickling connections for a bounded time each; the ordinary requests go out
every 100 ms from their own threads with a 1 s timeout, so a stall shows up as timeouts.

    .venv/bin/python benchmarks/bench_slow_clients.py [--counts 2,8,32] [--trickle-s 8]
        [--variants sync-2,gthread-2x4,gevent-1,uvicorn-1] [--json results/slow.json]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import selectors
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _reliability import Prober, load_average, pinned_service, wait_idle, write_json_atomic

VARIANTS: dict[str, dict[str, Any]] = {
    "sync-2": {"framework": "flask", "worker_class": "sync", "workers": 2},
    "gthread-2x4": {"framework": "flask", "worker_class": "gthread", "workers": 2,
                    "threads": 4},
    "gevent-1": {"framework": "flask", "worker_class": "gevent", "workers": 1},
    "uvicorn-1": {"framework": "fastapi", "worker_class": "uvicorn", "workers": 1},
}
BYTE_EVERY_S = 0.1
NORMAL_EVERY_S = 0.1
NORMAL_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 3.0
BASELINE_S = 2.0


@dataclass
class Trickle:
    connections: int
    seconds: float = 0.0
    cut_by_server: int = 0   # the server closed or reset the connection mid-request
    answered: int = 0        # got a 200 after the last byte
    unanswered: int = 0      # no answer within ANSWER_TIMEOUT_S
    sent_at: float = 0.0     # when the last byte went out (monotonic)


def slow_request(host: str, seconds: float) -> bytes:
    """A valid GET whose length makes it last ``seconds`` at one byte per tick."""
    head = f"GET /json HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
    pad = max(1, int(seconds / BYTE_EVERY_S) - len(head) - 4)
    return head + b"a" * pad + b"\r\n\r\n"


def trickle(host: str, port: int, count: int, seconds: float) -> Trickle:
    """Open ``count`` connections and feed them the request a byte per tick, all in step;
    then read each answer. Bounded: seconds + ANSWER_TIMEOUT_S, plus connecting."""
    result = Trickle(count)
    began = time.monotonic()
    payload = slow_request(host, seconds)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                socks.append(socket.create_connection((host, port), timeout=2.0))
            except OSError:
                result.cut_by_server += 1
        live = list(socks)
        for i in range(len(payload)):
            for sock in list(live):
                try:
                    sock.send(payload[i:i + 1])
                except OSError:
                    result.cut_by_server += 1
                    live.remove(sock)
            time.sleep(max(0.0, began + (i + 1) * BYTE_EVERY_S - time.monotonic()))
        result.sent_at = time.monotonic()
        # Read the answers together and close each at once: Gunicorn 27 lingers up to 2 s
        # after a response until the client closes, holding a sync worker meanwhile.
        deadline = result.sent_at + ANSWER_TIMEOUT_S
        with selectors.DefaultSelector() as sel:
            for sock in live:
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ)
            while sel.get_map() and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    sock = key.fileobj  # type: ignore[assignment]
                    sel.unregister(sock)
                    try:
                        first = sock.recv(64)
                    except OSError:
                        first = b""
                    if first.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                        result.answered += 1
                    else:
                        result.cut_by_server += 1
                    sock.close()
            result.unanswered = len(sel.get_map())
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
    result.seconds = time.monotonic() - began
    return result


def run_variant(name: str, counts: list[int], seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with pinned_service(VARIANTS[name]) as service:
        host, port = service.cfg.host, service.cfg.port
        for count in [0, *counts]:
            with Prober(host, port, "/json", NORMAL_EVERY_S, NORMAL_TIMEOUT_S) as normal:
                t0 = time.monotonic()
                if count:
                    slow = trickle(host, port, count, seconds)
                    # Requests sent while every slow client still trickles for their timeout.
                    window = (t0 + 0.5, slow.sent_at - NORMAL_TIMEOUT_S)
                else:
                    time.sleep(BASELINE_S)
                    slow, window = Trickle(0), (t0, t0 + BASELINE_S)
            stats = normal.stats(*window)
            recovery = wait_idle(host, port)
            rows.append({"variant": name, "slow_clients": count, "trickle": asdict(slow),
                         "normal": asdict(stats), "success": stats.success,
                         "recovery_s": recovery})
            print_row(rows[-1])
        rows[-1]["alive"] = service.proc is not None and service.proc.poll() is None
    return rows


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def print_row(row: dict[str, Any]) -> None:
    n, t = row["normal"], row["trickle"]
    print(f"  {row['variant']:12s} K={row['slow_clients']:<3d} normal /json: ok "
          f"{n['ok']:3d}/{n['sent']:<3d} ({fmt(row['success'] * 100, '.0f'):>3}%) "
          f"timeouts {n['timeouts']:3d} errors {n['errors']:2d}  p50 {fmt(n['p50_ms'], '.1f'):>6}"
          f" ms  p99 {fmt(n['p99_ms'], '.1f'):>6} ms  longest gap {n['longest_gap_s']:4.1f} s"
          f" | slow: answered {t['answered']}, unanswered {t['unanswered']}, cut "
          f"{t['cut_by_server']} | recovered in {fmt(row['recovery_s'], '.1f')} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="2,8,32", help="slow connections per run")
    parser.add_argument("--trickle-s", type=float, default=8.0,
                        help="how long each slow request lasts (2-10)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="write the figures here (atomically)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant: {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        parser.error(f"--counts: integers separated by commas, got {args.counts!r}")
    if not all(1 <= c <= 256 for c in counts):
        parser.error("--counts: each 1-256")
    if not 2 <= args.trickle_s <= 10:
        parser.error("--trickle-s must be 2-10")

    began, load_before = time.monotonic(), load_average()
    rows: list[dict[str, Any]] = []
    for name in variants:
        rows += run_variant(name, counts, args.trickle_s)
    print(f"\nload average before {load_before}, after {load_average()}; "
          f"took {time.monotonic() - began:.0f} s")
    if args.json:
        write_json_atomic(args.json, {"load_average": [load_before, load_average()],
                                      "trickle_s": args.trickle_s, "rows": rows})


if __name__ == "__main__":
    main()
