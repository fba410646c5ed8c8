"""``loadlab serve --app``: any ASGI or WSGI app, under every server that fits, measured
from outside with the built-in services' metric names and a bounded ``handler``."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.metrics_scrape import Scrape, fetch, scrape, settled_scrape, wait_for
from support.runner_cli import assert_nothing_left, loadlab_here, tagged_env
from support.services import require_ft

from loadlab import servers
from loadlab.apps.load import interface_of
from loadlab.apps.probe import probe
from loadlab.apps.routes import OTHER, PathBuckets
from loadlab.apps.spec import parse
from loadlab.launch import ServiceProcess, free_port, port_in_use
from loadlab.serve import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"fastapi_shop": ("asgi", "/users/{user_id}/cart", "/products/{product_id}"),
            "flask_shop": ("wsgi", "/users/<int:user_id>/cart", "/products/<int:product_id>")}


def _serve(target: str, app_dir: Path | str, worker_class: str, workers: int = 1,
           threads: int = 1, env: dict[str, str] | None = None) -> ServiceProcess:
    spec = parse(target, str(app_dir))
    spec = replace(spec, interface=probe(spec))
    cfg = ServerConfig(framework="app", app=spec, port=free_port(), worker_class=worker_class,
                       workers=workers, threads=threads)
    return ServiceProcess(cfg, env=env, ready_timeout_s=60).start()


def _side(service: ServiceProcess) -> str:
    return service.metrics_url.removesuffix("/metrics")


def _handlers(result: Scrape) -> set[str]:
    return {labels["handler"] for labels in result.labelsets("http_requests_total")}


# -- detection and the fallback label, in process ----------------------------------------

def test_interfaces_are_told_apart() -> None:
    async def asgi(scope: object, receive: object, send: object) -> None: ...

    def wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    class Asgi:
        async def __call__(self, scope: object, receive: object, send: object) -> None: ...

    def one(x: object) -> None: ...

    assert (interface_of(asgi), interface_of(Asgi()), interface_of(wsgi)) == \
        ("asgi", "asgi", "wsgi")
    assert [interface_of(x) for x in ({}, Asgi, one, "app", None)] == ["", "", "", "", ""]


def test_the_fallback_label_is_bounded() -> None:
    buckets = PathBuckets(cap=4)
    labels = {buckets(f"/u{i}x/{i}") for i in range(10_000)}
    assert labels == {"/u0x", "/u1x", "/u2x", "/u3x", OTHER}
    ids = PathBuckets()
    assert {ids(f"/{i}/detail") for i in range(1000)} == {"/{id}"}
    assert ids("/") == "/" and ids("/orders/7") == "/orders"


def test_an_app_is_named_by_module_or_by_file(tmp_path: Path) -> None:
    package = tmp_path / "src" / "shop"
    package.mkdir(parents=True)
    (package / "api.py").write_text("app = None\n")
    inside = parse(f"{package / 'api.py'}:app", str(tmp_path / "src"))
    assert (inside.module, inside.attr, inside.app_dir) == ("shop.api", "app",
                                                           str(tmp_path / "src"))
    alone = parse(f"{package / 'api.py'}:service.app")
    assert (alone.module, alone.attr, alone.app_dir) == ("api", "service.app", str(package))
    assert parse("shop.api:app", str(tmp_path / "src")).env()["LOADLAB_APP"] == "shop.api:app"


# -- bad input: one line, exit 2, nothing started ----------------------------------------

BAD_APPS = {
    "missing.py": "import loadlab_no_such_package\n",
    "boom.py": "RATE = 1 / 0\n",
    "syntax.py": "def broken(:\n",
    "plain.py": "settings = {'debug': True}\nclass App:\n    pass\n",
    "asgi_only.py": "async def app(scope, receive, send):\n    pass\n",
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad_apps")
    for name, text in BAD_APPS.items():
        (path / name).write_text(text)
    return path


@pytest.mark.parametrize(("args", "expected"), [
    (["--app", "missing:app"], "ModuleNotFoundError: No module named 'loadlab_no_such_package'"
                               " (missing.py:1)"),
    (["--app", "boom:app"], "ZeroDivisionError: division by zero (boom.py:1)"),
    (["--app", "syntax:app"], "SyntaxError"),
    (["--app", "nowhere:app"], "no such module under"),
    (["--app", "plain:application"], "has no attribute 'application'"),
    (["--app", "plain:settings"], "neither an ASGI nor a WSGI application (a dict)"),
    (["--app", "plain:App"], "neither an ASGI nor a WSGI application (the class App)"),
    (["--app", "asgi_only:app", "--worker-class", "sync"],
     "--worker-class 'sync' does not fit asgi_only:app (ASGI): choose one of "
     + ", ".join(servers.classes_for("asgi"))),
    (["--app", "asgi_only:app", "--interface", "wsgi", "--worker-class", "uvicorn"],
     "--worker-class 'uvicorn' does not fit asgi_only:app (WSGI)"),
    (["--app", "asgi_only:app", "--threads", "4"],
     "--threads > 1 does not apply to asgi_only:app (ASGI)"),
    (["--app", "./nofile.py:app"], "no such file"),
    (["--app", "asgi_only"], "--app must be MODULE:ATTR or path/to/file.py:ATTR"),
    (["fastapi", "--app", "asgi_only:app"], "--app serves your app: leave out 'fastapi'"),
    (["--app-dir", "."], "name the service: fastapi, flask, or --app MODULE:ATTR"),
])
def test_bad_input_is_one_line_exit_2_nothing_started(bad_dir: Path, args: list[str],
                                                      expected: str) -> None:
    """In this process (``cli.main``; the app itself is still imported in a throwaway
    interpreter): no interpreter's start per case. Nothing carries the tag afterwards."""
    port, side = free_port(), free_port()
    _, tag = tagged_env()
    done = loadlab_here(
        ["serve", *args, "--app-dir", str(bad_dir), "--port", str(port), "--metrics-port",
         str(side)] if "--app-dir" not in args else ["serve", *args, "--port", str(port)],
        tag, cwd=bad_dir)
    assert_nothing_left(tag, grace_s=0)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""  # never "metrics at ..."
    assert not port_in_use("127.0.0.1", port) and not port_in_use("127.0.0.1", side)


# -- the examples under every server that fits -------------------------------------------

def _classes(interface: str) -> list[tuple[str, str]]:
    return [(name, servers.server_of(name).name) for name in servers.classes_for(interface)]


CASES = [(example, klass) for example, (interface, _, _) in EXAMPLES.items()
         for klass, _ in _classes(interface)]


@pytest.mark.slow
@pytest.mark.parametrize(("example", "worker_class"), CASES, ids=[f"{e}-{k}" for e, k in CASES])
def test_each_example_serves_under_each_fitting_server(example: str, worker_class: str) -> None:
    interface, cart, _ = EXAMPLES[example]
    threads = 4 if worker_class in ("gthread", "granian") and interface == "wsgi" else 1
    # Two workers: a sync worker's /shipping calls the app's own carrier, which another
    # worker must answer.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    service = _serve("app:app", ROOT / "examples" / example, worker_class, workers=2,
                     threads=threads, env=env)
    try:
        assert fetch(service.url, "/users/3/cart")[0] == 200
        assert fetch(service.url, "/users/4/cart")[0] == 200
        status, body = fetch(service.url, "/shipping/12345/quote")
        assert status == 200 and json.loads(body)["carrier"]["zip"] == "12345"
        status, body = fetch(service.url, "/users/9/recommendations")
        assert status == 200 and len(json.loads(body)["products"]) == 5
        assert fetch(service.url, "/products/1")[0] == 503  # no DATABASE_URL: a clean 503
        result = settled_scrape(_side(service))
        assert result.value("http_requests_total", handler=cart, method="GET",
                            status="200") == 2
        info = result.labelsets("loadlab_server_info")
        assert info and info[0]["framework"] == "app" and \
            info[0]["worker_class"] == worker_class
        assert result.value("loadlab_workers") == 2
        if interface == "asgi":  # the probes started from the app's lifespan, per worker
            # The probe observes every 0.5 s: wait for its first (a loaded machine can
            # answer the requests above before any worker's probe has woken once).
            wait_for(lambda: scrape(_side(service)).value(
                "loadlab_event_loop_lag_seconds_count") > 0, 15, "an event-loop lag sample")
            assert result.value("loadlab_threadpool_size") == 2 * 40  # AnyIO's default
    finally:
        service.stop()


@pytest.fixture(scope="module")
def shop_db(database_url: str) -> str:
    return database_url


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_examples_read_their_database_through_a_pool(example: str, shop_db: str) -> None:
    interface, _, product = EXAMPLES[example]
    service = _serve("app:app", ROOT / "examples" / example, servers.classes_for(interface)[0],
                     env={**os.environ, "DATABASE_URL": shop_db})
    try:
        for i in (1, 2, 10_000):
            status, body = fetch(service.url, f"/products/{i}")
            assert status == 200 and json.loads(body)["id"] == i
        assert fetch(service.url, "/products/10001")[0] == 404
        conn = http.client.HTTPConnection("127.0.0.1", service.cfg.port, timeout=30)
        conn.request("POST", "/orders", body=json.dumps({"product_id": 5, "quantity": 2}),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 200 and json.loads(reply.read())["quantity"] == 2
        conn.close()
        result = settled_scrape(_side(service))
        assert result.value("http_requests_total", handler=product, status="200") == 3
        assert result.value("http_requests_total", handler=product, status="404") == 1
    finally:
        service.stop()


# -- 10,000 distinct URLs keep the handler label bounded ---------------------------------

RAW_APPS = '''
async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''

DISTINCT = 10_000


def _hammer(port: int, paths: Iterator[str]) -> int:
    """GETs on one keep-alive connection; how many answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = 0
    try:
        for path in paths:
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            ok += reply.status == 200
    finally:
        conn.close()
    return ok


@pytest.mark.slow
@pytest.mark.parametrize(("target", "worker_class", "example"), [
    ("raw:asgi", "uvicorn", None), ("raw:wsgi", "gthread", None),
    ("app:app", "uvicorn", "fastapi_shop"), ("app:app", "gthread", "flask_shop"),
])
def test_ten_thousand_distinct_urls_keep_the_handler_bounded(
        tmp_path: Path, target: str, worker_class: str, example: str | None) -> None:
    if example is None:
        (tmp_path / "raw.py").write_text(RAW_APPS)
        app_dir = tmp_path
        paths = (f"/s{i}/{i}" for i in range(DISTINCT))
    else:
        app_dir = ROOT / "examples" / example
        paths = (f"/users/{i}/cart" if i % 2 else f"/no/such/{i}" for i in range(DISTINCT))
    service = _serve(target, app_dir, worker_class, threads=2 if worker_class == "gthread" else 1)
    try:
        answered = _hammer(service.cfg.port, paths)
        side = _side(service)
        wait_for(lambda: scrape(side).value("http_requests_total") >= DISTINCT, 30,
                 "every request counted")
        result = scrape(side)
        assert result.value("http_requests_total") == DISTINCT
        handlers = _handlers(result)
        if example is None:
            assert answered == DISTINCT
            assert len(handlers) == 33 and OTHER in handlers  # 32 first segments, then one
        else:
            assert answered == DISTINCT // 2
            assert handlers == {EXAMPLES[example][1], "<unmatched>"}
        assert len(result.labelsets("http_request_duration_seconds_count")) <= 2 * 34
    finally:
        service.stop()


# -- --python ft and --backpressure with --app (serve, run, size) ---------------------------

FLASK_SHOP = ROOT / "examples" / "flask_shop"
FASTAPI_SHOP = ROOT / "examples" / "fastapi_shop"


@pytest.mark.parametrize(("command", "args", "expected"), [
    (["serve"], ["--worker-class", "gevent", "--python", "ft"],
     "--worker-class gevent cannot run on --python ft"),
    (["serve"], ["--worker-class", "sync", "--backpressure", "4"],
     "--backpressure applies to --worker-class granian only"),
    (["run"], ["--worker-class", "gevent", "--python", "ft"],
     "--worker-class gevent cannot run on --python ft"),
    (["run"], ["--worker-class", "gthread", "--backpressure", "4"],
     "--backpressure applies to Granian only: add --worker-class granian"),
    (["run"], ["--backpressure", "4"],  # the WSGI app's default class is sync
     "--backpressure applies to Granian only"),
    (["size"], ["--candidates", "gevent:2", "--python", "ft"],
     "--candidates gevent: --worker-class gevent cannot run on --python ft"),
    (["size"], ["--candidates", "sync:2,granian:2", "--backpressure", "4"],
     "--candidates sync: --backpressure applies to Granian only"),
    (["size"], ["--candidates", "sync:2", "--python", "ft", "--runtime", "compose"],
     "--python ft runs natively only"),
])
def test_bad_ft_and_backpressure_combinations_are_one_line_exit_2(
        command: list[str], args: list[str], expected: str, tmp_path: Path) -> None:
    port = free_port()
    rest = {"serve": ["--port", str(port)],
            "run": ["--request", "GET /users/{random:50}/cart", "--users", "2",
                    "--duration", "1s", "--out", str(tmp_path / "o"), "--port", str(port)],
            "size": ["--request", "GET /users/{random:50}/cart", "--cpus", "2",
                     "--slo", "p95<200ms", "--out", str(tmp_path / "o")]}[command[0]]
    if "ft" in args:  # every command looks for the interpreter before the combination
        require_ft()
    _, tag = tagged_env()  # refused before anything starts: in this process (cli.main)
    done = loadlab_here([*command, "--app", f"{FLASK_SHOP}/app.py:app", *args, *rest], tag)
    assert_nothing_left(tag, grace_s=0)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "metrics at" not in done.stdout
    assert not port_in_use("127.0.0.1", port) and not (tmp_path / "o").exists()


def test_size_with_backpressure_keeps_only_the_candidates_that_take_it() -> None:
    from loadlab.runner.options import OptionError
    from loadlab.sizing.candidates import Branch
    from loadlab.sizing.command import runnable

    textbook = {Branch("sync"): [1, 2], Branch("granian"): [2], Branch("gevent"): [2]}
    assert list(runnable(textbook, "default", 8, explicit=False)) == [Branch("granian")]
    assert Branch("gevent") not in runnable(textbook, "ft", None, explicit=False)
    with pytest.raises(OptionError, match="no Granian candidate"):
        runnable({Branch("sync"): [1]}, "default", 8, explicit=False)


def _exe_of_tree(pid: int) -> set[str]:
    from loadlab.proctree import process_tree

    return {os.path.realpath(p.exe()) for p in process_tree(pid)}


@pytest.mark.slow
@pytest.mark.parametrize(("app_dir", "worker_class", "backpressure"), [
    (FLASK_SHOP, "gthread", 0), (FLASK_SHOP, "granian", 4), (FASTAPI_SHOP, "uvicorn", 0)],
    ids=["flask_shop-gthread", "flask_shop-granian-backpressure", "fastapi_shop-uvicorn"])
def test_the_examples_serve_on_the_free_threaded_interpreter(
        app_dir: Path, worker_class: str, backpressure: int) -> None:
    from support.services import require_ft

    require_ft()
    ft = os.path.realpath(servers.ft_python())
    spec = parse("app:app", str(app_dir))
    spec = replace(spec, interface=probe(spec, str(servers.ft_python())))
    cfg = ServerConfig(framework="app", app=spec, port=free_port(), worker_class=worker_class,
                       workers=1, threads=2 if spec.interface == "wsgi" else 1,
                       python="ft", backpressure=backpressure)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with ServiceProcess(cfg, env=env, ready_timeout_s=90) as service:
        assert fetch(service.url, "/users/3/cart")[0] == 200
        status, body = fetch(service.url, "/users/9/recommendations")
        assert status == 200 and len(json.loads(body)["products"]) == 5
        # the workers that answered run on the free-threaded interpreter
        assert ft in _exe_of_tree(service.pid), (ft, _exe_of_tree(service.pid))
        result = settled_scrape(_side(service))
        assert result.value("http_requests_total", handler="/users/<int:user_id>/cart"
                            if spec.interface == "wsgi" else "/users/{user_id}/cart",
                            method="GET", status="200") == 1


@pytest.mark.slow
def test_run_app_on_ft_with_granian_backpressure(tmp_path: Path) -> None:
    """``run --app`` carries --python ft and --backpressure to the server it starts."""
    from support.runner_cli import kill_tagged, loadlab, summary
    from support.services import require_ft

    require_ft()
    env, tag = tagged_env()
    env.pop("DATABASE_URL", None)
    out = tmp_path / "out"
    try:
        done = loadlab(["run", "--app", f"{FLASK_SHOP}/app.py:app", "--python", "ft",
                        "--worker-class", "granian", "--backpressure", "4",
                        "--request", "GET /users/{random:50}/cart", "--users", "4",
                        "--duration", "2s", "--warmup", "1s", "--out", str(out)],
                       env, timeout=240)
    finally:
        kill_tagged(tag)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = summary(out)["runs"]
    assert run["status"] == "ok", run.get("error")
    assert run["python"] == "ft" and run["backpressure"] == 4, run
    assert run["worker_class"] == "granian" and run["requests"] > 0
    assert_nothing_left(tag)


@pytest.mark.slow
def test_size_app_on_ft_sizes_granian_with_backpressure(tmp_path: Path) -> None:
    """``size --app --python ft --backpressure``: every point's run is on ft, backpressure
    given, Granian only (the textbook narrowed to it)."""
    from support.runner_cli import kill_tagged, loadlab, summary
    from support.services import require_ft

    require_ft()
    env, tag = tagged_env()
    env.pop("DATABASE_URL", None)
    out = tmp_path / "size"
    try:
        done = loadlab(["size", "--app", f"{FLASK_SHOP}/app.py:app", "--python", "ft",
                        "--backpressure", "4", "--request", "GET /users/{random:50}/cart",
                        "--cpus", "1", "--slo", "p95<500ms", "--rounds", "1", "--steps", "0",
                        "--duration", "2s", "--warmup", "1s", "--start-rate", "10",
                        "--max-rate", "10", "--out", str(out)], env, timeout=600)
    finally:
        kill_tagged(tag)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    doc = json.loads((out / "size.json").read_text())
    assert {c["worker_class"] for c in doc["candidates"]} == {"granian"}, doc["candidates"]
    for c in doc["candidates"]:
        for p in c["points"]:
            [run] = summary(out / p["results"])["runs"]
            assert run["python"] == "ft" and run["backpressure"] == 4, run
    assert '<section id="size">' in (out / "report.html").read_text()
    assert_nothing_left(tag)
