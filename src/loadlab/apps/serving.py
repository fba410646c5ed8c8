"""``loadlab serve --app``: the command line's app, checked before anything starts."""

from __future__ import annotations

import sys
from dataclasses import replace

from loadlab import servers
from loadlab.apps.probe import probe
from loadlab.apps.spec import AppSpec, parse
from loadlab.servers import ServeError


def app_from_args(framework: str | None, app: str, app_dir: str | None,
                  interface: str | None, worker_class: str | None,
                  python: str = "default") -> AppSpec:
    """The app with its interface: forced, or found by importing it in a probe. A worker
    class that cannot fit a forced interface is refused before the import."""
    if framework is not None:
        raise ServeError(f"--app serves your app: leave out {framework!r}")
    spec = parse(app, app_dir or "", interface or "")
    if spec.interface and worker_class and worker_class in servers.CLASSES and \
            worker_class not in servers.classes_for(spec.interface):
        allowed = ", ".join(servers.classes_for(spec.interface))
        raise ServeError(f"--worker-class {worker_class!r} does not fit {spec.target} "
                         f"({spec.interface.upper()}): choose one of {allowed}")
    interpreter = sys.executable
    if python == "ft":
        from loadlab.serve import ft_python

        interpreter = str(ft_python())
    return replace(spec, interface=probe(spec, interpreter))
