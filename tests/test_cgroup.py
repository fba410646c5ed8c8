"""cgroup v1 and v2 reading from recorded file trees, and the service-cgroup rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadlab import cgroup
from loadlab.cgroup import CgroupRef

# In the kernels' formats (v1 as on the development machine): throttled v2 and v1 groups.
V2_CPU_STAT = """usage_usec 5234567
user_usec 4000000
system_usec 1234567
nr_periods 120
nr_throttled 37
throttled_usec 2500000
nr_bursts 0
burst_usec 0
"""
V1_CPU_STAT = """nr_periods 300
nr_throttled 45
throttled_time 1750000000
nr_bursts 0
burst_time 0
"""
MEMORY_STAT_V2 = "anon 40000000\nfile 12000000\ninactive_file 8000000\nactive_file 4000000\n"
MEMORY_STAT_V1 = "cache 12000000\nrss 40000000\ninactive_file 3000000\n" \
                 "total_inactive_file 8000000\n"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def v2_tree(root: Path, cpu_max: str, group: str = "loadlab-7") -> Path:
    return write_tree(root, {
        "cgroup.controllers": "cpuset cpu io memory pids\n",
        f"{group}/cpu.max": cpu_max,
        f"{group}/cpu.stat": V2_CPU_STAT,
        f"{group}/memory.current": "52000000\n",
        f"{group}/memory.stat": MEMORY_STAT_V2,
    })


def v1_tree(root: Path, quota: str, group: str = "loadlab-7",
            memory_group: str = "session/loadlab-7") -> Path:
    return write_tree(root, {
        f"cpu/{group}/cpu.cfs_quota_us": quota,
        f"cpu/{group}/cpu.cfs_period_us": "100000\n",
        f"cpu/{group}/cpu.stat": V1_CPU_STAT,
        "cpu/cpu.cfs_quota_us": "-1\n",
        f"cpuacct/{group}/cpuacct.usage": "9876543210\n",
        "cpuacct/cpuacct.usage": "1\n",
        f"memory/{memory_group}/memory.usage_in_bytes": "52000000\n",
        f"memory/{memory_group}/memory.stat": MEMORY_STAT_V1,
        "memory/memory.usage_in_bytes": "1\n",
    })


@pytest.mark.parametrize(("cpu_max", "limit"), [("50000 100000\n", 0.5), ("max 100000\n", 0.0),
                                                ("150000 100000\n", 1.5)])
def test_v2_stats_limited_and_unlimited(tmp_path: Path, cpu_max: str, limit: float) -> None:
    root = v2_tree(tmp_path, cpu_max)
    env = {"LOADLAB_CGROUP": "v2:/loadlab-7"}
    stats = cgroup.service_cpu_stats(root, env)
    assert stats == cgroup.CpuStats(usage_seconds=5.234567, limit_cores=limit, periods=120,
                                    throttled_periods=37, throttled_seconds=2.5)
    assert cgroup.service_memory_bytes(root, env) == 52000000 - 8000000


@pytest.mark.parametrize(("quota", "limit"), [("50000\n", 0.5), ("-1\n", 0.0), ("250000", 2.5)])
def test_v1_stats_limited_and_unlimited(tmp_path: Path, quota: str, limit: float) -> None:
    root = v1_tree(tmp_path, quota)
    ref = CgroupRef(1, {"cpu": "/loadlab-7", "cpuacct": "/loadlab-7",
                        "memory": "/session/loadlab-7"})
    env = {"LOADLAB_CGROUP": ref.to_env()}
    stats = cgroup.service_cpu_stats(root, env)
    assert stats is not None
    assert stats.limit_cores == pytest.approx(limit)
    assert stats.usage_seconds == pytest.approx(9.87654321)
    assert (stats.periods, stats.throttled_periods) == (300, 45)
    assert stats.throttled_seconds == pytest.approx(1.75)
    # Hierarchical total_inactive_file wins over the group's own inactive_file.
    assert cgroup.service_memory_bytes(root, env) == 52000000 - 8000000


def test_v1_co_mounted_cpu_cpuacct_found_from_proc_cgroup(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1",
        "cpu,cpuacct/cpuacct.usage": "1",
        "cpu,cpuacct/loadlab-9/cpu.cfs_quota_us": "25000",
        "cpu,cpuacct/loadlab-9/cpu.cfs_period_us": "100000",
        "cpu,cpuacct/loadlab-9/cpu.stat": V1_CPU_STAT,
        "cpu,cpuacct/loadlab-9/cpuacct.usage": "2000000000",
    })
    proc = "4:memory:/\n3:cpu,cpuacct:/loadlab-9\n0::/\n"
    assert cgroup.own_cpu_limit(root, proc) == pytest.approx(0.25)
    stats = cgroup.own_cpu_stats(root, proc)
    assert stats is not None and stats.usage_seconds == pytest.approx(2.0)


def test_own_stats_in_a_namespace_fall_back_to_the_mount(tmp_path: Path) -> None:
    # A v2 container: /proc/self/cgroup names the host path, the mount is the group itself.
    root = write_tree(tmp_path, {"cgroup.controllers": "cpu memory\n",
                                 "cpu.max": "100000 100000\n", "cpu.stat": V2_CPU_STAT})
    assert cgroup.own_cpu_limit(root, "0::/system.slice/docker-abc.scope\n") == 1.0


def test_env_ref_round_trip_and_rejects() -> None:
    ref = CgroupRef(1, {"cpu": "/loadlab-1", "cpuacct": "/loadlab-1", "memory": "/a/loadlab-1"})
    assert CgroupRef.from_env(ref.to_env()) == ref
    assert CgroupRef.from_env("v2:/x/y") == CgroupRef(2, {"": "/x/y"})
    for bad in ("", "v3:/x", "v2:", "v1:memory=/a", "nonsense"):
        assert CgroupRef.from_env(bad) is None


def test_a_vanished_serve_cgroup_reads_none_not_the_mount(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, "max 100000\n")
    env = {"LOADLAB_CGROUP": "v2:/loadlab-gone"}
    assert cgroup.service_cpu_stats(root, env) is None
    assert cgroup.service_memory_bytes(root, env) is None


def test_service_cgroup_rule(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, "max 100000\n")
    proc = "0::/loadlab-7\n"
    # serve's cgroup wins; a container flag means the own cgroup; otherwise None.
    assert cgroup.service_cgroup(root, {"LOADLAB_CGROUP": "v2:/x"}, proc) == CgroupRef(
        2, {"": "/x"})
    assert cgroup.service_cgroup(root, {"LOADLAB_IN_CONTAINER": "1"}, proc) == CgroupRef(
        2, {"": "/loadlab-7"})
    assert cgroup.service_cgroup(root, {"LOADLAB_IN_CONTAINER": "0"}, proc) is None
    stats = cgroup.service_cpu_stats(root, {"LOADLAB_IN_CONTAINER": "1"}, proc)
    assert stats is not None and stats.throttled_periods == 37


def test_marker_file_counts_only_when_the_cgroup_holds_just_the_service(tmp_path: Path) -> None:
    marker = write_tree(tmp_path, {".dockerenv": ""}) / ".dockerenv"
    root = write_tree(tmp_path / "cg", {"cgroup.controllers": "cpu\n", "cpu.stat": V2_CPU_STAT})
    procs = root / "cgroup.procs"
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    service, other = subprocess.Popen(sleep), subprocess.Popen(sleep)
    try:
        env = {"LOADLAB_ROOT_PID": str(service.pid)}
        # The service and its ancestors (a container's init) only: the service's own group.
        procs.write_text(f"{os.getpid()}\n{service.pid}\n")
        assert cgroup.in_container(env, root, (marker,), "0::/\n")
        # Anything else in the group (a shared development container): not the service's.
        procs.write_text(f"{os.getpid()}\n{service.pid}\n{other.pid}\n")
        assert not cgroup.in_container(env, root, (marker,), "0::/\n")
        assert cgroup.service_cgroup(root, env, "0::/\n") is None
        # No marker and no flag: not a container.
        procs.write_text(f"{service.pid}\n")
        assert not cgroup.in_container(env, root, (tmp_path / "absent",), "0::/\n")
    finally:
        for p in (service, other):
            p.kill()
            p.wait()


def test_holds_only_tree_rejects_a_stranger(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                start_new_session=True)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs = tmp_path / "cgroup.procs"
        procs.write_text(f"{helper.pid}\n")
        assert cgroup.holds_only_tree(procs, os.getpid())
        # A process started by someone else (here: a sibling's tree) does not belong.
        assert not cgroup.holds_only_tree(procs, stranger.pid)
    finally:
        for p in (stranger, helper):
            p.kill()
            p.wait()


@pytest.mark.parametrize("layout,files,manifest,doctor_says", [
    ("v1", {"cpu/cpu.cfs_quota_us": "-1"}, "v1", "v1"),
    ("co-mounted v1", {"cpu,cpuacct/cpu.cfs_quota_us": "-1"}, "v1", "v1"),
    ("v2", {"cgroup.controllers": "cpuset cpu io memory", "cgroup.procs": ""}, "v2", "v2"),
    ("v2 without cpu", {"cgroup.controllers": "memory", "cgroup.procs": ""}, "none",
     "v2 (no cpu controller)"),
    ("hybrid", {"cpu/cpu.cfs_quota_us": "-1", "unified/cgroup.controllers": "",
                "unified/cgroup.procs": ""}, "v1", "hybrid (cpu on v1)"),
    ("none", {}, "none", "none"),
])
def test_one_cgroup_version_for_the_manifest_and_doctor(
        tmp_path: Path, layout: str, files: dict[str, str], manifest: str,
        doctor_says: str) -> None:
    from loadlab import doctor

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup.cpu_cgroup_version(tmp_path) == manifest, layout
    assert doctor.cgroup_version(tmp_path) == doctor_says, layout
