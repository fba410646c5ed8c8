"""The open model's schedule on its own: _openmodel.py imports nothing from Locust, so it
is loaded here by path (the locustfile itself never is: gevent patching)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from support.locust_process import ROOT


def load_openmodel() -> ModuleType:
    if str(ROOT / "locust") not in sys.path:  # its helper _latency.py sits beside it
        sys.path.insert(0, str(ROOT / "locust"))
    spec = importlib.util.spec_from_file_location("_openmodel", ROOT / "locust" / "_openmodel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_openmodel", module)
    spec.loader.exec_module(module)
    return module


Pacer = load_openmodel().Pacer


def test_backlog_counts_at_the_pace_of_the_last_slot_not_the_users_left() -> None:
    pacer = Pacer()
    first = pacer.take(40.0, 4, 8)  # this process carries half of 40/s: a slot every 50 ms
    assert pacer.last_rate == 20.0
    # The users are gone when the test stops; the slots due are counted at 20/s all the same.
    # Untaken slots: first + 0.05, + 0.10, ..., + 1.00 -> 20 of them.
    assert pacer.backlog(now=first + 1.0) == 20
    assert pacer.backlog(now=first + 0.04) == 0  # the next slot is not due yet


def test_backlog_leaves_out_slots_before_the_measured_window() -> None:
    pacer = Pacer()
    first = pacer.take(10.0, 1, 1)  # a slot every 100 ms; next untaken at first + 0.1
    assert pacer.backlog(since=first + 0.55, now=first + 1.0) == 5  # 0.6, 0.7, ..., 1.0


def test_no_backlog_without_a_schedule() -> None:
    pacer = Pacer()
    assert pacer.backlog(now=1e9) == 0
    pacer.take(10.0, 1, 1)
    pacer.reset()
    assert pacer.backlog(now=1e9) == 0 and pacer.last_rate == 0.0
