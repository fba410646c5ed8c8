"""Waiting for an event by polling it, never by a fixed sleep: one loop for every test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.1,
             retry: tuple[type[Exception], ...] = ()) -> T:
    """``check()``'s first truthy value, asked every ``every_s``; after ``timeout_s`` an
    AssertionError naming ``what`` (and the last of the ``retry`` errors it swallowed)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except retry as exc:
            last_error = exc
        if time.monotonic() > deadline:
            seen = f" ({last_error})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{seen}")
        time.sleep(every_s)
