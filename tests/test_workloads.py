"""The CPU workload: its result is the LCG's, and its hot loop shares no object between
threads (on the free-threaded build a module-level int read by two threads serialises
them; ``benchmarks/bench_workloads.py --threads`` measures it)."""

from __future__ import annotations

from loadlab import workloads


def _reference(units: int) -> int:
    state = units
    for _ in range(units * 1000):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
    return state


def test_cpu_work_is_the_64_bit_lcg() -> None:
    for units in (0, 1, 3, 17):
        assert workloads.cpu_work(units) == _reference(units)


def test_the_loop_shares_no_number_between_threads() -> None:
    """Only objects the calling thread made itself are read in the loop: no constant (a
    literal is one object for every thread) and no module-level int."""
    code = workloads.cpu_work.__code__
    big_constants = [c for c in code.co_consts if isinstance(c, int) and abs(c) > 256]
    assert big_constants == []  # ints up to 256 are immortal, shared without a count
    copied = {"_MULTIPLIER", "_INCREMENT", "_MASK"}
    assert copied <= set(code.co_names)
    for name in copied:
        assert workloads._own(getattr(workloads, name)) is not getattr(workloads, name)
