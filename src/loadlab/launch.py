"""Start ``loadlab serve`` as a child process group, wait until it answers, stop it.

Used by the runner and by the tests: everything it starts it ends by process group,
never by name, and it never waits on a sleep when it can wait on ``/healthz``
(and, with several workers, on their count: loadlab.readiness).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

from loadlab.errors import UserError
from loadlab.procs import free_port, kill_group, port_in_use, tie_to_parent
from loadlab.readiness import wait_ready
from loadlab.serve import ServerConfig, serve_argv
from loadlab.servers import worker_processes

__all__ = ["LaunchError", "ServiceProcess", "free_port", "port_in_use", "serve_argv"]


class LaunchError(UserError, RuntimeError):
    """The service did not come up; the message carries its last log lines."""


@dataclass
class ServiceProcess:
    """A running ``loadlab serve``; use as a context manager."""

    cfg: ServerConfig
    env: dict[str, str] | None = None
    ready_timeout_s: float = 30.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    log: BinaryIO | None = field(default=None, init=False, repr=False)
    metrics_port: int = field(default=0, init=False)

    @property
    def url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.cfg.port}"

    @property
    def metrics_url(self) -> str:
        """The supervisor's side port: answers while the workers are saturated."""
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.metrics_port}/metrics"

    def start(self) -> ServiceProcess:
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self) -> ServiceProcess:
        """Start the process without waiting for it (``wait_ready`` waits)."""
        if port_in_use(self.cfg.host, self.cfg.port):
            raise LaunchError(f"port {self.cfg.port} on {self.cfg.host} is already in use")
        # A log with no name on disk: it goes when the service's descriptor and ours close,
        # even if this process is SIGKILLed (a named file in /tmp was left behind then).
        # It lives as long as the service: stop() closes it.
        self.log = tempfile.TemporaryFile(  # noqa: SIM115
            prefix=f"loadlab-{self.cfg.framework}-", suffix=".log")
        env = dict(os.environ if self.env is None else self.env)
        # Each service gets its own multiprocess directory, made and wiped by serve.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.metrics_port = self.cfg.metrics_port or 0
        while not self.metrics_port or self.metrics_port == self.cfg.port:
            # The kernel may hand out the service's own (still free) port again.
            self.metrics_port = free_port(self.cfg.host)
        env["LOADLAB_METRICS_PORT"] = str(self.metrics_port)
        # SIGTERM when this process dies, even by SIGKILL: no service outlives its runner.
        self.proc = subprocess.Popen(
            serve_argv(self.cfg), stdout=self.log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=tie_to_parent(signal.SIGTERM),
        )
        return self

    def wait_ready(self) -> None:
        """Until /healthz answers and every worker has loaded the app (loadlab.readiness)."""

        def exited() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}"
            return None

        if self.cfg.app is not None:  # a user's app may have no /healthz (loadlab.apps)
            from loadlab.apps.ready import wait_ready as app_ready

            reason = app_ready(self.cfg.host, self.cfg.port, self.metrics_url,
                               worker_processes(self.cfg), self.ready_timeout_s, exited)
        else:
            reason = wait_ready(self.url, self.ready_timeout_s, worker_processes(self.cfg),
                                exited)
        if reason is not None:
            raise LaunchError(f"{self.cfg.framework} {reason}: {self.log_tail()}")

    def log_text(self, last_bytes: int | None = None) -> str | None:
        """What the service wrote so far (its last ``last_bytes``), or None once stopped."""
        if self.log is None or self.log.closed:
            return None
        # pread, not seek + read: the service shares this descriptor's offset and writes at it.
        fd = self.log.fileno()
        size = os.fstat(fd).st_size
        start = 0 if last_bytes is None else max(0, size - last_bytes)
        return os.pread(fd, size - start, start).decode("utf-8", "replace")

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_text(last_bytes=65536)
        if text is None:
            return "(no log)"
        tail = deque((line.rstrip() for line in text.splitlines() if line.strip()),
                     maxlen=lines)
        return " | ".join(tail) or "(empty log)"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.proc is None:
            return
        kill_group(self.proc.pid, timeout_s, proc=self.proc)
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
