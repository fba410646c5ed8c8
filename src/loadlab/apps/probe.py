"""``python -m loadlab.apps.probe MODULE:ATTR APP_DIR [INTERFACE]``: import the app in a
throwaway interpreter and say its interface, or why it cannot be served (one line).

The supervisor asks before it starts anything: the user's module may open pools, start
threads or print at import, none of which belongs in ``loadlab serve``'s own process.
"""

from __future__ import annotations

import os
import subprocess
import sys

from loadlab.apps.spec import AppSpec
from loadlab.servers import ServeError

MARK = "loadlab-app-probe:"
TIMEOUT_S = 120.0


def probe(spec: AppSpec, python: str = sys.executable) -> str:
    """The interface of ``spec``'s app ("asgi" or "wsgi"); ServeError with the reason."""
    argv = [python, "-m", "loadlab.apps.probe", spec.target, spec.app_dir, spec.interface]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.app_dir, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=TIMEOUT_S, env=env, cwd=spec.app_dir,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ServeError(f"importing {spec.target} took over {TIMEOUT_S:g}s") from None
    except OSError as exc:
        raise ServeError(f"cannot check {spec.target}: {exc}") from None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARK):
            verdict = line[len(MARK):].strip()
            if done.returncode == 0 and verdict in ("asgi", "wsgi"):
                return verdict
            raise ServeError(verdict)
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise ServeError(f"importing {spec.target} ended the interpreter "
                     f"(exit {done.returncode}): {last}")


def main(argv: list[str]) -> int:
    from loadlab.apps.load import load

    target, app_dir, interface = ([*argv, "", "", ""])[:3]
    module, _, attr = target.rpartition(":")
    spec = AppSpec(module, attr, app_dir, interface)
    try:
        _, found = load(spec)
    except ServeError as exc:
        print(f"{MARK} {exc}", flush=True)
        return 2
    print(f"{MARK} {found}", flush=True)
    return 0


if __name__ == "__main__":
    # os._exit: threads the user's module started at import must not keep us waiting.
    sys.stdout.flush()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)
