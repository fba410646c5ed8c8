"""The process tree read from /proc's children files: the same processes psutil finds by
scanning every process, children started from a thread included."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil
import pytest

from loadlab import procs
from loadlab.proctree import process_tree

# A parent whose main thread starts one sleeper and whose second thread starts another,
# which starts a grandchild; it prints "ready" once all of them run.
TREE = textwrap.dedent("""
    import subprocess, sys, threading
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    nest = [sys.executable, "-c",
            "import subprocess, sys, time; subprocess.Popen(%r); print('up', flush=True); "
            "time.sleep(60)" % (sleep,)]
    kids = [subprocess.Popen(sleep)]
    def from_thread():
        kids.append(subprocess.Popen(nest, stdout=subprocess.PIPE, text=True))
        kids[-1].stdout.readline()
    t = threading.Thread(target=from_thread); t.start(); t.join()
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        procs.kill_group(proc.pid)
        proc.wait(timeout=10)


def test_the_tree_holds_every_descendant_and_nothing_else(tree: subprocess.Popen[str]) -> None:
    found = {p.pid for p in process_tree(tree.pid)}
    scanned = {tree.pid, *(p.pid for p in psutil.Process(tree.pid).children(recursive=True))}
    assert found == scanned
    assert len(found) == 4  # the parent, its two children, one grandchild


def test_a_process_that_is_gone_has_no_tree() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert process_tree(proc.pid) == []
