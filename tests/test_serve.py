"""``loadlab serve``: every variant as real processes, CPU limits in real cgroups, bad options.

The cgroup tests need a native quota mechanism (root on cgroup v1 here, or a delegated
v2 tree); elsewhere they are skipped with the reason `loadlab doctor` gives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from support.runner_cli import assert_nothing_left, loadlab_here, tagged_env
from support.system_tools import require

from loadlab import cgroup, cpulimit
from loadlab.cgroup import CgroupRef
from loadlab.launch import ServiceProcess, free_port
from loadlab.serve import ServeError, ServerConfig, worker_warnings

VARIANTS: dict[str, dict[str, object]] = {
    "uvicorn-2": dict(framework="fastapi", worker_class="uvicorn", workers=2),
    "uvicorn-asyncio-h11": dict(framework="fastapi", worker_class="uvicorn", loop="asyncio",
                                http="h11"),
    "fastapi-gunicorn": dict(framework="fastapi", worker_class="uvicorn-worker", workers=2),
    "flask-sync": dict(framework="flask", worker_class="sync", workers=2),
    "flask-gthread": dict(framework="flask", worker_class="gthread", workers=1, threads=4),
    "flask-gevent": dict(framework="flask", worker_class="gevent", workers=1),
    "fastapi-granian": dict(framework="fastapi", worker_class="granian", workers=2),
    "flask-granian": dict(framework="flask", worker_class="granian", workers=2, threads=2),
}


@pytest.fixture(scope="module")
def mechanism() -> str:
    return cpulimit.native_mechanism()


@pytest.fixture(scope="module")
def quota(mechanism: str) -> str:
    require("cgroup", None if mechanism in ("cgroup-v1", "cgroup-v2")
            else f"no writable cgroup here (only {mechanism})")
    return mechanism


def serve_cgroup_dir(serve_pid: int) -> Path:
    """Where serve makes its group: a child of our own cpu cgroup, named by serve's pid."""
    ref = cgroup.own_cgroup()
    assert ref is not None
    return cgroup.cgroup_dirs(ref, strict=False)["cpu"] / f"loadlab-{serve_pid}"


def tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def start(cpus: float = 0.0, env: dict[str, str] | None = None,
          **options: object) -> ServiceProcess:
    cfg = ServerConfig(port=free_port(), cpus=cpus, **options)  # type: ignore[arg-type]
    return ServiceProcess(cfg, env=env, ready_timeout_s=60).start()


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_runs_in_its_own_cgroup(variant: str, quota: str) -> None:
    options = VARIANTS[variant]
    svc = start(1.5, None, **options)
    try:
        info = httpx.get(f"{svc.url}/info", timeout=10).json()
        group = serve_cgroup_dir(svc.pid)
        procs = tree(svc.pid)
        expected = {"server": svc.cfg.server, "worker_class": svc.cfg.worker_class,
                    "workers": svc.cfg.workers, "threads": svc.cfg.threads,
                    "cpu_limit_cores": 1.5, "framework": svc.cfg.framework}
        assert {k: info[k] for k in expected} == expected
        assert group.is_dir()
        members = {int(p) for p in (group / "cgroup.procs").read_text().split()}
        # Every process of the server tree (master and workers), and serve itself not.
        assert {p.pid for p in procs} <= members
        assert svc.pid not in members
        assert len(procs) >= svc.cfg.workers + (svc.cfg.server == "gunicorn")
        assert info["pid"] in members
        server_env = procs[0].environ()
        if svc.cfg.server == "uvicorn":
            argv = " ".join(procs[0].cmdline())
            assert f"--loop {svc.cfg.loop} --http {svc.cfg.http}" in argv
        ref = CgroupRef.from_env(server_env["LOADLAB_CGROUP"])
        assert ref is not None and cgroup.cgroup_dirs(ref)["cpu"] == group
        stats = cgroup.service_cpu_stats(environ=server_env)
        assert stats is not None and stats.limit_cores == 1.5 and stats.usage_seconds > 0
        assert (cgroup.service_memory_bytes(environ=server_env) or 0) > 10_000_000
    finally:
        svc.stop()
    assert not group.exists()
    assert not psutil.wait_procs(procs, timeout=5)[1]


def _cpu_load(url: str, requests_each: int, deadline: float, stop: threading.Event,
              statuses: list[int]) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(requests_each):
            if stop.is_set() or time.monotonic() > deadline:
                return
            statuses.append(client.get(f"{url}/cpu", params={"work": 1000}).status_code)


@pytest.mark.slow
def test_half_a_cpu_throttles_under_load(quota: str) -> None:
    svc = start(cpus=0.5, framework="flask", worker_class="sync", workers=2)
    try:
        env = tree(svc.pid)[0].environ()
        before = cgroup.service_cpu_stats(environ=env)
        assert before is not None and before.limit_cores == 0.5
        started = time.monotonic()
        stop, statuses = threading.Event(), list[int]()
        threads = [threading.Thread(target=_cpu_load,
                                    args=(svc.url, 30, started + 10, stop, statuses))
                   for _ in range(3)]
        for t in threads:
            t.start()
        # Bounded load (90 requests, 10 s) that stops once a few periods were throttled.
        while any(t.is_alive() for t in threads):
            now = cgroup.service_cpu_stats(environ=env)
            if now and now.throttled_periods >= before.throttled_periods + 5:
                stop.set()
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        after = cgroup.service_cpu_stats(environ=env)
        assert after is not None
        assert statuses and set(statuses) == {200}
        assert after.throttled_periods > before.throttled_periods
        assert after.throttled_seconds > before.throttled_seconds
        used = after.usage_seconds - before.usage_seconds
        # The quota holds: never more than half a core over the window (plus one period).
        assert 0.05 < used <= 0.5 * elapsed + 0.15
    finally:
        svc.stop()
    assert not serve_cgroup_dir(svc.pid).exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_serve_alone_ends_everything(sig: int, quota: str) -> None:
    svc = start(cpus=1, framework="fastapi", worker_class="uvicorn", workers=2)
    assert svc.proc is not None
    procs = tree(svc.pid)
    group = serve_cgroup_dir(svc.pid)
    assert group.is_dir()
    os.kill(svc.pid, sig)  # serve only, not its group: serve must forward it
    rc = svc.proc.wait(timeout=20)
    try:
        assert rc == 0
        assert not group.exists()
        psutil.wait_procs(procs, timeout=5)
        assert not any(p.is_running() for p in procs)
    finally:
        svc.stop()


def test_crashed_server_leaves_nothing(quota: str) -> None:
    svc = start(cpus=1, framework="flask", worker_class="sync", workers=2)
    assert svc.proc is not None
    procs = tree(svc.pid)
    group = serve_cgroup_dir(svc.pid)
    master = next(p for p in procs if p.ppid() == svc.pid)
    master.kill()  # the workers are orphaned inside the group
    rc = svc.proc.wait(timeout=20)
    try:
        assert rc != 0
        assert not group.exists()
        psutil.wait_procs(procs, timeout=5)
        assert not any(p.is_running() for p in procs)
    finally:
        svc.stop()


def test_worker_warning_and_fallback_to_affinity(tmp_path: Path) -> None:
    # An empty cgroup root: no cgroup can be made, so serve pins the tree to one core.
    env = dict(os.environ, LOADLAB_CGROUP_ROOT=str(tmp_path))
    env.pop("LOADLAB_CGROUP", None)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two usable cores to see a pinning")
    svc = start(cpus=0.5, env=env, framework="fastapi", worker_class="uvicorn", workers=2)
    try:
        log = svc.log_tail(20)
        procs = tree(svc.pid)
        assert all(len(os.sched_getaffinity(p.pid)) == 1 for p in procs)
        assert len(os.sched_getaffinity(svc.pid)) > 1  # serve itself is not pinned
        assert "warning: no cgroup CPU quota can be set here" in log
        assert "warning: 2 workers on 1 pinned core(s)" in log
        assert "LOADLAB_CGROUP" not in procs[0].environ()
    finally:
        svc.stop()


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``loadlab serve ARGS`` as its own process, its environment tagged (see
    ``serve_refuses``)."""
    return subprocess.run([sys.executable, "-m", "loadlab", "serve", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def serve_refuses(*args: str, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """``loadlab serve ARGS`` in this process (``cli.main``), for input refused before
    anything starts: no interpreter's start per case (the process path of the same refusal:
    test_port_in_use_exits_2_before_starting). Whatever it did start would carry the tag and
    fail the check below."""
    _, tag = tagged_env()
    done = loadlab_here(["serve", *args], tag, env=env)
    assert_nothing_left(tag, grace_s=0)
    return done


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


BAD_OPTIONS = {
    "non-numeric cpus": ["fastapi", "--cpus", "two"],
    "negative cpus": ["fastapi", "--cpus", "-1"],
    "nan cpus": ["fastapi", "--cpus", "nan"],
    "tiny cpus": ["fastapi", "--cpus", "0.001"],
    "more cpus than cores": ["fastapi", "--cpus", str((os.cpu_count() or 1) + 1)],
    "threads without gthread": ["flask", "--threads", "4"],
    "class of the other framework": ["flask", "--worker-class", "uvicorn"],
    "unknown class": ["fastapi", "--worker-class", "sync"],
    "loop with gunicorn": ["fastapi", "--worker-class", "uvicorn-worker", "--loop", "uvloop"],
    "http with gunicorn": ["flask", "--http", "h11"],
    "unknown loop": ["fastapi", "--loop", "trio"],
    "zero workers": ["fastapi", "--workers", "0"],
    "bad port": ["fastapi", "--port", "65536"],
    "unknown option": ["fastapi", "--bogus"],
    "unknown framework": ["django"],
    "unresolvable host": ["fastapi", "--host", "no-such-host.invalid"],
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option_exits_2_with_one_line(case: str) -> None:
    done = serve_refuses(*BAD_OPTIONS[case])
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


BAD_RECYCLING = {
    "one uvicorn process": (["fastapi", "--workers", "1"], {"LOADLAB_MAX_REQUESTS": "100"}),
    "max requests not a number": (["flask"], {"LOADLAB_MAX_REQUESTS": "lots"}),
    "negative jitter": (["fastapi", "--workers", "2"],
                        {"LOADLAB_MAX_REQUESTS": "100", "LOADLAB_MAX_REQUESTS_JITTER": "-5"}),
}


@pytest.mark.parametrize("case", sorted(BAD_RECYCLING))
def test_bad_recycling_exits_2_with_one_line(case: str) -> None:
    args, env = BAD_RECYCLING[case]
    done = serve_refuses(*args, env=env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "LOADLAB_MAX_REQUESTS" in done.stderr and "Traceback" not in done.stderr


def test_port_in_use_exits_2_before_starting(busy_port: int) -> None:
    """The ``loadlab serve`` process itself: one line, exit 2, and no server started (any
    process it had started would carry the tag)."""
    environment, tag = tagged_env()
    done = run_serve("flask", "--port", str(busy_port), "--cpus", "0.5", env=environment)
    assert done.returncode == 2
    assert done.stderr.strip() == f"loadlab serve: error: 127.0.0.1:{busy_port} is already in use"
    assert done.stdout == ""
    assert_nothing_left(tag, grace_s=0)


# --- units: no processes ----------------------------------------------------------------


def test_config_rejects_non_finite_cpus() -> None:
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ServeError):
            ServerConfig(framework="fastapi", cpus=bad)


@pytest.mark.parametrize(("workers", "cpus", "inherited", "cores", "warns"), [
    (2, 0.5, 0.0, 2, True),     # more workers than ceil(cpus)
    (1, 0.5, 0.0, 2, False),
    (2, 1.5, 0.0, 2, False),    # ceil(1.5) = 2
    (4, 0.0, 1.0, 2, True),     # no --cpus, but a container quota of 1: the trap
    (4, 0.0, 0.0, 1, True),     # affinity narrower than cpu_count()
    (8, 0.0, 0.0, os.cpu_count() or 1, False),  # no limit at all: I/O-bound workers are fine
])
def test_worker_warning(workers: int, cpus: float, inherited: float, cores: int,
                        warns: bool) -> None:
    cfg = ServerConfig(framework="flask", workers=workers, cpus=cpus)
    found = worker_warnings(cfg, cpulimit.CpuLimit("cgroup-v1", cpus), inherited, cores)
    assert any("workers" in w for w in found) is warns
    assert all("\n" not in w for w in found)


def test_nested_limit_above_the_inherited_one_warns() -> None:
    cfg = ServerConfig(framework="flask", workers=1, cpus=1.5)
    found = worker_warnings(cfg, cpulimit.CpuLimit("cgroup-v1", 1.5), 1.0, 2)
    assert any("lower one applies" in w for w in found)


def test_v2_delegated_group_on_a_recorded_tree(tmp_path: Path) -> None:
    own = tmp_path / "user.slice" / "app.scope"
    own.mkdir(parents=True)
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.controllers").write_text("cpu memory\n")
    (own / "cgroup.subtree_control").write_text("cpu memory\n")
    limit = cpulimit.try_v2(0.25, tmp_path, "0::/user.slice/app.scope\n", name="loadlab-5")
    assert limit is not None and limit.mechanism == "cgroup-v2"
    assert (own / "loadlab-5" / "cpu.max").read_text() == "25000 100000"
    assert limit.env()["LOADLAB_CGROUP"] == "v2:/user.slice/app.scope/loadlab-5"
    limit.join()
    assert (own / "loadlab-5" / "cgroup.procs").read_text() == str(os.getpid())


def test_v2_without_cpu_controller_or_at_the_root_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    assert cpulimit.try_v2(0.5, tmp_path, "0::/a\n") is None
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert cpulimit.try_v2(0.5, tmp_path, "0::/\n") is None  # only with at_root


def test_v1_group_on_a_recorded_tree(tmp_path: Path) -> None:
    for controller, probe in (("cpu", "cpu.cfs_quota_us"), ("cpuacct", "cpuacct.usage"),
                              ("memory", "memory.usage_in_bytes")):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / probe).write_text("0\n")
    (tmp_path / "memory" / "session").mkdir()
    (tmp_path / "memory" / "session" / "memory.use_hierarchy").write_text("1\n")
    proc = "3:memory:/session\n2:cpuacct:/\n1:cpu:/\n"
    limit = cpulimit.try_v1(0.75, tmp_path, proc, name="loadlab-8")
    assert limit is not None
    assert (tmp_path / "cpu" / "loadlab-8" / "cpu.cfs_quota_us").read_text() == "75000"
    assert (tmp_path / "cpu" / "loadlab-8" / "cpu.cfs_period_us").read_text() == "100000"
    assert limit.ref == CgroupRef(1, {"cpu": "/loadlab-8", "cpuacct": "/loadlab-8",
                                      "memory": "/session/loadlab-8"})
    # A non-hierarchical memory parent is left alone: a child would escape its limit.
    (tmp_path / "memory" / "session" / "memory.use_hierarchy").write_text("0\n")
    again = cpulimit.try_v1(0.75, tmp_path, proc, name="loadlab-9")
    assert again is not None and again.ref is not None and "memory" not in again.ref.paths


def test_stale_groups_of_dead_serves_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (f"loadlab-{dead.pid}", f"loadlab-probe-{dead.pid}", f"loadlab-{os.getpid()}",
                 "other"):
        (tmp_path / name).mkdir()
    cpulimit.sweep_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"loadlab-{os.getpid()}", "other"])


def test_systemd_scope_re_executes_serve_in_place(tmp_path: Path) -> None:
    """No systemd here: a stand-in systemd-run records its options and runs the command,
    which checks serve's side of the hand-over (same pid, inner serve knows its scope)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    fake = bin_dir / "systemd-run"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n'
                    'while [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, LOADLAB_CGROUP_ROOT=str(tmp_path / "no-cgroups"),
               PATH=f"{bin_dir}:{os.environ['PATH']}")
    svc = start(cpus=0.5, env=env, framework="flask", worker_class="sync", workers=1)
    try:
        server = tree(svc.pid)[0]
        assert server.ppid() == svc.pid  # serve kept its pid through both execs
        assert server.environ()["LOADLAB_CPU_LIMIT"] == "systemd"
        assert cpulimit.SCOPE_ENV not in server.environ()
        recorded = calls.read_text()
        assert "CPUQuota=50%" in recorded and "--scope" in recorded
        assert f"--unit=loadlab-{svc.pid}" in recorded
        assert "-m loadlab serve flask" in recorded
    finally:
        svc.stop()


def test_server_ends_when_serve_is_killed() -> None:
    svc = start(framework="flask", worker_class="sync", workers=2)
    assert svc.proc is not None
    procs = tree(svc.pid)
    os.kill(svc.pid, signal.SIGKILL)  # no chance to clean up: the kernel tells the server
    svc.proc.wait(timeout=10)
    try:
        _, alive = psutil.wait_procs(procs, timeout=15)
        assert not alive
    finally:
        svc.stop()


def test_stale_metrics_dirs_of_dead_serves_are_swept(tmp_path: Path) -> None:
    import subprocess as sp

    from loadlab.serve import sweep_stale_metrics_dirs

    dead = sp.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"loadlab-metrics-{dead.pid}-abc"
    live = tmp_path / f"loadlab-metrics-{os.getpid()}-def"
    other = tmp_path / "loadlab-metrics-legacy"
    for path in (stale, live, other):
        path.mkdir()
    sweep_stale_metrics_dirs(tmp_path)
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_a_server_that_ignores_its_stop_is_killed_after_the_grace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """serve waits ``STOP_GRACE_S`` after a stop signal, then gives up on the server (its
    ``finally`` kills the tree and removes the cgroup) instead of waiting for whoever
    stopped it to SIGKILL serve itself, which would leave the cgroup behind."""
    from loadlab import serve as serve_module

    monkeypatch.setattr(serve_module, "STOP_GRACE_S", 0.5)
    stubborn = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        stubborn.send_signal(signal.SIGTERM)
        code = serve_module._wait_for_server(stubborn, [signal.SIGTERM], "stubborn")
        assert code == 128 + signal.SIGTERM and stubborn.poll() is None  # still running
    finally:
        stubborn.kill()
        stubborn.wait()
        stubborn.stdout.close()  # type: ignore[union-attr]
