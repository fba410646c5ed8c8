"""The lab as a Docker Swarm stack, rendered from docker-compose.yml (never a second copy).

``docker compose config`` merges ``docker-compose.yml`` with the small swarm override
(``docker-compose.swarm.yml``: configs instead of bind mounts, Prometheus on
``tasks.<service>``) and interpolates every knob; ``stack_file`` then turns that into the
stack-file dialect ``docker stack deploy`` reads: compose-only keys dropped (``build``,
``depends_on``, ``cpuset``, ``security_opt``), ports published in host mode (the ingress
mesh answered nothing on loopback on the machines this was built on), placement by the
``loadlab.role`` node labels, content-named configs (a swarm config cannot change).

``loadlab stack deploy|rm|render`` (docs/swarm.md) drives it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadlab.errors import UserError
from loadlab.runs.record import SwarmNode

STACK = "loadlab"
ROLE_LABEL = "loadlab.role"
# The database is part of what is measured: it goes with the services, not with the load.
SUT_SERVICES = ("fastapi", "flask", "fastapi-gunicorn", "flask-gevent", "fastapi-granian",
                "flask-granian", "postgres")
LOAD_SERVICES = ("locust-worker",)
# Keys swarm does not have, or that the stack file spells differently (handled below).
COMPOSE_ONLY = ("build", "depends_on", "cpuset", "security_opt", "restart", "networks",
                "container_name", "profiles", "cpus", "mem_limit", "pull_policy")
DEPLOY_TIMEOUT_S = 300.0


class StackError(UserError, RuntimeError):
    """What is missing or wrong, in one line, with how to get it."""


def repo_root() -> Path:
    from loadlab.paths import lab_root  # the lab's checkout (--repo, the cwd, the source)

    return lab_root()


def _run(cmd: list[str], timeout: float = 120, env: Mapping[str, str] | None = None,
         input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else None, input=input_text,
                              check=False)
    except FileNotFoundError:
        raise StackError(f"no `{cmd[0]}` command here (Debian: apt-get install docker.io)"
                         ) from None
    except subprocess.TimeoutExpired:
        raise StackError(f"`{' '.join(cmd[:3])}` took over {timeout:.0f} s") from None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --- the swarm this machine is in -------------------------------------------------------
def swarm_state() -> str:
    """Swarm.LocalNodeState: inactive, active, pending, error, locked (or raises)."""
    if shutil.which("docker") is None:
        raise StackError("--runtime swarm needs Docker: no `docker` command here "
                         "(Debian: apt-get install docker.io; see docs/swarm.md)")
    info = _run(["docker", "info", "--format", "{{json .Swarm}}"], timeout=30)
    if info.returncode != 0 or not info.stdout.strip().startswith("{"):
        raise StackError("no Docker engine answers (start it: systemctl start docker, or "
                         f"dockerd): {last_line(info.stderr)}")
    swarm = json.loads(info.stdout)
    return str(swarm.get("LocalNodeState") or "inactive")


def require_manager() -> None:
    state = swarm_state()
    if state != "active":
        raise StackError(
            f"this Docker engine is in no swarm (state {state}): `docker swarm init "
            "--advertise-addr ADDRESS` makes it one (docs/swarm.md)")
    info = _run(["docker", "info", "--format", "{{.Swarm.ControlAvailable}}"], timeout=30)
    if info.stdout.strip() != "true":
        raise StackError("this node is a swarm worker: run loadlab on a manager node "
                         "(`docker node ls` there lists the nodes)")


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    addr: str
    role: str  # its loadlab.role label, or ""
    cpus: float
    memory_bytes: int
    state: str
    availability: str

    def as_dict(self) -> SwarmNode:
        return {"id": self.id, "hostname": self.hostname, "addr": self.addr,
                "loadlab_role": self.role, "cores": self.cpus,
                "memory_bytes": self.memory_bytes, "state": self.state,
                "availability": self.availability}


def nodes() -> list[Node]:
    listed = _run(["docker", "node", "ls", "--format", "{{.ID}}"], timeout=30)
    if listed.returncode != 0:
        raise StackError(f"docker node ls failed: {last_line(listed.stderr)}")
    ids = listed.stdout.split()
    if not ids:
        return []
    inspect = _run(["docker", "node", "inspect", *ids], timeout=30)
    if inspect.returncode != 0:
        raise StackError(f"docker node inspect failed: {last_line(inspect.stderr)}")
    found = []
    for raw in json.loads(inspect.stdout):
        spec, desc, status = raw.get("Spec", {}), raw.get("Description", {}), raw.get("Status",
                                                                                       {})
        resources = desc.get("Resources", {})
        found.append(Node(
            id=raw["ID"], hostname=desc.get("Hostname", ""), addr=status.get("Addr", ""),
            role=(spec.get("Labels") or {}).get(ROLE_LABEL, ""),
            cpus=resources.get("NanoCPUs", 0) / 1e9,
            memory_bytes=int(resources.get("MemoryBytes", 0)),
            state=status.get("State", ""), availability=spec.get("Availability", ""),
        ))
    return found


# --- rendering --------------------------------------------------------------------------
def compose_config(root: Path, env_files: Iterable[str], env: Mapping[str, str]) -> dict[str,
                                                                                         Any]:
    cmd = ["docker", "compose", "--project-directory", str(root),
           "-f", str(root / "docker-compose.yml"), "-f", str(root / "docker-compose.swarm.yml")]
    for env_file in env_files:
        cmd += ["--env-file", env_file]
    done = _run([*cmd, "config", "--format", "json"], timeout=60, env=env)
    if done.returncode != 0:
        raise StackError(f"docker compose config failed: {last_line(done.stderr)}")
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def constraint_for(service: str, roles: set[str], placement: str) -> list[str]:
    """Hard constraints by node label; ``auto`` constrains only where a node carries it."""
    wanted = "sut" if service in SUT_SERVICES else "load" if service in LOAD_SERVICES else ""
    if not wanted or placement == "any":
        return []
    if wanted in roles:
        return [f"node.labels.{ROLE_LABEL} == {wanted}"]
    if placement == "labels":
        raise StackError(
            f"no node carries the label {ROLE_LABEL}={wanted} (for {service}): add it with "
            f"`docker node update --label-add {ROLE_LABEL}={wanted} NODE`, or deploy with "
            "--placement auto")
    return []


def _ports(ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Host mode: the port answers on the node that runs the task (and swarm has no host
    # address for it: it binds every interface).
    return [{"target": int(p["target"]), "published": int(p["published"]),
             "protocol": p.get("protocol", "tcp"), "mode": "host"}
            for p in ports if p.get("published")]


def _limits(svc: dict[str, Any]) -> None:
    deploy = svc.setdefault("deploy", {})
    limits = deploy.setdefault("resources", {}).setdefault("limits", {})
    if "cpus" in svc:
        limits.setdefault("cpus", svc["cpus"])
    if "mem_limit" in svc:
        limits.setdefault("memory", svc["mem_limit"])
    if "cpus" in limits:
        if float(limits["cpus"]) <= 0:
            del limits["cpus"]  # 0: no limit, as in compose
        else:
            limits["cpus"] = f"{float(limits['cpus']):g}"
    if "memory" in limits:
        limits["memory"] = str(limits["memory"])
    if not limits:
        deploy["resources"].pop("limits")


def stack_file(config: dict[str, Any], services: Iterable[str] | None = None,
               roles: set[str] | None = None, placement: str = "auto") -> dict[str, Any]:
    """``docker compose config`` output -> the stack file ``docker stack deploy`` reads."""
    chosen = set(services) if services is not None else {
        name for name, svc in config["services"].items() if not svc.get("profiles")}
    unknown = chosen - set(config["services"])
    if unknown:
        raise StackError(f"no such service in docker-compose.yml: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {"version": "3.9", "services": {}}
    used_volumes: set[str] = set()
    used_configs: set[str] = set()
    for name in sorted(chosen):
        svc = {k: v for k, v in config["services"][name].items() if v is not None}
        _limits(svc)
        for key in COMPOSE_ONLY:
            svc.pop(key, None)
        if "ports" in svc:
            svc["ports"] = _ports(svc["ports"])
        deploy = svc["deploy"]
        deploy.setdefault("restart_policy", {"condition": "any", "delay": "5s"})
        # DNS round robin: a name resolves to its tasks' addresses. A virtual IP needs the
        # kernel's IPVS, and without it (as here) answers "No route to host" (docs/swarm.md).
        deploy["endpoint_mode"] = "dnsrr"
        # Swarm ignores a service's `tmpfs:` list; a tmpfs mount is what it honours.
        tmpfs = [{"type": "tmpfs", "target": path} for path in svc.pop("tmpfs", [])]
        deploy["placement"] = dict(deploy.get("placement") or {})
        constraints = constraint_for(name, roles or set(), placement)
        if constraints:
            deploy["placement"]["constraints"] = constraints
        if not deploy["placement"]:
            del deploy["placement"]
        volumes = []
        for volume in svc.get("volumes", []):
            if volume.get("type") == "bind":
                raise StackError(f"{name} bind-mounts {volume.get('source')}: a swarm node "
                                 "has no such path; use a config (docker-compose.swarm.yml)")
            used_volumes.add(volume["source"])
            volumes.append({"type": "volume", "source": volume["source"],
                            "target": volume["target"],
                            **({"read_only": True} if volume.get("read_only") else {})})
        volumes += tmpfs
        if volumes:
            svc["volumes"] = volumes
        for cfg in svc.get("configs", []):
            used_configs.add(cfg["source"])
            cfg.setdefault("mode", 0o444)
        if "healthcheck" in svc:
            svc["healthcheck"] = {k: v for k, v in svc["healthcheck"].items()
                                  if k != "start_interval"}
        out["services"][name] = svc
    if used_volumes:
        out["volumes"] = {name: {} for name in sorted(used_volumes)}
    if used_configs:
        out["configs"] = {}
        for name in sorted(used_configs):
            path = Path(config["configs"][name]["file"])
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            # Swarm configs are immutable: a changed file gets a new name.
            out["configs"][name] = {"file": str(path), "name": f"{STACK}_{name}-{digest}"}
    return out


def env_files(root: Path) -> list[str]:
    files = [root / ".env", root / ".offline" / "images.env"]
    return [str(path) for path in files if path.is_file()]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner alone (the stack file holds the passwords),
    atomically, in a directory only its owner may enter."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Stack:
    """One deployed (or to be deployed) stack of the lab."""

    name: str = STACK
    root: Path = field(default_factory=repo_root)
    env: dict[str, str] = field(default_factory=dict)
    env_file_list: list[str] | None = None  # None: .env and .offline/images.env if present

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def render(self, services: Iterable[str] | None = None, placement: str = "auto"
               ) -> dict[str, Any]:
        files = self.env_file_list if self.env_file_list is not None else env_files(self.root)
        config = compose_config(self.root, files, self.environ())
        roles = {node.role for node in nodes()} if placement != "any" else set()
        return stack_file(config, services, roles, placement)

    def images(self, stack: dict[str, Any]) -> list[str]:
        return sorted({svc["image"] for svc in stack["services"].values()})

    def check_images(self, stack: dict[str, Any]) -> None:
        missing = [image for image in self.images(stack)
                   if _run(["docker", "image", "inspect", image], timeout=30).returncode != 0]
        if missing:
            raise StackError(
                f"this swarm has no image {', '.join(missing)}: build the lab's images "
                "(`make offline-images` without a registry, else `docker compose build`) on "
                "every node first; stack deploy pulls nothing that is not in a registry")

    def check_password(self, stack: dict[str, Any]) -> None:
        """Swarm publishes every port on every interface of its node (a published port
        has no host address there): each door with a lock needs its password first.

        What is in force inside is checked by the entrypoints themselves: the database
        refuses a volume that trusts TCP clients (postgres/entrypoint.sh; the stack's
        volume ``loadlab_postgres-data`` is the compose project's on the same node), and
        Grafana resets its admin password to the one set (grafana/entrypoint.sh).
        """
        needed = (("locust-master", "LOCUST_WEB_PASSWORD", "LOCUST_WEB_PASSWORD",
                   "the Locust master's port"),
                  ("postgres", "POSTGRES_PASSWORD", "POSTGRES_PASSWORD",
                   "the database's port"),
                  ("grafana", "GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
                   "Grafana's port"))
        for service, variable, knob, what in needed:
            svc = stack["services"].get(service)
            if svc is None:
                continue
            value = str(svc.get("environment", {}).get(variable) or "")
            if not value or (service == "grafana" and value == "admin"):
                raise StackError(
                    f"in a swarm {what} answers on every interface of its node: set {knob}"
                    + (" (not 'admin')" if service == "grafana" else "")
                    + " (in .env or the environment) before deploying")

    def deploy(self, services: Iterable[str] | None = None, placement: str = "auto",
               wait_s: float = DEPLOY_TIMEOUT_S) -> float:
        """Deploy and wait until every task runs healthy; return the seconds that took."""
        require_manager()
        stack = self.render(services, placement)
        self.check_images(stack)
        self.check_password(stack)
        target = self.root / ".swarm" / f"{self.name}.json"
        write_private(target, json.dumps(stack, indent=2, sort_keys=True) + "\n")
        started = time.monotonic()
        done = _run(["docker", "stack", "deploy", "--prune", "--resolve-image", "never",
                     "-c", str(target), self.name], timeout=180, env=self.environ())
        if done.returncode != 0:
            raise StackError(f"docker stack deploy failed: {last_line(done.stderr)}")
        self.wait_healthy(wait_s)
        return time.monotonic() - started

    def services(self) -> dict[str, str]:
        """{short service name: replicas column} of the deployed stack."""
        listed = _run(["docker", "stack", "services", self.name, "--format",
                       "{{.Name}} {{.Replicas}}"], timeout=30)
        if listed.returncode != 0:
            return {}
        found = {}
        for line in listed.stdout.splitlines():
            name, _, replicas = line.partition(" ")
            found[name.removeprefix(f"{self.name}_")] = replicas.split()[0] if replicas else ""
        return found

    def require_deployed(self, *wanted: str) -> None:
        require_manager()
        found = self.services()
        if not found:
            raise StackError(f"no stack {self.name!r} is deployed on this swarm: "
                             "`loadlab stack deploy` deploys it (docs/swarm.md)")
        missing = [name for name in wanted if name not in found]
        if missing:
            raise StackError(f"the stack {self.name!r} has no service {', '.join(missing)}: "
                             "deploy it with `loadlab stack deploy` (docs/swarm.md)")

    def tasks(self, service: str) -> list[dict[str, Any]]:
        """The service's tasks meant to run: id, node, state, error, container."""
        full = f"{self.name}_{service}"
        ids = _run(["docker", "service", "ps", "--quiet", "--no-trunc", "--filter",
                    "desired-state=running", full], timeout=30).stdout.split()
        if not ids:
            return []
        inspect = _run(["docker", "inspect", *ids], timeout=30)
        if inspect.returncode != 0:
            return []
        tasks = []
        for raw in json.loads(inspect.stdout):
            status = raw.get("Status", {})
            tasks.append({
                "id": raw["ID"], "node_id": raw.get("NodeID", ""), "slot": raw.get("Slot"),
                "state": status.get("State", ""), "error": status.get("Err", ""),
                "message": status.get("Message", ""),
                "container": status.get("ContainerStatus", {}).get("ContainerID", ""),
                "spec_version": raw.get("Version", {}).get("Index"),
            })
        return tasks

    def converged(self) -> tuple[bool, str]:
        """Whether every service runs all its replicas; else what is still missing.

        A task of a service with a healthcheck reaches `running` only once it is healthy
        (swarm waits for the first healthy check), so running replicas are healthy ones.
        """
        replicas = self.services()
        if not replicas:
            return False, "no services yet"
        waiting = []
        for name, column in sorted(replicas.items()):
            running, _, wanted = column.partition("/")
            if not running.isdigit() or running != wanted:
                tasks = self.tasks(name)
                why = next((t["error"] or t["message"] for t in tasks
                            if t["state"] != "running"), "")
                waiting.append(f"{name} {column}" + (f" ({why})" if why else ""))
        return not waiting, "; ".join(waiting)

    def wait_healthy(self, wait_s: float = DEPLOY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            done, waiting = self.converged()
            if done:
                return
            if time.monotonic() > deadline:
                raise StackError(f"the stack was not healthy within {wait_s:.0f} s: {waiting}")
            time.sleep(1)

    def scale(self, service: str, replicas: int, wait_s: float = DEPLOY_TIMEOUT_S) -> float:
        started = time.monotonic()
        done = _run(["docker", "service", "scale", "--detach",
                     f"{self.name}_{service}={replicas}"], timeout=60)
        if done.returncode != 0:
            raise StackError(f"docker service scale failed: {last_line(done.stderr)}")
        self.wait_healthy(wait_s)
        return time.monotonic() - started

    def remove(self, wait_s: float = 120) -> None:
        """docker stack rm, then wait until its containers and networks are gone, then
        remove its volumes (stack rm leaves them)."""
        _run(["docker", "stack", "rm", self.name], timeout=120)
        label = f"label=com.docker.stack.namespace={self.name}"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            left = self.leftovers()
            if not left.get("containers") and not left.get("networks") \
                    and not left.get("services"):
                break
            time.sleep(1)
        volumes = _run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split()
        if volumes:
            _run(["docker", "volume", "rm", "--force", *volumes], timeout=60)
        (self.root / ".swarm" / f"{self.name}.json").unlink(missing_ok=True)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.stack.namespace={self.name}"
        found = {}
        for kind, cmd in (("services", ["docker", "service", "ls", "-q", "--filter", label]),
                          ("containers", ["docker", "ps", "-aq", "--filter", label]),
                          ("networks", ["docker", "network", "ls", "-q", "--filter", label]),
                          ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
                          ("configs", ["docker", "config", "ls", "-q", "--filter", label])):
            done = _run(cmd, timeout=60)
            found[kind] = done.stdout.split() if done.returncode == 0 else []
        return {kind: ids for kind, ids in found.items() if ids}


def main(action: str, name: str = STACK, services: list[str] | None = None,
         placement: str = "auto") -> int:
    """``loadlab stack ACTION``: bad input and missing pieces -> StackError (exit 2)."""
    lab = Stack(name=name)
    if action == "render":
        print(json.dumps(lab.render(services or None, placement), indent=2, sort_keys=True))
    elif action == "deploy":
        seconds = lab.deploy(services or None, placement)
        print(f"stack {name}: every task healthy {seconds:.1f} s after `docker stack deploy`")
    elif action == "rm":
        require_manager()
        lab.remove()
        left = lab.leftovers()
        if left:
            raise StackError(f"docker stack rm left {left} behind")
        print(f"stack {name}: removed with its volumes")
    else:
        raise StackError(f"unknown action {action!r}: choose deploy, rm or render")
    return 0
