"""Every Target the Locust form offers runs or is refused with its reason; the exporter
labels each request with its target, shows what runs, forgets departed workers and takes
only bounded reports from port 5557; other web sites cannot drive or read the UI."""

from __future__ import annotations

import argparse
import base64
import json
import struct
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from support.locust_process import (
    ROOT,
    Locust,
    free_port,
    get,
    metrics,
    settled_metrics,
    stop_and_collect,
    wait_for,
)
from support.services import start_service

from loadlab.launch import ServiceProcess

sys.path.insert(0, str(ROOT / "locust"))
import _exporter
import _options
import _webguard
from _latency import Latency


def options(**values: Any) -> argparse.Namespace:
    """The locustfile's defaults, as Locust parses them, with ``values`` on top."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="")

    def add(*args: Any, include_in_web_ui: bool = True, **kw: Any) -> None:
        parser.add_argument(*args, **kw)

    _options.add_arguments(SimpleNamespace(add_argument=add, error=None))
    parsed = parser.parse_args([])
    vars(parsed).update(values)
    return parsed


# --- the form --------------------------------------------------------------------------

def test_form_values_that_cannot_run_are_refused_with_their_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for env in _options.TARGET_ENV.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("LOADLAB_FASTAPI_URL", "http://127.0.0.1:8001")
    base = options(host="http://127.0.0.1:8001")
    form = {"user_count": "4", "spawn_rate": "4", "host": "http://127.0.0.1:8001"}
    assert _options.form_problems(base, {**form, "target": "fastapi"}) == []
    assert _options.form_problems(base, form) == []
    cases = {
        "io_ms": ("abc", "io-ms 'abc': not a whole number"),
        "arrival_rate": ("fast", "arrival-rate 'fast': not a number"),
        "cpu_work": ("99999999", "--cpu-work 99999999: must be between"),
        "target": ("flask", "set LOADLAB_FLASK_URL"),
        "host": ("", "Host is empty"),
    }
    for key, (value, reason) in cases.items():
        problems = _options.form_problems(base, {**form, key: value})
        assert len(problems) == 1 and reason in problems[0], (key, problems)
    both = _options.form_problems(base, {**form, "target": "both", "user_count": "1"})
    assert any("LOADLAB_FLASK_URL" in p for p in both)
    assert any("at least 2 users" in p for p in both)
    assert "not an http" in _options.form_problems(base, {**form, "host": "ftp://x"})[0]
    # The check works on a copy: Locust changes its options only for a form it accepts.
    assert base.io_ms == 50 and base.target == "host"


def test_workers_learn_the_masters_urls_and_their_own_win(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for env in _options.TARGET_ENV.values():
        monkeypatch.delenv(env, raising=False)
    shipped = options(target="both", loadlab_target_urls={
        "fastapi": "http://fastapi:8000", "flask": "http://flask:8000", "evil": "http://x"})
    assert _options.target_problems(shipped) == []
    assert _options.known_urls(shipped) == {"fastapi": "http://fastapi:8000",
                                            "flask": "http://flask:8000"}
    monkeypatch.setenv("LOADLAB_FLASK_URL", "http://10.0.0.5:8002")
    assert _options.known_urls(shipped)["flask"] == "http://10.0.0.5:8002"
    assert _options.services("both") == ("fastapi", "flask")
    assert _options.target_url(shipped) is None  # "both" has no single URL


@pytest.mark.requires("compose")
def test_compose_gives_master_and_workers_every_target_url() -> None:
    config = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"),
                             "--profile", "variants", "config"], capture_output=True,
                            text=True, check=False, cwd=ROOT)
    if config.returncode != 0:
        pytest.skip(f"docker compose config: {config.stderr.strip()[:200]}")
    services = yaml.safe_load(config.stdout)["services"]
    for role in ("locust-master", "locust-worker"):
        env = services[role]["environment"]
        for service, name in _options.TARGET_ENV.items():
            assert service in services, service  # every choice is a compose service
            assert env.get(name) == f"http://{service}:8000", (role, name)


# --- the exporter ----------------------------------------------------------------------

def _row(name: str, target: str = "fastapi", seconds: float = 0.002) -> list[Any]:
    lat = Latency()
    lat.add(seconds * 1000)
    return [name, "GET", target, lat.dump()]


class FakeRunner:
    """What the collector reads from a master runner: its workers, users and options."""

    def __init__(self, *workers: str) -> None:
        self.clients = {w: SimpleNamespace(id=w, state="running", user_count=1)
                        for w in workers}
        self.user_count = len(workers)
        self.state = "running"
        self.environment = SimpleNamespace(parsed_options=options(target="both",
                                                                  scenario="io"))


def test_a_rogue_workers_report_is_bounded() -> None:
    table = _exporter.Table()
    table.merge([_row(f"/n{i}") for i in range(_exporter.MAX_SERIES + 500)])
    assert len(table.series) == _exporter.MAX_SERIES
    assert table.refused == 500
    # Rows the lab's workers never send add nothing.
    bomb = base64.b64encode(struct.pack(">II", 0x1C849304, 0) + zlib.compress(b"\0" * 50_000_000))
    huge_range = _row("/x")
    huge_range[3] = {**huge_range[3], "hdr": bomb.decode()}
    rogue = [["/x", "GET", "not-a-service", _row("/x")[3]], ["/" * 5000, "GET", "host", {}],
             "garbage", ["/x", "GET", "host", {"hdr": "%%%", "sum_ms": 1, "failures": 0}],
             ["/x", "GET", "host", {"hdr": "", "sum_ms": "1e9", "failures": 0}], huge_range]
    before = dict(table.series)
    assert table.merge(rogue) == (0, 0)
    assert table.series == before
    assert table.merge("not a list") == (0, 0)
    # An existing series still takes more.
    assert table.merge([_row("/n0")]) == (1, 0)


def test_reports_count_only_from_listed_workers_and_departed_ones_leave() -> None:
    state = _exporter.SwarmState(runner=FakeRunner("w1", "w2"))
    now = [100.0]
    state.clock = lambda: now[0]
    assert state.worker("rogue") is None
    for w in ("w1", "w2"):
        counts = state.worker(w)
        assert counts is not None
        counts.requests, counts.cpu_percent = 7, 42.0
        state.note_peak(w, 42.0)

    def shown() -> dict[str, float]:
        text = _exporter.render(_exporter.registry_for(state)).decode()
        return {dict(lb)["worker"]: v for (n, lb), v in metrics(text).items()
                if n == "locust_worker_requests_total"}

    assert shown() == {"w1": 7, "w2": 7}
    # After a stop Locust delists each worker until it says it is ready again: a scrape
    # then keeps its counts, and it comes back with them.
    w1 = state.runner.clients.pop("w1")
    assert shown() == {"w1": 7, "w2": 7}
    now[0] += state.rejoin_grace_s() - 1
    assert shown() == {"w1": 7, "w2": 7}
    state.runner.clients["w1"] = w1
    assert state.worker("w1") is not None and shown() == {"w1": 7, "w2": 7}
    # Away longer than a rejoin takes (it quit, or Locust dropped it): it leaves.
    del state.runner.clients["w1"]
    assert shown() == {"w1": 7, "w2": 7}
    now[0] += state.rejoin_grace_s() + 1
    assert shown() == {"w2": 7}
    assert set(state.workers) == {"w2"} and set(state.peaks) == {"w1", "w2"}
    assert state.worker("w1") is None


def test_the_rejoin_grace_follows_the_stop_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = FakeRunner("w1")
    state = _exporter.SwarmState(runner=runner)
    monkeypatch.delenv("LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP", raising=False)
    assert state.rejoin_grace_s() == _exporter.REJOIN_GRACE_S  # no stop timeout set
    runner.environment.stop_timeout = 20
    monkeypatch.setenv("LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP", "5")
    assert state.rejoin_grace_s() == 25 + _exporter.REJOIN_GRACE_S
    monkeypatch.setenv("LOCUST_WORKER_ADDITIONAL_WAIT_BEFORE_READY_AFTER_STOP", "soon")
    assert state.rejoin_grace_s() == 20 + _exporter.REJOIN_GRACE_S


def test_requests_are_labelled_by_target_and_the_run_is_shown() -> None:
    state = _exporter.SwarmState(runner=FakeRunner("w1", "w2"))
    state.table.add("/io", "GET", "fastapi", 0.05, False)
    state.table.add("/io", "GET", "flask", 0.06, True)
    samples = metrics(_exporter.render(_exporter.registry_for(state)).decode())
    for target, failed in (("fastapi", 0), ("flask", 1)):
        labels = (("method", "GET"), ("name", "/io"), ("target", target))
        assert samples[("locust_requests_total", labels)] == 1
        assert samples[("locust_failures_total", labels)] == failed
    assert samples[("locust_run_info", (("scenario", "io"), ("target", "both")))] == 2
    state.runner.state = "stopped"
    samples = metrics(_exporter.render(_exporter.registry_for(state)).decode())
    assert not [k for k in samples if k[0] == "locust_run_info"]


# --- the guard -------------------------------------------------------------------------

def test_guard_decisions() -> None:
    names = frozenset({"localhost", "labhost.example.lan"})
    own = "127.0.0.1:8089"
    ok = {"Origin": "http://127.0.0.1:8089", "Sec-Fetch-Site": "same-origin"}
    assert _webguard.refusal("POST", own, ok, names) is None
    assert _webguard.refusal("POST", own, {}, names) is None  # curl: no Origin at all
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://127.0.0.1:9999"}):
        assert _webguard.refusal("POST", own, headers, names), headers
    assert _webguard.refusal("GET", own, {"Origin": "https://evil.example"}, names)
    assert _webguard.refusal("GET", own, {"Sec-Fetch-Site": "cross-site",
                                          "Sec-Fetch-Mode": "no-cors"}, names)
    assert _webguard.refusal("GET", own, {"Sec-Fetch-Site": "cross-site",
                                          "Sec-Fetch-Mode": "navigate"}, names) is None
    for host in ("127.0.0.1:8089", "[::1]:8089", "localhost:8089", "locust-master:8089",
                 "labhost.example.lan", "app.localhost", "192.168.1.20:8089"):
        assert _webguard.host_allowed(host, names), host
    for host in ("evil.example:8089", "rebind.attacker.com", ""):
        assert not _webguard.host_allowed(host, names), host
    assert _webguard.host_allowed("evil.example", frozenset({"*"}))


# --- real Locust -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, ServiceProcess]]:
    procs = {"fastapi": start_service(framework="fastapi", worker_class="uvicorn", workers=1),
             "flask": start_service(framework="flask", worker_class="gthread", workers=1,
                                    threads=8)}
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def served(proc: ServiceProcess) -> float:
    """Requests a service has counted (its own /metrics)."""
    return sum(v for (n, _), v in metrics(get(f"{proc.url}/metrics")).items()
               if n == "http_requests_total")


def post(url: str, data: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow  # real Locust master and workers
def test_both_loads_both_services_from_workers_that_only_the_master_told(
        services: dict[str, ServiceProcess]) -> None:
    port, master_port = free_port(), free_port()
    web = f"http://127.0.0.1:{port}"
    urls = {"LOADLAB_FASTAPI_URL": services["fastapi"].url,
            "LOADLAB_FLASK_URL": services["flask"].url}
    master = Locust(["--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
                     "--master-bind-port", str(master_port), "--target", "both",
                     "--scenario", "io", "--io-ms", "20", "-u", "4", "-r", "20", "-t", "4s",
                     "--autostart", "--autoquit", "120", "--web-host", "127.0.0.1",
                     "--web-port", str(port)], env=urls)
    master.args += ["--json-file", str(master.json_prefix)]
    master.start()
    # The workers have no URL of their own: they use what the master's spawn message says.
    workers = [Locust(["--worker", "--master-host", "127.0.0.1", "--master-port",
                       str(master_port)]).start() for _ in range(2)]
    try:
        wait_for(lambda: get(f"{web}/metrics"), 30, "the web UI")
        def run_info() -> list[float]:
            return [v for (n, lb), v in metrics(get(f"{web}/metrics")).items()
                    if n == "locust_run_info"]

        # The gauge follows the spawning (2 users, then 4): wait for the whole swarm.
        wait_for(lambda: run_info() == [4.0], 30, "locust_run_info at 4 users")
        text = settled_metrics(web)
    finally:
        run = stop_and_collect(master, *workers)
    by_target: dict[str, float] = {}
    for (n, lb), v in metrics(text).items():
        if n == "locust_requests_total":
            by_target[dict(lb)["target"]] = by_target.get(dict(lb)["target"], 0) + v
    assert set(by_target) == {"fastapi", "flask"} and all(by_target.values()), by_target
    assert sum(by_target.values()) == run.requests
    assert served(services["fastapi"]) > 0 and served(services["flask"]) > 0
    assert "Traceback" not in run.output


def swarm_state(web: str, headers: dict[str, str]) -> str:
    req = urllib.request.Request(f"{web}/stats/requests", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as reply:
        assert "Access-Control-Allow-Origin" not in reply.headers
        return str(json.loads(reply.read())["state"])


@pytest.mark.parametrize("password", ["", "pw123"], ids=["open", "password"])
def test_cross_site_requests_refused_and_start_nothing(
        fastapi: ServiceProcess, password: str) -> None:
    canary = fastapi  # one service (conftest's), not the two that test_both_... loads
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    env = {"LOCUST_WEB_PASSWORD": password} if password else {}
    lo = Locust(["--web-host", "127.0.0.1", "--web-port", str(port),
                 "--host", "http://127.0.0.1:9"],
                locustfile=f"{ROOT / 'locust' / 'locustfile.py'},"
                           f"{ROOT / 'locust' / 'webauth.py'}", env=env)
    lo.start()
    # With a password, the browser would add its cached login: the refusal must not
    # depend on the login being absent.
    auth = ({"Authorization": "Basic " + base64.b64encode(b"loadlab:pw123").decode()}
            if password else {})
    try:
        wait_for(lambda: swarm_state(web, auth), 30, "the web UI")
        before = served(canary)
        form = {"user_count": "2", "spawn_rate": "2", "host": canary.url}
        status, body = post(f"{web}/swarm", form, {**auth, "Origin": "https://evil.example"})
        assert status == 403 and "cross-site" in body, (status, body)
        status, _ = post(f"{web}/swarm", form, {**auth, "Host": "rebind.example:80"})
        assert status == 403
        req = urllib.request.Request(f"{web}/stats/requests",
                                     headers={**auth, "Origin": "https://evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 403
        assert not [h for h in refused.value.headers if h.lower().startswith("access-")]
        assert swarm_state(web, auth) == "ready"  # nothing started
        assert served(canary) == before
        # The UI itself (its own Origin) still starts a swarm.
        status, body = post(f"{web}/swarm", form, {**auth, "Origin": web})
        assert status == 200 and json.loads(body)["success"], body
        wait_for(lambda: served(canary) > before, 30, "the swarm to reach the canary")
    finally:
        lo.terminate()
        run = lo.finish(timeout_s=60)
    assert "Traceback" not in run.output
