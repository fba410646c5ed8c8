"""The package's own structure: no module imports another that imports it back (also
through imports inside functions), so each can be read and changed on its own; the
packages form layers that go one way (the service below process control, runs below
runner and report); every package opens with a map; the runner's functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _imported(path: Path) -> set[str]:
    """Every module name an import in the file names (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in (SRC / "loadlab").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        # A submodule importing its own package is how packages work, not a cycle.
        graph[name] |= {m for m in _imported(path) if m in modules and m != name
                        and not name.startswith(m + ".")}
    return graph


def _reach(graph: dict[str, set[str]], start: set[str]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _package(module: str) -> str:
    """loadlab.runner.execute -> loadlab.runner; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


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
    assert "loadlab.runner.run_database" in graph["loadlab.runner.execute"]  # the walk sees it


RUNTIMES = ("loadlab.runner.native", "loadlab.runner.compose", "loadlab.runner.swarm")


def test_the_runtimes_sit_side_by_side() -> None:
    """Each runtime stands on runtime_base alone: none reaches another (or the name -> runtime
    choice in ``runtimes``), so one can change without the others."""
    graph = _imports()
    assert set(RUNTIMES) <= graph["loadlab.runner.runtimes"]  # runtime_for picks among them
    for runtime in RUNTIMES:
        assert "loadlab.runner.runtime_base" in graph[runtime], runtime
        others = _reach(graph, {runtime}) & {*RUNTIMES, "loadlab.runner.runtimes"}
        assert others == {runtime}, (runtime, sorted(others))


def test_runs_sit_under_runner_and_report() -> None:
    """The run record is the vocabulary both the runner and the report speak: it reaches
    neither of them (through any chain of imports), so either can depend on it."""
    graph = _imports()
    start = {m for m in graph if m == "loadlab.runs" or m.startswith("loadlab.runs.")}
    assert "loadlab.runs.record" in start
    seen = _reach(graph, start)
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


def test_packages_import_each_other_one_way_only() -> None:
    """Package by package (runner, report, claims, runs, ...): no two reach each other. The
    runner writes results and the report reads them; both sit on loadlab.runs."""
    graph = _imports()
    packages: dict[str, set[str]] = {}
    for module, imported in graph.items():
        packages.setdefault(_package(module), set()).update(
            _package(m) for m in imported if _package(m) != _package(module))
    both_ways = sorted((a, b) for a, targets in packages.items() for b in targets
                       if a < b and a in packages.get(b, set()))
    assert not both_ways, both_ways
    cycles = [p for p in packages if p in _reach(packages, packages[p])]
    assert not cycles, cycles
    assert "loadlab.runner" not in _reach(packages, {"loadlab.report"})
    assert "loadlab.runs" in packages["loadlab.report"]  # the walk sees it
    assert "loadlab.runs" in packages["loadlab.runner"]


# What the service images run, and nothing of it may import: the ``loadlab serve``
# supervisor and the process control around it, Docker tooling, the runner, the report.
NOT_IN_THE_SERVICE = ("loadlab.serve", "loadlab.launch", "loadlab.cpulimit",
                      "loadlab.container", "loadlab.stack", "loadlab.offline", "loadlab.cli",
                      "loadlab.doctor", "loadlab.runner", "loadlab.report", "loadlab.claims",
                      "loadlab.pgcluster", "loadlab.dashboards")


def test_the_service_imports_no_supervisor_no_docker_no_runner() -> None:
    """Every FastAPI or Flask worker imports what services/ imports, and what that imports:
    the contract, the metrics, the database pools; not the supervisor that started it."""
    graph = _imports()
    apps = sorted((ROOT / "services").glob("*/*_app.py"))
    assert len(apps) >= 2, apps
    # What Gunicorn reads in every master and worker, and the factory a user's app is
    # served through, are the service's too.
    start = {m for app in apps for m in _imported(app) if m in graph}
    start |= {"loadlab.gunicorn_conf", "loadlab.apps.entry"}
    closure = _reach(graph, start)
    assert {"loadlab.openapi", "loadlab.contract", "loadlab.metrics.asgi", "loadlab.service_db",
            "loadlab.buckets", "loadlab.scenarios"} <= closure
    # Every name banned here is a module that exists (a renamed one is renamed here too).
    absent = [b for b in NOT_IN_THE_SERVICE
              if not any(m == b or m.startswith(b + ".") for m in graph)]
    assert not absent, absent
    crossing = sorted(m for m in closure if any(
        m == banned or m.startswith(banned + ".") for banned in NOT_IN_THE_SERVICE))
    assert not crossing, crossing


def test_every_package_opens_with_its_map() -> None:
    """A package's __init__ says what each of its modules is for (a newcomer's map)."""
    bare = []
    for init in sorted((SRC / "loadlab").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        modules = sorted(p.stem for p in init.parent.glob("*.py") if p.stem != "__init__")
        missing = [m for m in modules if f"``{m}``" not in doc]
        if not doc or missing:
            bare.append(f"{init.parent.name}: {missing or 'no docstring'}")
    assert not bare, bare


def test_the_two_load_generators_share_an_interface_not_code() -> None:
    """The local Locust process and the swarm's master are both a LoadGenerator (mypy holds
    their methods to it: Runtime.load_generator returns one), and neither is built on the
    other."""
    from loadlab.runner.locust_driver import LocustProcess
    from loadlab.runner.swarm import MasterSwarm

    assert not issubclass(MasterSwarm, LocustProcess)
    assert not issubclass(LocustProcess, MasterSwarm)
    assert MasterSwarm.__mro__[1:] == LocustProcess.__mro__[1:] == (object,)


def test_the_runner_never_asks_which_runtime_it_has() -> None:
    """Every runtime is one Runtime with default hooks: no isinstance/hasattr on a runtime."""
    sniffing = []
    for path in sorted((SRC / "loadlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("isinstance", "hasattr") and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "runtime"):
                sniffing.append(f"{path.name}:{node.lineno}")
    assert not sniffing, sniffing
