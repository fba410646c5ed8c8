"""Nothing lost: a results directory is never emptied unless asked, one runner per directory,
nothing outlives a runner killed with SIGKILL, and a ^C always ends the runner with 130."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.runner_cli import (
    SHORT,
    hung_runner_report,
    interrupted_in_the_second_run,
    kill_tagged,
    loadlab,
    loadlab_here,
    running,
    summary,
    tagged,
    tagged_env,
    two_cell_matrix,
    under_load,
    wait_for,
)

from loadlab.procs import is_alive
from loadlab.runner.leftovers import DirectoryBusy, DirectoryLock, Leftovers


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _held(out: Path, runs: int = 1) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": "loadlab-results/1", "manifest": {},
                       "runs": [{"run_id": str(n)} for n in range(runs)]})
    (out / "summary.json").write_text(text)
    return text


def test_run_refuses_an_out_that_holds_results(tmp_path: Path,
                                               env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "kept"
    before = _held(out)
    # Refused before anything starts, so in this process (cli.main); the process path of a
    # refusal: test_a_second_runner_on_the_same_out_refuses.
    result = loadlab_here(["run", "--target", "fastapi", "--scenario", "json", *SHORT,
                           "--out", str(out)], env[1])
    assert result.returncode == 2
    assert "already holds results (1 run(s)" in one_line(result) and "--replace" in result.stderr
    assert (out / "summary.json").read_text() == before
    assert not tagged(env[1])
    matrix = loadlab_here(["matrix", str(two_cell_matrix(tmp_path / "m.toml")), "--out",
                           str(out)], env[1])
    assert matrix.returncode == 2 and "--resume" in one_line(matrix)
    assert (out / "summary.json").read_text() == before


@pytest.mark.slow  # two real runs
def test_replace_starts_over(tmp_path: Path, env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "again"
    _held(out, runs=3)
    (out / "raw").mkdir()
    (out / "raw" / "000-old.json").write_text("[]")
    (out / "notes.txt").write_text("the user's own file")
    result = loadlab(["run", "--target", "fastapi", "--scenario", "json", "--users", "2",
                      *SHORT, "--out", str(out), "--replace"], env[0])
    assert result.returncode == 0, result.stderr
    assert len(summary(out)["runs"]) == 1
    assert not (out / "raw" / "000-old.json").exists()
    assert (out / "notes.txt").read_text() == "the user's own file"  # not the lab's to remove


def test_a_second_runner_on_the_same_out_refuses(tmp_path: Path,
                                                 env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    first = DirectoryLock(out).acquire()  # the first runner, mid-session
    try:
        (out / ".running.json").write_text("[]")
        result = loadlab(["run", "--target", "fastapi", "--scenario", "json", *SHORT,
                          "--out", str(out)], env[0])
        assert result.returncode == 2
        assert f"in use by another runner (pid {os.getpid()})" in one_line(result)
        assert not tagged(env[1])
        with pytest.raises(DirectoryBusy):
            DirectoryLock(out).acquire()
    finally:
        first.release()
    DirectoryLock(out).acquire().release()  # free again once the holder lets go


_RUNNER = """
import subprocess, sys
from pathlib import Path
from loadlab.runner.leftovers import Leftovers
left = Leftovers(Path(sys.argv[1]))
child = subprocess.Popen(["sleep", "300"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
left.add("service", child.pid)
print(child.pid, flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


def _fake_runner(out: Path) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen([sys.executable, "-c", _RUNNER, str(out)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert runner.stdout is not None
    return runner, int(runner.stdout.readline())


def test_leftovers_of_a_live_runner_are_left_alone_and_a_dead_ones_reaped(
    tmp_path: Path,
) -> None:
    runner, child = _fake_runner(tmp_path)
    try:
        assert Leftovers(tmp_path).reap() == []  # its runner lives: not ours to end
        assert is_alive(child) and len(running(tmp_path)) == 1
        runner.communicate("", timeout=30)  # the runner ends without its clean-up
        assert is_alive(child)
        assert Leftovers(tmp_path).reap() == [f"service (pid {child})"]
        wait_for(lambda: not is_alive(child), 10, "the leftover to end")
        assert not (tmp_path / ".running.json").exists()
    finally:
        if runner.poll() is None:
            runner.kill()
        if is_alive(child):
            os.killpg(child, signal.SIGKILL)


@pytest.mark.slow  # a real run killed
def test_sigkill_of_the_runner_leaves_nothing_running(tmp_path: Path,
                                                      env: tuple[dict[str, str], str]) -> None:
    out = tmp_path / "k"
    # A short directory of its own for the runner's temporary files (sockets live there).
    scratch = Path(tempfile.mkdtemp(prefix="ll-kill-"))
    proc = subprocess.Popen([sys.executable, "-m", "loadlab", "run", "--target", "fastapi",
                             "--scenario", "json", "--users", "2", "--duration", "60s",
                             "--warmup", "1s", "--out", str(out)],
                            env={**env[0], "TMPDIR": str(scratch)}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: under_load(out), 90, "the run under load")
        started = [e["pid"] for e in running(out)]
        proc.kill()  # SIGKILL: the runner cleans nothing up
        proc.wait(timeout=30)
        # The service (with its server) and Locust end with their runner, by themselves.
        # Both conditions are waited for: a process tearing down has no environment left
        # to carry the tag some milliseconds before it stops running (a CI run saw one).
        wait_for(lambda: not tagged(env[1]) and not any(is_alive(pid) for pid in started),
                 20, "the service and Locust to end")
        # The service's log has no name on disk, so nothing is left to clean up.
        assert sorted(p.name for p in scratch.glob("loadlab-*.log")) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a script gives its child


@pytest.mark.slow  # a real run stopped
def test_ctrl_c_ends_a_runner_that_inherited_sigint_ignored(
    tmp_path: Path, env: tuple[dict[str, str], str],
) -> None:
    """Seen in CI: ^C during the last run, exit 0 and both runs recorded. A runner started in
    the background by a shell inherits SIGINT ignored, and Python keeps it ignored."""
    out = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadlab", "matrix", str(two_cell_matrix(tmp_path / "m.toml",
                                                                         "6s")),
         "--out", str(out)], env=env[0], text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=_sigint_ignored)
    stderr = interrupted_in_the_second_run(proc, out)
    assert proc.returncode == 130, stderr
    assert "interrupted: kept 1" in stderr
    assert len(summary(out)["runs"]) == 1
    wait_for(lambda: not tagged(env[1]), 10, "nothing left running")


def _hang_report_of(code: str) -> str:
    """``hung_runner_report`` on a Python process running ``code``, once it says "started"."""
    env, tag = tagged_env()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        return hung_runner_report(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_tagged(tag)  # its children: nothing ties them to their parent here


def test_a_runner_that_will_not_end_is_reported_with_its_stacks() -> None:
    """What the ^C tests say when a runner hangs after the signal: the state of each process
    it started and every thread's stack, where the hang is (not a bare timeout)."""
    code = ("import pathlib, subprocess, threading, time\n"
            "child = subprocess.Popen(['sleep', '60'], stdout=subprocess.DEVNULL,\n"
            "                         stderr=subprocess.DEVNULL)  # like the runner's children\n"
            "cmdline = pathlib.Path(f'/proc/{child.pid}/cmdline')\n"
            "for _ in range(3000):\n"
            "    if cmdline.read_bytes() == b'sleep\\x0060\\x00':\n"
            "        break\n"
            "    time.sleep(0.01)\n"
            "def stuck_in_its_clean_up():\n"
            "    print('started', flush=True)\n"
            "    threading.Event().wait()\n"
            "stuck_in_its_clean_up()\n")
    # It says "started" once its child's command line reads `sleep 60`: Popen returns when
    # the exec has closed the child's descriptors, before the kernel has set its arguments
    # (read then, /proc/<pid>/cmdline is empty, most reads on a busy machine). And it says it
    # from inside the function: once the line is read, any SIGABRT finds the function on the
    # stack (said before the call, a busy machine could abort it between).
    report = _hang_report_of(code)
    # The child's state: "sleeping", or "running" on a busy machine that has not run it yet.
    assert "its processes:" in report and re.search(r"pid \d+ [a-z-]+: sleep 60", report), report
    assert "most recent call first" in report and "stuck_in_its_clean_up" in report, report


def test_the_hang_report_names_a_child_that_exited_unreaped() -> None:
    """A child that exited and was never waited for (a zombie) is listed with its state and
    name: psutil refuses a zombie's command line, and the report once dropped its line."""
    code = ("import pathlib, subprocess, threading, time\n"
            "child = subprocess.Popen(['true'])  # never waited for\n"
            "stat = pathlib.Path(f'/proc/{child.pid}/stat')\n"
            "for _ in range(3000):\n"
            "    if stat.read_text().rsplit(')', 1)[1].split()[0] == 'Z':\n"
            "        break\n"
            "    time.sleep(0.01)\n"
            "print('started', flush=True)\n"
            "threading.Event().wait()\n")
    report = _hang_report_of(code)
    assert re.search(r"pid \d+ zombie: \(true, exited, not reaped\)", report), report


@pytest.mark.slow
def test_a_database_lost_mid_run_is_not_recorded_ok(tmp_path: Path,
                                                    database_url: str) -> None:
    del database_url  # the same skip (or CI failure) when PostgreSQL is missing
    from loadlab.pgcluster import PostgresCluster, seed

    cluster = PostgresCluster().start()
    env, tag = tagged_env(DATABASE_URL=cluster.url)
    out = tmp_path / "db"
    try:
        seed(cluster.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadlab", "run", "--target", "fastapi", "--scenario", "db",
             "--users", "4", "--duration", "12s", "--warmup", "1s", "--out", str(out)],
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: under_load(out), 90, "the run under load")
            cluster.stop()  # the database goes away mid-run
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        cluster.stop()
        kill_tagged(tag)
    assert proc.returncode == 1, stderr
    run = summary(out)["runs"][0]
    assert run["status"] == "errors" and "error rate" in run["error"], run
    assert "ERRORS - error rate" in stderr
    assert "too many failed requests" in stdout  # the headline says so
