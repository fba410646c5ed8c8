"""The matrix file: every combination becomes a cell; a wrong key or type names key and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadlab.runner.matrix import MatrixError, load_matrix, parse_matrix

ROOT = Path(__file__).resolve().parents[1]


def toml_list(values: list[object]) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


@settings(max_examples=60, deadline=None)
@given(
    targets=st.lists(st.sampled_from(["fastapi", "flask"]), min_size=1, max_size=2, unique=True),
    scenarios=st.lists(st.sampled_from(["json", "io", "cpu"]), min_size=1, max_size=3,
                       unique=True),
    users=st.lists(st.integers(1, 500), min_size=1, max_size=3, unique=True),
    workers=st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
    cpus=st.lists(st.sampled_from([0, 0.5, 1]), min_size=1, max_size=2, unique=True),
)
def test_every_combination_is_a_cell(targets: list[str], scenarios: list[str],
                                     users: list[int], workers: list[int],
                                     cpus: list[float]) -> None:
    text = (f"[matrix]\ntargets = {toml_list(targets)}\nscenarios = {toml_list(scenarios)}\n"
            f"users = {toml_list(users)}\nworkers = {toml_list(workers)}\n"
            f"cpus = {toml_list(cpus)}\nduration = \"3s\"\n")
    matrix = parse_matrix(text)
    assert len(matrix.cells) == (len(targets) * len(scenarios) * len(users) * len(workers)
                                 * len(cpus))
    assert len({c.key for c in matrix.cells}) == len(matrix.cells)
    assert all(c.duration_s == 3.0 for c in matrix.cells)


GOOD = """\
[matrix]
targets = ["fastapi", "flask"]
scenarios = ["io"]
users = [10, 20]
workers = [1]
worker_classes = { flask = ["sync", "gthread"] }
duration = "5s"

[[override]]
match = { worker_class = "gthread" }
threads = 4

[gates]
max_p95_ms = 500
"""


def test_overrides_and_gates_apply() -> None:
    matrix = parse_matrix(GOOD)
    gthread = [c for c in matrix.cells if c.worker_class == "gthread"]
    assert len(matrix.cells) == 6 and len(gthread) == 2
    assert all(c.threads == 4 for c in gthread)
    assert all(c.threads == 1 for c in matrix.cells if c.worker_class != "gthread")
    assert matrix.gates.max_p95_ms == 500


@settings(max_examples=40, deadline=None)
@given(line=st.integers(1, 7), key=st.from_regex(r"[a-z]{3,10}_[a-z]{2,6}", fullmatch=True))
def test_unknown_key_is_named_with_its_line(line: int, key: str) -> None:
    lines = GOOD.splitlines()
    lines.insert(line, f"{key} = 1")  # somewhere inside [matrix]
    with pytest.raises(MatrixError) as info:
        parse_matrix("\n".join(lines), Path("m.toml"))
    assert str(info.value).startswith(f"m.toml:{line + 1}: matrix.{key}: unknown key")


@pytest.mark.parametrize(("replace", "with_", "key", "line"), [
    ('users = [10, 20]', 'users = "ten"', "matrix.users", 4),
    ('workers = [1]', 'workers = [1, 0]', "matrix.workers", 5),
    ('duration = "5s"', 'duration = "5 minutes"', "matrix.duration", 7),
    ('scenarios = ["io"]', 'scenarios = ["sleep"]', "matrix.scenarios", 3),
    ('threads = 4', 'threads = "four"', "override.threads", 11),
    ('max_p95_ms = 500', 'max_p95 = 500', "gates.max_p95", 14),
    ('max_p95_ms = 500', 'max_p95_ms = "fast"', "gates.max_p95_ms", 14),
    ('match = { worker_class = "gthread" }', 'match = { klass = "gthread" }',
     "override.match.klass", 10),
])
def test_wrong_type_or_key_names_key_and_line(replace: str, with_: str, key: str,
                                              line: int) -> None:
    assert replace in GOOD
    with pytest.raises(MatrixError) as info:
        parse_matrix(GOOD.replace(replace, with_), Path("m.toml"))
    assert re.match(rf"m\.toml:{line}: {re.escape(key)}: ", str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_toml_syntax_error_has_its_line() -> None:
    with pytest.raises(MatrixError, match=r"line 2"):
        parse_matrix("[matrix]\nscenarios = io\n", Path("m.toml"))


@given(st.text(max_size=200))
@settings(max_examples=80, deadline=None)
def test_any_text_gives_a_matrix_or_one_line_error(text: str) -> None:
    try:
        parse_matrix(text)
    except MatrixError as exc:
        assert "\n" not in str(exc)


def test_shipped_quick_matrix_parses() -> None:
    matrix = load_matrix(ROOT / "matrices" / "quick.toml")
    assert {c.target for c in matrix.cells} == {"fastapi", "flask"}
    assert 4 <= len(matrix.cells) <= 12


def test_shipped_full_matrix_parses_for_a_many_core_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # loadlab serve refuses a CPU limit above the machine's cores: pretend to have 8.
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    matrix = load_matrix(ROOT / "matrices" / "full.toml")
    assert {c.cpus for c in matrix.cells} == {1.0, 2.0, 4.0}
    assert {c.workers for c in matrix.cells} == {1, 2, 4, 8}
    assert all(c.threads == 8 for c in matrix.cells if c.worker_class == "gthread")
    assert 40 <= len(matrix.cells) <= 120  # about an hour at 35 s a cell


def test_shipped_scaling_matrix_gives_the_fits_enough_points_on_two_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    matrix = load_matrix(ROOT / "matrices" / "scaling.toml")
    cpus = {c.cpus for c in matrix.cells}
    workers = {c.workers for c in matrix.cells}
    assert len(cpus) >= 4 and min(cpus) == 0.25 and max(cpus) == 2.0  # USL needs 4 points
    assert len(workers) >= 3 and matrix.rounds == 2
