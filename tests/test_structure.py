"""The package's own structure: no module imports another that imports it back (also
through imports inside functions), so each can be read and changed on its own."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _imports() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in (SRC / "loadlab").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            # A submodule importing its own package is how packages work, not a cycle.
            graph[name] |= {m for m in found if m in modules and m != name
                            and not name.startswith(m + ".")}
    return graph


def test_no_import_cycles() -> None:
    graph = _imports()
    cycles: set[tuple[str, ...]] = set()

    def walk(start: str, path: list[str]) -> None:
        for nxt in graph[path[-1]]:
            if nxt == start:
                cycles.add(tuple(sorted(path)))
            elif nxt not in path:
                walk(start, [*path, nxt])

    for name in graph:
        walk(name, [name])
    assert not cycles, sorted(cycles)
    assert "loadlab.runner.compose" in graph["loadlab.runner.runtime"]  # the walk sees it


def test_runs_sit_under_runner_and_report() -> None:
    """The run record is the vocabulary both the runner and the report speak: it reaches
    neither of them (through any chain of imports), so either can depend on it."""
    graph = _imports()
    start = [m for m in graph if m == "loadlab.runs" or m.startswith("loadlab.runs.")]
    assert "loadlab.runs.record" in start
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    above = sorted(m for m in seen if m.split(".")[1] in ("runner", "report", "claims"))
    assert not above, above
    assert "loadlab.runs.record" in graph["loadlab.report.html"]  # the walk sees it


MAX_FUNCTION_LINES = 60


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's body in lines, its docstring left out (nested functions count in it)."""
    body = node.body
    if (len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_no_function_in_the_runner_is_long() -> None:
    """One run is start, measure and record_from, each readable on one screen: a function of
    more than MAX_FUNCTION_LINES lines in runner/ is a sign that one has grown back."""
    long: list[str] = []
    measured = 0
    for path in sorted((SRC / "loadlab" / "runner").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                measured += 1
                if _body_lines(node) > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} {_body_lines(node)}")
    assert measured > 100  # the walk sees the runner
    assert not long, long


def test_the_line_count_is_of_the_body() -> None:
    tree = ast.parse('def f():\n    """Doc\n    string."""\n    a = 1\n\n    return a\n')
    [func] = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert _body_lines(func) == 3
