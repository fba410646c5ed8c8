"""The throwaway PostgreSQL: real initdb and postmaster, real psycopg queries."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.system_tools import postgres_missing, require_cluster

from loadlab.metrics.multiprocess import is_alive
from loadlab.pgcluster import (
    FORTUNE_ROWS,
    WORLD_ROWS,
    Binaries,
    PostgresCluster,
    PostgresUnavailable,
    find_binaries,
    seed,
    sweep_stale_clusters,
)
from loadlab.pgcluster.cluster import (
    DIR_PREFIX,
    ClusterError,
    _cluster_uid,
    _postmaster_of,
    clusters_root,
    run_user,
    works_in,
)

pytestmark = pytest.mark.slow  # real PostgreSQL clusters started and stopped
psycopg = pytest.importorskip("psycopg")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    try:
        found = find_binaries()
    except PostgresUnavailable as exc:
        postgres_missing(str(exc))
    require_cluster()  # found, but can a cluster start from them here?
    return found


@pytest.fixture
def cluster(binaries: Binaries) -> Iterator[PostgresCluster]:
    with PostgresCluster(binaries=binaries, max_connections=42) as running:
        yield running


def _tree(pid: int) -> list[int]:
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


def _gone_within(pids: list[int], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not any(is_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _counts(url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(url) as conn:
        world, low, high = conn.execute(
            "SELECT count(*), min(randomnumber), max(randomnumber) FROM world").fetchone()
        (fortunes,) = conn.execute("SELECT count(*) FROM fortune").fetchone()
    return world, low, high, fortunes


def test_starts_seeded(cluster: PostgresCluster) -> None:
    world, low, high, fortunes = _counts(cluster.url)
    assert (world, fortunes) == (WORLD_ROWS, FORTUNE_ROWS) == (10_000, 12)
    assert 1 <= low <= high <= 10_000 and high - low > 9_000  # random, 1..10000
    with psycopg.connect(cluster.url) as conn:
        (message,) = conn.execute("SELECT message FROM fortune WHERE id = 12").fetchone()
    assert message == "フレームワークのベンチマーク"


def test_describe_reads_the_server(cluster: PostgresCluster, binaries: Binaries) -> None:
    info = cluster.describe()
    assert info["version"].startswith(binaries.version)
    assert info["version_num"] // 10_000 == binaries.major
    assert info["max_connections"] == 42  # read back with SHOW: the setting took
    assert info["shared_buffers"].endswith(("kB", "MB", "GB"))
    assert info["source"] == binaries.source and info["binaries"] == str(binaries.bindir)
    assert info["port"] == cluster.port and f"127.0.0.1:{cluster.port}/loadlab" in cluster.url
    assert info["pid"] == cluster.pid and info["settings"]["fsync"] == "off"


def test_postmaster_is_our_child_and_unprivileged(cluster: PostgresCluster) -> None:
    postmaster = psutil.Process(cluster.pid)
    assert cluster.directory is not None
    assert postmaster.ppid() == os.getpid()  # no pg_ctl or runuser in between
    assert works_in(postmaster, os.path.realpath(cluster.directory / "data"))
    # the sweep proves it ours too (as root in a container, without reading its cwd)
    assert _postmaster_of(cluster.directory / "data", _cluster_uid()) is not None
    if os.geteuid() == 0:
        assert postmaster.uids().effective != 0
        assert postmaster.username() in ("postgres", "nobody")


def test_stop_leaves_no_process_and_no_directory(binaries: Binaries) -> None:
    cluster = PostgresCluster(binaries=binaries).start()
    directory = cluster.directory
    assert directory is not None and directory.is_dir()
    tree = _tree(cluster.pid)
    assert len(tree) > 1  # the postmaster and its auxiliary processes
    cluster.stop()
    assert not any(is_alive(pid) for pid in tree)
    assert not directory.exists()
    cluster.stop()  # twice is harmless


def test_seed_is_idempotent(cluster: PostgresCluster) -> None:
    query = "SELECT sum(id::bigint * randomnumber) FROM world"
    with psycopg.connect(cluster.url) as conn:
        (before,) = conn.execute(query).fetchone()
    seed(cluster.url)
    with psycopg.connect(cluster.url) as conn:
        (after,) = conn.execute(query).fetchone()
    assert after == before
    assert _counts(cluster.url)[0::3] == (10_000, 12)


_OWNER = """
import json, sys
from loadlab.pgcluster import PostgresCluster
cluster = PostgresCluster(die_with_owner=sys.argv[1] == "tied", seed_data=False).start()
print(json.dumps({"pid": cluster.pid, "directory": str(cluster.directory)}), flush=True)
sys.stdin.read()
"""


def _start_owner(mode: str) -> tuple[subprocess.Popen[str], int, Path]:
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, mode], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "the owner process did not start a cluster"
    started = json.loads(line)
    return owner, int(started["pid"]), Path(started["directory"])


def _cleanup(owner: subprocess.Popen[str], pid: int, directory: Path) -> None:
    if owner.poll() is None:
        owner.kill()
        owner.wait()
    if is_alive(pid):
        os.kill(pid, signal.SIGQUIT)
    sweep_stale_clusters(directory.parent)


@pytest.mark.usefixtures("binaries")
def test_owner_killed_takes_the_cluster_along() -> None:
    owner, pid, directory = _start_owner("tied")
    try:
        tree = _tree(pid)
        owner.kill()  # SIGKILL: no Python cleanup runs in the owner
        owner.wait()
        assert _gone_within(tree, deadline_s=60), "postgres outlived its SIGKILLed owner"
        assert directory.exists()  # nobody removed it yet...
        assert directory in sweep_stale_clusters(directory.parent)  # ...the next start does
        assert not directory.exists()
    finally:
        _cleanup(owner, pid, directory)


@pytest.mark.usefixtures("binaries")
def test_sweep_stops_an_orphaned_cluster() -> None:
    owner, pid, directory = _start_owner("untied")
    try:
        owner.kill()
        owner.wait()
        assert is_alive(pid)  # without the death signal, it would run on
        tree = _tree(pid)
        assert directory in sweep_stale_clusters(directory.parent)
        assert _gone_within(tree, deadline_s=60) and not directory.exists()
    finally:
        _cleanup(owner, pid, directory)


def test_pgserver_wheel_runs_too() -> None:
    try:
        wheel = find_binaries("pgserver")
    except PostgresUnavailable:
        pytest.skip("the pgserver wheel is not installed (pip install 'loadlab[db]')")
    require_cluster("pgserver")
    with PostgresCluster(binaries=wheel) as cluster:
        info = cluster.describe()
        assert info["source"] == "pgserver" and info["version_num"] >= 160000
        assert _counts(cluster.url)[0::3] == (10_000, 12)


def test_pg_bin_overrides_and_is_checked(binaries: Binaries,
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BIN", str(binaries.bindir))
    chosen = find_binaries()
    assert (chosen.source, chosen.bindir) == ("PG_BIN", binaries.bindir)
    monkeypatch.setenv("PG_BIN", str(tmp_path))
    with pytest.raises(PostgresUnavailable, match="PG_BIN"):
        find_binaries()


def test_database_url_fixture(database_url: str) -> None:
    assert _counts(database_url)[0::3] == (10_000, 12)


def test_exporter_cpu_query_reads_the_cgroup(database_url: str) -> None:
    """The compose exporter's extra query (the database container's CPU), run here against
    a real server, which reads its own cgroup the same way."""
    import yaml

    spec = yaml.safe_load((ROOT / "postgres" / "exporter-queries.yml").read_text())
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(spec["loadlab_cpu"]["query"].encode())
        columns = [c.name for c in cursor.description or []]
        row = cursor.fetchone()
    names = [next(iter(m)) for m in spec["loadlab_cpu"]["metrics"]]
    assert columns == names == ["usage_seconds_total", "limit_cores"]
    usage, limit = row
    assert usage is not None and usage > 0
    assert limit is not None and limit >= 0


def _db(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadlab", "db", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.usefixtures("binaries")
def test_db_command_up_status_down(tmp_path: Path) -> None:
    env = {**os.environ, "LOADLAB_STATE_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    up = _db("up", "--max-connections", "30", env=env)
    try:
        assert up.returncode == 0, up.stderr
        (line,) = up.stdout.splitlines()
        assert line.startswith("DATABASE_URL=postgresql://")
        url = line.split("=", 1)[1]
        assert _counts(url)[0::3] == (10_000, 12)
        state = json.loads((tmp_path / "db.json").read_text())
        assert state["max_connections"] == 30 and state["url"] == url
        for private in ("db.json", "db.log"):  # both hold the password
            assert (tmp_path / private).stat().st_mode & 0o077 == 0, private
        again = _db("up", env=env)  # idempotent: the same database
        assert again.returncode == 0 and again.stdout.strip() == line
        status = _db("status", env=env)
        assert status.returncode == 0 and line in status.stdout
        tree = _tree(state["pid"])
        down = _db("down", env=env)
        assert down.returncode == 0, down.stderr
        assert _gone_within([*tree, state["keeper_pid"]], deadline_s=60)
        assert not Path(state["directory"]).exists() and not (tmp_path / "db.json").exists()
        assert _db("status", env=env).returncode == 1
    finally:
        _db("down", env=env)


@pytest.mark.parametrize("args", [[], ["start"], ["up", "--max-connections", "0"],
                                  ["down", "extra"]])
def test_db_command_bad_usage(args: list[str]) -> None:
    done = _db(*args, env=dict(os.environ))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def _refused(url: str) -> str:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(url, connect_timeout=10).close()
    return str(refused.value)


def test_a_password_is_needed_and_only_the_url_has_it(cluster: PostgresCluster) -> None:
    """No `trust`: without the cluster's own random password nobody connects."""
    assert cluster.directory is not None
    assert len(cluster.password) >= 24 and f"loadlab:{cluster.password}@" in cluster.url
    assert _counts(cluster.url)[3] == 12  # the URL the lab passes on works
    bare = f"postgresql://loadlab@127.0.0.1:{cluster.port}/loadlab"
    assert "password" in _refused(bare + "?connect_timeout=10")
    assert "password authentication failed" in _refused(
        f"postgresql://loadlab:{cluster.password}x@127.0.0.1:{cluster.port}/loadlab")
    assert os.stat(cluster.socket_dir).st_mode & 0o777 == 0o700
    assert os.stat(cluster.directory).st_mode & 0o077 == 0
    with psycopg.connect(cluster.url) as conn:
        rules = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
    assert {rule for (rule,) in rules} == {"scram-sha-256"}
    assert PostgresCluster(binaries=cluster.binaries).password != cluster.password


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None
                    or shutil.which("psql") is None,
                    reason="needs root, runuser and psql to act as a second local account")
def test_a_second_local_account_is_refused(cluster: PostgresCluster) -> None:
    """`nobody` (or `postgres` when the cluster runs as nobody) gets in neither over TCP
    without the password nor through the socket directory."""
    owner = run_user()
    other = "postgres" if owner is not None and owner.pw_name == "nobody" else "nobody"
    env = {"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "10", "LC_ALL": "C"}
    targets = [f"postgresql://loadlab@127.0.0.1:{cluster.port}/loadlab",
               f"host={cluster.socket_dir} port={cluster.port} user=loadlab dbname=loadlab"]
    for target in targets:
        done = subprocess.run(["runuser", "-u", other, "--", "psql", "-w", target, "-c",
                               "COPY (SELECT 1) TO PROGRAM 'true'"], env=env, cwd="/",
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0, (target, done.stdout)
        assert "password" in done.stderr or "Permission denied" in done.stderr, done.stderr


def test_clusters_live_in_a_private_directory_of_ours(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    root = clusters_root()
    assert root.parent == tmp_path and root.name == f"loadlab-pg.{os.getuid()}"
    info = os.lstat(root)
    assert info.st_uid == os.getuid() and info.st_mode & 0o777 in (0o700, 0o710)
    assert info.st_mode & 0o007 == 0
    root.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.symlink_to(elsewhere)  # planted by someone else before our first start
    with pytest.raises(ClusterError, match="set TMPDIR"):
        clusters_root()
    assert sweep_stale_clusters() == []


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    return gone.pid


def _victim(directory: Path, started: float | None = None) -> subprocess.Popen[str]:
    """A process that is none of ours, waiting in ``directory`` beside a postmaster.pid
    naming it (with its true start time unless ``started`` says otherwise)."""
    directory.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            cwd=directory, stdin=subprocess.PIPE, text=True)
    when = psutil.Process(proc.pid).create_time() if started is None else started
    (directory / "postmaster.pid").write_text(f"{proc.pid}\n{directory}\n{int(when)}\n")
    return proc


def test_the_sweep_follows_no_link_and_signals_no_stranger(tmp_path: Path) -> None:
    root = tmp_path / "clusters"
    root.mkdir(mode=0o700)
    outside = tmp_path / "outside"
    linked_data = _victim(outside / "a")        # reached through a planted data -> link
    linked_whole = _victim(outside / "b" / "data")  # through a planted cluster -> link
    stranger = _victim(root / f"{DIR_PREFIX}{_dead_pid()}-stranger" / "data",
                       started=time.time() - 3600)  # a pid file of a process since reused
    victims = (linked_data, linked_whole, stranger)
    try:
        planted = root / f"{DIR_PREFIX}{_dead_pid()}-planted"
        planted.mkdir()
        (planted / "data").symlink_to(outside / "a")
        (root / f"{DIR_PREFIX}{_dead_pid()}-whole").symlink_to(outside / "b")
        removed = sweep_stale_clusters(root)
        for victim in victims:
            assert victim.poll() is None, "the sweep signalled a process that is not ours"
        assert (outside / "a" / "postmaster.pid").exists()  # nothing deleted through a link
        assert (outside / "b" / "data" / "postmaster.pid").exists()
        assert planted in removed and not planted.exists()
        assert (root / f"{DIR_PREFIX}{_dead_pid()}-whole") not in removed
    finally:
        for victim in victims:
            victim.kill()
            victim.wait()


def test_the_wheel_runs_from_a_checkout_in_a_private_directory(tmp_path: Path) -> None:
    """As root the cluster runs as another account, which cannot enter a 0700 directory
    such as /root: a venv there (with the pgserver wheel) must still give a database."""
    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to another account")
    try:
        wheel = find_binaries("pgserver")
    except PostgresUnavailable:
        pytest.skip("the pgserver wheel is not installed (pip install 'loadlab[db]')")
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o700)
    site = home / "checkout" / ".venv" / "site-packages"

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    package = wheel.bindir.parent.parent  # pgserver/, and pgserver.libs/ beside it
    for part in (package, package.parent / f"{package.name}.libs"):
        if part.is_dir():
            shutil.copytree(part, site / part.name, symlinks=True, copy_function=link_or_copy)
    private = Binaries(site / package.name / "pginstall" / "bin", "pgserver", wheel.version)
    with PostgresCluster(binaries=private, seed_data=False) as cluster:
        assert cluster.describe()["version_num"] >= 160000
        assert cluster.runs is not None and cluster.runs.bindir != private.bindir
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
