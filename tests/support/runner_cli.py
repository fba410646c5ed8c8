"""Helpers for the runner tests: the real CLI as a subprocess, and what it left running."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from support.polling import wait_for as wait_for  # the runner tests import it from here

SHORT = ["--duration", "2s", "--warmup", "1s"]


def tagged_env(**extra: str) -> tuple[dict[str, str], str]:
    """An environment whose tag every process the runner starts inherits."""
    tag = uuid.uuid4().hex
    # PYTHONFAULTHANDLER: a runner that hangs prints every thread's stack on SIGABRT
    # (hung_runner_report).
    env = dict(os.environ, LOADLAB_TEST_TAG=tag, PYTHONFAULTHANDLER="1", **extra)
    return env, tag


def loadlab(args: list[str], env: dict[str, str], timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadlab", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, cwd=cwd)


def one_line_error(stderr: str) -> str:
    """The one line a refused command printed (and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def loadlab_here(args: list[str], tag: str, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``loadlab ARGS`` in this process, through ``cli.main`` (the function ``python -m
    loadlab`` exits with), for input refused before anything starts: no interpreter's start
    per case (``test_claims_select`` and a few runner tests run the process itself for the
    same one line and exit 2). ``env``: variables set for the call. Anything it did start
    would carry ``tag``."""
    import contextlib
    import io

    import pytest

    from loadlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(out):
        patch.setenv("LOADLAB_TEST_TAG", tag)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        if cwd is not None:
            patch.chdir(cwd)
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loadlab", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tagged(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("LOADLAB_TEST_TAG") == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def assert_nothing_left(tag: str, grace_s: float = 10.0) -> None:
    deadline = time.monotonic() + grace_s
    while (left := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left running: {[p.cmdline()[:4] for p in left if p.is_running()]}"


def kill_tagged(tag: str) -> None:
    """Clean-up after a failed test: only processes carrying this test's tag."""
    for proc in tagged(tag):
        try:
            proc.kill()
        except psutil.Error:
            continue


def summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def runs_done(out: Path) -> int:
    try:
        return len(summary(out)["runs"])
    except (OSError, ValueError):
        return 0


def running(out: Path) -> list[dict[str, Any]]:
    try:
        entries: list[dict[str, Any]] = json.loads((out / ".running.json").read_text())
        return entries
    except (OSError, ValueError):
        return []


def _what_runs(child: psutil.Process) -> str:
    """A child's command line; its name where it has none: one that has exited but was not
    reaped (psutil refuses its command line), or one caught between fork and exec."""
    try:
        args = " ".join(child.cmdline()[:4])
    except psutil.ZombieProcess:
        return f"({child.name()}, exited, not reaped)"
    return args or f"({child.name()}, no command line yet)"


def hung_runner_report(proc: subprocess.Popen[str]) -> str:
    """What a runner that will not end is doing: the state of each process it started
    (``disk-sleep`` is a process stuck in the kernel), then every thread's stack, which
    the runner prints when SIGABRT ends it (PYTHONFAULTHANDLER, set by ``tagged_env``)."""
    lines = []
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                lines.append(f"pid {child.pid} {child.status()}: {_what_runs(child)}")
    except psutil.Error:
        lines.append("(the runner is gone)")
    proc.send_signal(signal.SIGABRT)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # a child holds its output open: the runner goes
        proc.kill()
        stderr = "(no output: its stderr is held open)"
    return "\n".join(["its processes:", *lines, "its output:", stderr[-12000:]])


def interrupted_in_the_second_run(proc: subprocess.Popen[str], out: Path,
                                  within_s: float = 60) -> str:
    """Ctrl-C to a two-cell matrix once its second run has begun; its stderr once it ended
    (if it does not within ``within_s``: an AssertionError with ``hung_runner_report``)."""
    try:
        wait_for(lambda: runs_done(out) == 1 and len(running(out)) == 2, 90, "the second run")
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=within_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the runner did not end within {within_s:g} s of ^C; "
                                 + hung_runner_report(proc)) from None
    finally:
        if proc.poll() is None:
            proc.kill()
    return stderr


def under_load(out: Path) -> bool:
    """Service and Locust both listed, and Locust's statistics show requests served (its
    periodic table, every 2 s): Locust is started beside a one-process service that may
    still be starting, so the list alone is not enough."""
    return len(running(out)) == 2 and any(
        re.search(r"Aggregated\s+[1-9]\d*\s", log.read_text(errors="replace"))
        for log in (out / "raw").glob("*.locust.log"))


def two_cell_matrix(path: Path, duration: str = "3s") -> Path:
    path.write_text(
        "[matrix]\n"
        'targets = ["fastapi"]\n'
        'scenarios = ["json"]\n'
        "users = [2, 4]\n"
        f'duration = "{duration}"\n'
        'warmup = "1s"\n'
    )
    return path
