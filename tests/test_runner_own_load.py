"""``loadlab run`` with the user's own load: --locustfile (its user classes, measured by the
lab's plugin) and --request templates; every bad input is one line, exit 2, nothing run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runner_cli import (
    SHORT,
    assert_nothing_left,
    kill_tagged,
    loadlab,
    loadlab_here,
    summary,
    tagged_env,
)

from loadlab.requestlist import RequestError, fill, parse

OWN = Path(__file__).parent / "locustfiles" / "own_shop.py"


def test_templates_parse_with_weight_method_fields_and_body(tmp_path: Path) -> None:
    body = tmp_path / "order.json"
    body.write_text('{"name": "a", "quantity": 1, "price": 1.0}')
    t = parse("3*post /orders/{id} @order.json", tmp_path)
    assert (t.weight, t.method, t.path, t.name) == (3, "POST", "/orders/{id}",
                                                     "POST /orders/{id}")
    assert t.body == {"name": "a", "quantity": 1, "price": 1.0}
    assert fill("/items/{id}/x/{random:5}", 7, lambda a, b: b) == "/items/7/x/5"
    assert fill("/r/{random}", 1, lambda a, b: b) == "/r/10000"


@pytest.mark.parametrize(("text", "words"), [
    ("FETCH /x", "unknown method"),
    ("GET nopath", "expected"),
    ("0*GET /x", "weight"),
    ("GET /items/{name}", "unknown field"),
    ("GET /items/{id", "unbalanced"),
    ("POST /x @missing.json", "cannot read"),
])
def test_bad_templates_are_refused(text: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(RequestError, match=words):
        parse(text, tmp_path)


@pytest.mark.parametrize(("args", "words"), [
    (["--request", "FETCH /x"], "unknown method"),
    (["--locustfile", "no_such_file.py"], "no such file"),
    (["--locustfile", str(OWN), "--request", "GET /json"], "choose one"),
    (["--scenario", "io", "--request", "GET /json"], "choose one"),
    ([], "--scenario, --locustfile or --request"),
])
def test_bad_own_load_is_one_line_exit_2(args: list[str], words: str, tmp_path: Path) -> None:
    _, tag = tagged_env()  # refused before anything starts: in this process (cli.main)
    done = loadlab_here(["run", "--target", "fastapi", *args, "--out", str(tmp_path / "o")],
                        tag)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "o").exists()
    assert_nothing_left(tag)


@pytest.mark.slow
def test_run_with_the_users_own_locustfile(tmp_path: Path) -> None:
    env, tag = tagged_env()
    out = tmp_path / "out"
    try:
        done = loadlab(["run", "--target", "fastapi", "--locustfile", str(OWN), "--users", "4",
                        *SHORT, "--max-p95-ms", "60000", "--out", str(out)], env)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["status"] == "ok" and run["scenario"] == "locustfile"
    assert run["locustfile"] == str(OWN.resolve())
    assert run["latency_source"] == "hdr" and run["requests"] > 0
    assert run["bottleneck"]["resource"]
    stats = json.loads((out / run["locust_json"]).read_text())
    assert {e["name"] for e in stats} == {"browse catalogue", "place order"}
    assert_nothing_left(tag)


@pytest.mark.slow
def test_run_with_request_templates(tmp_path: Path) -> None:
    body = tmp_path / "order.json"
    body.write_text('{"name": "a", "quantity": 1, "price": 1.0}')
    env, tag = tagged_env()
    out = tmp_path / "out"
    try:
        done = loadlab(["run", "--target", "flask", "--request", "3*GET /io?ms={random:5}",
                        "--request", f"POST /echo @{body}", "--users", "4", *SHORT,
                        "--out", str(out)], env)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["status"] == "ok" and run["scenario"] == "requests", run.get("error")
    assert run["failures"] == 0 and run["requests"] > 0
    assert run["request_templates"] == ["3*GET /io?ms={random:5}", f"POST /echo @{body}"]
    assert_nothing_left(tag)


WSGI_APP = """
import time


def app(environ, start_response):
    if environ["PATH_INFO"].startswith("/items/"):
        time.sleep(0.002)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]
"""


@pytest.mark.slow
def test_run_with_the_users_own_app_and_requests(tmp_path: Path) -> None:
    """A plain WSGI app (no /healthz, no lab import) under the runner: ready from the side
    port, loaded by templates, its handler label bounded by the fallback."""
    (tmp_path / "shop.py").write_text(WSGI_APP)
    env, tag = tagged_env()
    out = tmp_path / "out"
    try:
        done = loadlab(["run", "--app", f"{tmp_path / 'shop.py'}:app", "--request",
                        "GET /items/{id}", "--users", "4", *SHORT, "--out", str(out)], env)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["status"] == "ok", run.get("error")
    assert run["target"] == "app" and run["app"] == "shop:app"
    assert run["worker_class"] == "sync" and run["failures"] == 0 and run["requests"] > 0
    assert run["bottleneck"]["resource"]
    assert_nothing_left(tag)


def test_run_app_without_own_load_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(WSGI_APP)
    _, tag = tagged_env()  # in this process (cli.main), as above
    done = loadlab_here(["run", "--app", f"{tmp_path / 'shop.py'}:app", "--scenario", "io",
                         "--out", str(tmp_path / "o")], tag)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert_nothing_left(tag)
