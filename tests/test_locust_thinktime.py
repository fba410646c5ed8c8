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


def test_locusts_own_wait_functions_are_read(tmp_path: Path) -> None:
    """Locust's constant, between, constant_throughput and the default, in a subprocess
    (importing locust here would patch this interpreter with gevent)."""
    import json
    import subprocess

    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / 'locust')!r})\n"
        "from locust import User, between, constant, constant_throughput\n"
        "from _thinktime import declared\n"
        "class A(User): wait_time = constant(0.05)\n"
        "class B(User): wait_time = between(0.1, 0.3)\n"
        "class C(User): wait_time = constant_throughput(4)\n"
        "class D(User): pass\n"
        "print(json.dumps([declared([k]) for k in (A, B, C, D)]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    a, b, c, d = json.loads(done.stdout)
    assert a == {"think_time_ms": 50.0, "pacing_ms": None}
    assert b["think_time_ms"] == pytest.approx(200.0, rel=0.05)
    assert c == {"think_time_ms": None, "pacing_ms": 250.0}
    assert d == {"think_time_ms": 0.0, "pacing_ms": None}
