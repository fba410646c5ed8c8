"""free_port: the kernel picks a bound-and-closed port at random, so two picks made before
either port is bound could be the same one; the lab never hands out a port twice in a row
of picks, from one thread or many."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from loadlab.procs import free_port


def test_two_thousand_picks_are_distinct() -> None:
    # Without the memory of handed-out ports, 2,000 picks from the kernel's ~14,000 odd
    # ephemeral ports hold about 130 duplicates.
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_picks_from_many_threads_are_distinct() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ports = list(pool.map(lambda _: free_port(), range(1600)))
    assert len(set(ports)) == len(ports)
