"""``loadlab serve --python ft``: the service on free-threaded CPython 3.13t.

The real services answer /info with the GIL's state read inside the request: on the normal
build it is on, on the free-threaded one it must stay off with every server package
imported. Tests that need the interpreter skip (or fail where CI requires it:
LOADLAB_REQUIRE_PYTHON_FT=1) until .ci/build-python-ft has built it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from support.runner_cli import assert_nothing_left, loadlab_here, tagged_env
from support.services import require_ft

from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServeError, ServerConfig, serve_argv


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``loadlab serve ARGS`` refused before anything starts: in this process (cli.main;
    test_serve runs the process itself); nothing may carry the tag afterwards."""
    _, tag = tagged_env()
    done = loadlab_here(["serve", *args], tag, env=env)
    assert_nothing_left(tag, grace_s=0)
    return done


def info(options: dict[str, object]) -> dict[str, object]:
    if options.get("python") == "ft":
        require_ft()
    cfg = ServerConfig(port=free_port(), **options)  # type: ignore[arg-type]
    with ServiceProcess(cfg) as svc:
        reply = httpx.get(f"{svc.url}/info", timeout=30)
    reply.raise_for_status()
    body: dict[str, object] = reply.json()
    return body


def test_gevent_is_refused_on_ft_in_one_line() -> None:
    done = run_serve("flask", "--worker-class", "gevent", "--python", "ft")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "gevent" in done.stderr and "3.13t" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_ft_interpreter_says_how_to_build_it(tmp_path: Path) -> None:
    done = run_serve("fastapi", "--port", "0", "--python", "ft",
                     env={"LOADLAB_PYTHON_FT": f"{tmp_path}/no-such-python"})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ".ci/build-python-ft" in done.stderr and "Traceback" not in done.stderr


def test_unknown_python_is_refused() -> None:
    with pytest.raises(ServeError, match="--python"):
        ServerConfig(framework="fastapi", python="pypy")
    done = run_serve("fastapi", "--python", "pypy")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_argv_carries_the_interpreter() -> None:
    argv = serve_argv(ServerConfig(framework="flask", worker_class="gthread", threads=2,
                                   python="ft"))
    assert argv[-2:] == ["--python", "ft"]
    assert "--python" not in serve_argv(ServerConfig(framework="flask"))


@pytest.mark.slow  # the quick lane reads the same from /info in test_contract's variants
def test_gil_is_on_inside_a_request_on_the_normal_build() -> None:
    body = info(dict(framework="fastapi", worker_class="uvicorn", workers=1))
    python = body["python"]
    assert isinstance(python, dict)
    assert python["free_threaded"] is False
    assert body["gil_enabled"] is True


FT_VARIANTS = {
    "fastapi-uvicorn": dict(framework="fastapi", worker_class="uvicorn", workers=1),
    "flask-sync": dict(framework="flask", worker_class="sync", workers=1),
    "flask-gthread": dict(framework="flask", worker_class="gthread", workers=1, threads=2),
}


# The quick lane: the ASGI service only (one free-threaded service started); the WSGI ones
# in ``make test``.
@pytest.mark.parametrize("variant", [
    pytest.param(name, marks=() if name == "fastapi-uvicorn" else pytest.mark.slow)
    for name in sorted(FT_VARIANTS)])
def test_gil_is_off_inside_a_request_on_the_free_threaded_build(variant: str) -> None:
    body = info({**FT_VARIANTS[variant], "python": "ft"})
    python = body["python"]
    assert isinstance(python, dict)
    assert python["implementation"] == "CPython"
    assert python["version"].startswith("3.13")
    assert python["free_threaded"] is True
    assert body["gil_enabled"] is False, "an import turned the GIL back on inside the service"
