"""``loadlab run --runtime swarm``: variants as services of the deployed stack.

Starting a variant updates the stack's service (``docker service update --force`` with the
CPU limit and the server's arguments) and waits until its new task runs healthy. The load
comes from the stack's own Locust master and workers, driven over the master's HTTP API
(the same form the web UI sends); the runner fetches every figure over HTTP while the run
is on and writes it on this machine, so nothing depends on a container surviving.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadlab.jsontypes import JsonObject
from loadlab.runner.loadgen import LoadFigures, log_tail
from loadlab.runner.options import OptionError, RunSpec
from loadlab.runner.prometheus_watch import PrometheusWatch
from loadlab.runner.runtime_base import Endpoint, Placement, Runtime, RuntimeError_
from loadlab.runs.record import Manifest, Run, SwarmNode, SwarmTask
from loadlab.serve import ServerConfig
from loadlab.stack import Node, Stack, StackError, last_line, nodes

CONTAINER_PORT, MASTER_WEB_PORT, PROMETHEUS_PORT = 8000, 8089, 9090
UPDATE_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
REPORT_SETTLE_S = 4.0  # longer than Locust's worker report interval (3 s)


class SwarmUnavailable(OptionError):
    """What is missing to drive the stack; one line for the user."""


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError_(f"docker {args[0]} {args[1]} took over {timeout:.0f} s") from None


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (what compose read when the stack was rendered)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                found[key.strip()] = value.strip().strip("'\"")
    return found


def server_args(cfg: ServerConfig) -> list[str]:
    """The container's command for this variant: the compose file's, other values."""
    return ["serve", cfg.framework, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT),
            "--workers", str(cfg.workers), "--worker-class", cfg.worker_class,
            "--threads", str(cfg.threads), "--backpressure", str(cfg.backpressure)]


def node_cpus(stack: Stack, image: str, timeout_s: float = 90) -> dict[str, SwarmNode]:
    """{node hostname: {cpu_model, cores}} from a one-off task on every node (a global job).

    Docker reports a node's core count but not its CPU model; the job reads /proc/cpuinfo
    there. Labelled with the stack, so `docker stack rm` removes it if this is cut short.
    """
    name = f"{stack.name}_cpuinfo"
    script = ('echo "cpuinfo|$NODE|$(nproc)|$(grep -m1 "model name" /proc/cpuinfo '
              '| cut -d: -f2)"')
    created = _docker("service", "create", "--detach", "--name", name, "--mode",
                      "global-job", "--label", f"com.docker.stack.namespace={stack.name}",
                      "--env", "NODE={{.Node.Hostname}}", "--entrypoint", "bash", image,
                      "-c", script)
    if created.returncode != 0:
        return {}
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = _docker("service", "ps", "--format", "{{.CurrentState}}", name).stdout
            if states.strip() and all(line.startswith(("Complete", "Failed", "Rejected"))
                                      for line in states.splitlines()):
                break
            time.sleep(1)
        logs = _docker("service", "logs", "--raw", name).stdout
    finally:
        _docker("service", "rm", name)
    found: dict[str, SwarmNode] = {}
    for line in logs.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] == "cpuinfo":
            found[parts[1]] = {"cores": int(parts[2]) if parts[2].isdigit() else None,
                               "cpu_model": parts[3].strip()}
    return found


@dataclass
class SwarmRuntime(Runtime):
    """Variants of fastapi/flask as the deployed stack's services (see module doc)."""

    name: str = "swarm"
    stack: Stack = field(default_factory=lambda: Stack(
        name=os.environ.get("LOADLAB_STACK", "loadlab")))
    _service: str | None = field(default=None, init=False)
    _task: str | None = field(default=None, init=False)
    _last_log: str = field(default="(no log)", init=False)
    _watch: PrometheusWatch | None = field(default=None, init=False)
    _nodes: dict[str, Node] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        try:
            self.stack.require_deployed("locust-master", "locust-worker")
            self._nodes = {node.id: node for node in nodes()}
        except StackError as exc:
            raise SwarmUnavailable(str(exc)) from None

    # --- where things are ----------------------------------------------------------------
    def full(self, service: str) -> str:
        return f"{self.stack.name}_{service}"

    def published(self, service: str, target: int) -> str:
        """http://NODE:PORT of the service's host-mode port on the node of its task."""
        ports = _docker("service", "inspect", "--format", "{{json .Endpoint.Ports}}",
                        self.full(service))
        port = next((p["PublishedPort"] for p in json.loads(ports.stdout or "null") or []
                     if p.get("TargetPort") == target), None)
        if ports.returncode != 0 or port is None:
            raise RuntimeError_(f"{service} publishes no port {target}: "
                                f"{last_line(ports.stderr)}")
        tasks = [t for t in self.stack.tasks(service) if t["state"] == "running"]
        node = self._nodes.get(tasks[0]["node_id"]) if tasks else None
        host = node.addr if node is not None and node.addr not in ("", "0.0.0.0") \
            else "127.0.0.1"
        return f"http://{host}:{port}"

    def auth(self) -> tuple[str, str]:
        """The master's web credentials: the environment, else the .env the stack read."""
        env = {**dotenv(self.stack.root / ".env"), **os.environ}
        password = env.get("LOCUST_WEB_PASSWORD", "")
        if not password:
            raise SwarmUnavailable("--runtime swarm talks to the stack's Locust master, which "
                                   "needs LOCUST_WEB_PASSWORD: set it as when deploying")
        return env.get("LOCUST_WEB_USERNAME", "loadlab") or "loadlab", password

    def placement(self, cfg: ServerConfig) -> Placement:
        return Placement((), ())  # cores belong to the nodes; the manifest lists them

    def tasks_by_service(self) -> dict[str, list[SwarmTask]]:
        placed: dict[str, list[SwarmTask]] = {}
        for service in sorted(self.stack.services()):
            placed[service] = [
                {"node": self._nodes[t["node_id"]].hostname if t["node_id"] in self._nodes
                 else t["node_id"], "state": t["state"], "slot": t["slot"]}
                for t in self.stack.tasks(service)]
        return placed

    def manifest_notes(self) -> Manifest:
        master_image = _docker("service", "inspect", "--format",
                               "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                               self.full("locust-master")).stdout.strip().split("@")[0]
        cpus = node_cpus(self.stack, master_image) if master_image else {}
        listed = []
        for node in self._nodes.values():
            entry = node.as_dict()
            entry.update(cpus.get(node.hostname, {"cpu_model": None}))
            entry["cores"] = entry.get("cores") or node.cpus
            listed.append(entry)
        tasks = self.tasks_by_service()
        where = "; ".join(f"{service} on {', '.join(sorted({t['node'] for t in ts})) or '-'}"
                          for service, ts in tasks.items())
        return {"stack": self.stack.name, "nodes": listed, "tasks": tasks,
                "placement": f"swarm tasks: {where}"}

    # --- the variant ---------------------------------------------------------------------
    def start(self, cfg: ServerConfig, env: Mapping[str, str] | None = None) -> Endpoint:
        """``env`` is not passed on: the stack's services read their own (its .env)."""
        service = cfg.framework
        try:
            self.stack.require_deployed(service)
        except StackError as exc:
            raise RuntimeError_(str(exc)) from None
        self._service = service
        update = _docker("service", "update", "--detach", "--force", "--update-monitor", "2s",
                         "--limit-cpu", f"{cfg.cpus:g}", "--args",
                         shlex.join(server_args(cfg)), self.full(service))
        if update.returncode != 0:
            raise RuntimeError_(f"docker service update {service} failed: "
                                f"{last_line(update.stderr)}")
        self._wait_updated(service)
        tasks = [t for t in self.stack.tasks(service) if t["state"] == "running"]
        self._task = tasks[0]["id"] if tasks else None
        base = self.published(service, CONTAINER_PORT)
        try:
            self._watch = PrometheusWatch(self.published("prometheus", PROMETHEUS_PORT)).start()
        except RuntimeError_ as exc:
            self._watch = PrometheusWatch(None, why_missing=str(exc)).start()
        return Endpoint(base, f"{base}/metrics", pid=None)

    def _wait_updated(self, service: str) -> None:
        deadline = time.monotonic() + UPDATE_TIMEOUT_S
        while True:
            raw = _docker("service", "inspect", "--format", "{{json .UpdateStatus}}",
                          self.full(service)).stdout.strip()
            status = json.loads(raw) if raw.startswith("{") else {}
            state = status.get("State", "")
            if state in ("paused", "rollback_started", "rollback_completed", "rollback_paused"):
                raise RuntimeError_(f"{service} did not become healthy ({state}: "
                                    f"{status.get('Message', '')}); its log: {self.log_tail()}")
            if state == "completed" and self.stack.converged()[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError_(f"{service} was not healthy within {UPDATE_TIMEOUT_S:.0f} s"
                                    f" ({state or 'no update status'}); its log: "
                                    f"{self.log_tail()}")
            time.sleep(1)

    def alive(self) -> bool:
        """The task started for this run still runs (a restarted one is a dead service)."""
        if self._service is None:
            return False
        running = {t["id"] for t in self.stack.tasks(self._service) if t["state"] == "running"}
        return self._task in running

    def log_tail(self, lines: int = 5) -> str:
        if self._service is not None:
            logs = _docker("service", "logs", "--raw", "--tail", str(lines),
                           self.full(self._service))
            text = " | ".join(line.strip() for line in (logs.stdout + logs.stderr).splitlines()
                              if line.strip())
            self._last_log = text or "(no log)"
        return self._last_log

    def run_notes(self) -> Run:
        notes: Run = {}
        if self._watch is not None and self._service is not None:
            notes.update(self._watch.record(self._service))
        tasks = self.tasks_by_service()
        notes["swarm"] = {"tasks": {name: tasks.get(name, []) for name in
                                    (self._service or "", "locust-master", "locust-worker")
                                    if name},
                          "workers": len(tasks.get("locust-worker", []))}
        return notes

    def stop(self) -> None:
        """Leaves the service at the run's settings (`loadlab stack deploy` restores the
        deployed ones); only the watch stops."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
        if self._service is not None:
            self.log_tail()
        self._service = self._task = None

    def load_generator(self, spec: RunSpec, out_prefix: Path, endpoint: Endpoint,
                       placement: Placement, wait_ready_s: float = 0.0) -> MasterSwarm:
        """The stack's own Locust, aimed at the service by its name on the stack's network."""
        user, password = self.auth()
        return MasterSwarm(spec, f"http://{spec.target}:{CONTAINER_PORT}", out_prefix,
                           self.published("locust-master", MASTER_WEB_PORT), (user, password))


class MasterSwarm:
    """A swarm of the stack's Locust master (a ``loadgen.LoadGenerator``): started, polled
    until its time is up, stopped, its statistics fetched and written here."""

    pid = None  # the load runs in the swarm: no local process

    def __init__(self, spec: RunSpec, host: str, out_prefix: Path, master_url: str,
                 auth: tuple[str, str]) -> None:
        self.spec = spec
        self.host = host
        self.json_prefix = out_prefix.resolve()
        self.log_path = self.json_prefix.with_suffix(".locust.log")
        self.peak_cpu_percent = 0.0
        self.started = 0.0
        self.master_url = master_url.rstrip("/")
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.own_warmup = spec.warmup_s > 0  # the lab's locustfile resets after warmup_s
        self._last: JsonObject = {}
        self._last_read = 0.0
        self._final: JsonObject | None = None
        self._window = (0.0, 0.0)
        self._exit: int | None = None

    def call(self, path: str, form: dict[str, str] | None = None) -> Any:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"{self.master_url}{path}", data=data,
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                body = reply.read()
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError_(f"the Locust master at {self.master_url} did not answer "
                                f"{path}: {exc}") from None
        return json.loads(body) if body.strip().startswith(b"{") else body

    def form(self) -> dict[str, str]:
        spec = self.spec
        form = {"user_count": str(spec.users),
                "spawn_rate": f"{spec.spawn_rate or float(spec.users):g}",
                "host": self.host, "scenario": spec.scenario,
                # A bound on the master's side too, should this process die mid-run.
                "run_time": f"{math.ceil(spec.warmup_s + spec.duration_s) + 30}s",
                "warmup_s": f"{spec.warmup_s:g}"}
        if spec.io_ms is not None:
            form["io_ms"] = str(spec.io_ms)
        if spec.cpu_work is not None:
            form["cpu_work"] = str(spec.cpu_work)
        if spec.arrival_rate:
            form["arrival_rate"] = f"{spec.arrival_rate:g}"
        for key, value in sorted(spec.extra.items()):
            form[key.replace("-", "_")] = str(value)
        return form

    def _log(self, line: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def start(self) -> MasterSwarm:
        self.json_prefix.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        if self.stats().get("state") in ("running", "spawning"):
            self.call("/stop", {})  # a swarm someone left running would skew this one
            self._wait_stopped()
        answer = self.call("/swarm", self.form())
        if not isinstance(answer, dict) or not answer.get("success"):
            raise RuntimeError_(f"the Locust master refused the swarm: {answer!r}")
        self.started = time.monotonic()
        self._window = (self.started + self.spec.warmup_s, 0.0)
        self._log(f"Ramping to {self.spec.users} users through {self.master_url} "
                  f"({answer.get('message', '')})")
        return self

    def stats(self, fresh: bool = True) -> JsonObject:
        if fresh or time.monotonic() - self._last_read > 1.0:
            answer = self.call("/stats/requests")
            self._last = answer if isinstance(answer, dict) else {}
            self._last_read = time.monotonic()
        return self._last

    def _wait_stopped(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.stats().get("state") not in ("stopped", "ready"):
            if time.monotonic() > deadline:
                raise RuntimeError_("the Locust master did not stop its swarm within "
                                    f"{STOP_TIMEOUT_S:.0f} s")
            time.sleep(0.5)

    def poll(self) -> int | None:
        if self._exit is not None:
            return self._exit
        now = time.monotonic()
        state = self.stats(fresh=False).get("state")
        if now - self.started >= self.spec.warmup_s + self.spec.duration_s:
            self.stop()
            self._exit = 0
        elif state == "stopped":  # stopped by the locustfile (a bad option) or its run_time
            self._window = (self._window[0], now)
            self.stop()
            self._exit = 1
        return self._exit

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the swarm, then read the statistics once the workers' last reports are in."""
        if self._final is not None or not self.started:
            return
        if not self._window[1]:
            self._window = (self._window[0], time.monotonic())
        with contextlib.suppress(RuntimeError_):
            self.call("/stop", {})
        try:
            self._wait_stopped()
            # A worker reports every 3 s: its last rows can reach the master after the stop.
            # Read until the count has held for longer than one report interval.
            final = self.stats()
            held_since, previous = time.monotonic(), _aggregated(final).get("num_requests")
            deadline = held_since + 30
            while time.monotonic() - held_since < REPORT_SETTLE_S and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
                final = self.stats()
                total = _aggregated(final).get("num_requests")
                if total != previous:
                    held_since, previous = time.monotonic(), total
        except RuntimeError_ as exc:
            self._log(str(exc))
            return
        self._final = final
        self.json_path.write_text(json.dumps(final, indent=1, sort_keys=True) + "\n")
        self._log(f"stopped; {_aggregated(final).get('num_requests', 0)} requests")

    def sample_cpu(self) -> None:
        """The busiest worker's CPU (each reports its own to the master)."""
        with contextlib.suppress(RuntimeError_):
            for worker in self.stats(fresh=False).get("workers", []):
                self.peak_cpu_percent = max(self.peak_cpu_percent,
                                            float(worker.get("cpu_usage") or 0.0))

    def cpu_seconds(self) -> float | None:
        return None  # the generator's processes run in the swarm, not here

    def live_rps(self) -> float | None:
        rps = self._last.get("current_rps")
        return float(rps) if rps is not None else None

    def warmup_over(self) -> bool:
        return bool(self.started) and time.monotonic() - self.started >= self.spec.warmup_s

    def figures(self) -> LoadFigures | None:
        if self._final is None:
            return None
        total = _aggregated(self._final)
        requests = int(total.get("num_requests", 0))
        window = max(self._window[1] - self._window[0], 1e-3)
        lat = {"p50": float(total.get("median_response_time") or math.nan),
               "p95": float(total.get("response_time_percentile_0.95") or math.nan),
               "p99": float(total.get("response_time_percentile_0.99") or math.nan),
               "max": float(total.get("max_response_time") or math.nan),
               "mean": float(total.get("avg_response_time") or math.nan)}
        return LoadFigures(requests, int(total.get("num_failures", 0)), requests / window,
                           lat, window, "all" if self.own_warmup else "none")

    @property
    def json_path(self) -> Path:
        return self.json_prefix.parent / f"{self.json_prefix.name}.json"

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def ramp_seen(self) -> bool:
        return bool(self.started)  # the master accepted the swarm

    def exit_code(self) -> int | None:
        return None  # no local process

    def lab_report(self) -> JsonObject | None:
        return None

    def log_tail(self, lines: int = 3) -> str:
        return log_tail(self.log_path, lines)


def _aggregated(stats: JsonObject) -> JsonObject:
    rows = stats.get("stats") or []
    return next((row for row in rows if row.get("name") == "Aggregated"), {})
