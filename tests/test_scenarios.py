"""The scenarios are written once (loadlab.scenarios): every copy derived from the
registry agrees with it — the lists the commands offer, the locustfile's requests and the
routes they name, its tasks and their weights, and the docs' table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from support.locust_process import ROOT

from loadlab import scenarios

sys.path.insert(0, str(ROOT / "locust"))
import _options
import _scenarios


def test_the_lists_come_from_the_registry() -> None:
    registered = tuple(s.name for s in scenarios.REGISTRY)
    assert (*registered, scenarios.MIX) == scenarios.SCENARIOS
    assert len(set(scenarios.SCENARIOS)) == len(scenarios.SCENARIOS)
    assert tuple(s.name for s in scenarios.REGISTRY if s.needs_db) == scenarios.DB_SCENARIOS
    assert not set(scenarios.MIX_WEIGHTS) & set(scenarios.DB_SCENARIOS)  # "all" needs no db
    assert _scenarios.MIX_WEIGHTS == scenarios.MIX_WEIGHTS
    assert list(_scenarios.SINGLE) == [s.name for s in scenarios.REGISTRY]


class Reply:
    status_code = 200
    content = b"{}"
    text = "{}"

    def failure(self, message: str) -> None:
        pass

    def success(self) -> None:
        pass


class Recorder:
    """A client that records the request each scenario sends and answers anything."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    @contextmanager
    def _send(self, method: str, path: str, name: str, **_: Any) -> Iterator[Reply]:
        self.sent.append((method, path, name))
        yield Reply()

    def get(self, path: str, name: str, **kw: Any) -> Any:
        return self._send("GET", path, name, **kw)

    def post(self, path: str, name: str, **kw: Any) -> Any:
        return self._send("POST", path, name, **kw)


def test_each_request_is_named_by_its_registry_route() -> None:
    knobs = _options.Knobs(scenario="", io_ms=7, cpu_work=3, queries=2, arrival_rate=0,
                           late_s=0.01)
    for entry in scenarios.REGISTRY:
        client = Recorder()
        for _ in range(30):  # echo sends an invalid body one time in ten
            _scenarios.SINGLE[entry.name](client, knobs)
        names_sent = {name for _, _, name in client.sent}
        assert entry.path in names_sent, (entry.name, names_sent)
        assert all(n == entry.path or n.startswith(entry.path + " [") for n in names_sent)
        paths = {path for _, path, _ in client.sent}
        # The knobs the registry says apply are the ones the request sends.
        assert all(("ms=7" in p) == entry.uses_io_ms for p in paths), (entry.name, paths)
        assert all(("work=3" in p) == entry.uses_cpu_work for p in paths), (entry.name, paths)


def test_the_locustfiles_tasks_are_the_registrys() -> None:
    """Imported in a process of its own (Locust patches the interpreter with gevent)."""
    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import locustfile\n"
        "tags = {}\n"
        "for t in locustfile.LabUser.tasks:\n"
        "    (tag,) = t.locust_tag_set\n"
        "    tags[tag] = tags.get(tag, 0) + 1\n"
        "print(json.dumps(tags))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT / "locust")],
                         capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    weights = json.loads(out.stdout.strip().splitlines()[-1])
    assert weights == {s.name: max(s.mix_weight, 1) for s in scenarios.REGISTRY}


def test_the_docs_table_lists_every_scenario_without_a_database() -> None:
    text = (ROOT / "docs" / "locust.md").read_text()
    documented = set(re.findall(r"^\| `([\w-]+)` \| `?(?:GET|POST|every)", text, re.M))
    assert documented == {s.name for s in scenarios.REGISTRY if not s.needs_db} | {"all"}
