"""Schemathesis hooks for test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzer loves boundary values: ``ms=10000`` and ``work=50000`` are valid and would make
each case wait 10 s or spin 5 s. Valid values above a small cap are lowered to the cap, so
a bounded run still covers every path; invalid values are left alone for the rejection
checks.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from loadlab import contract

CAPS = {"ms": (50, contract.MAX_IO_MS), "work": (20, contract.MAX_CPU_WORK)}


def _capped(value: Any, cap: int, limit: int) -> Any:
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    if number is not None and cap < number <= limit:
        return cap
    return value


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    # before_call sees every case, also the coverage phase's boundary values.
    query = case.query
    if isinstance(query, dict):
        for name, (cap, limit) in CAPS.items():
            if name in query:
                query[name] = _capped(query[name], cap, limit)
