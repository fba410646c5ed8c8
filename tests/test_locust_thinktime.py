"""The users' declared think time (locust/_thinktime.py), read as the plugin reads it."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "locust"))

from _thinktime import declared


def _user(wait: object, weight: int = 1) -> type:
    return type("U", (), {"wait_time": staticmethod(wait) if wait else None,
                          "weight": weight})


def _between(a: float, b: float) -> object:
    return lambda instance: a + random.random() * (b - a)


def _pacing(wait_time: float) -> object:
    def wait_time_func(self: Any) -> float:  # the shape of Locust's constant_pacing
        return wait_time - float(self._cp_last_run)

    wait_time_func.__qualname__ = "constant_pacing.<locals>.wait_time_func"
    return wait_time_func


def test_constant_and_between_are_their_means() -> None:
    assert declared([_user(lambda instance: 0.05)]) == {"think_time_ms": 50.0,
                                                        "pacing_ms": None}
    mean = declared([_user(_between(0.1, 0.3))])["think_time_ms"]
    assert mean == pytest.approx(200.0, rel=0.05)


def test_classes_are_weighted_and_sampling_leaves_the_random_stream_alone() -> None:
    random.seed(7)
    expected = random.random()
    random.seed(7)
    found = declared([_user(lambda instance: 0.0, weight=3), _user(lambda instance: 0.1)])
    assert found["think_time_ms"] == pytest.approx(25.0)
    assert random.random() == expected


def test_pacing_is_read_from_its_closure_and_an_unknown_wait_is_none() -> None:
    assert declared([_user(_pacing(0.5))]) == {"think_time_ms": None, "pacing_ms": 500.0}
    assert declared([_user(lambda self: self.delay)])["think_time_ms"] is None
    assert declared([_user(_pacing(0.5)), _user(lambda instance: 0.1)]) == {
        "think_time_ms": None, "pacing_ms": None}
