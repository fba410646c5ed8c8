"""``loadlab dashboards [--check]``: write or check grafana/dashboards/*.json, and the
generated files of the Kubernetes manifests (dashboard ConfigMaps, Prometheus copies)."""

from __future__ import annotations

import sys
from pathlib import Path

from loadlab.dashboards import default_dir, kube, stale, write


def main(out: str | None, check: bool = False) -> int:
    directory = Path(out) if out else default_dir()
    if check:
        differ = stale(directory) + (kube.stale() if out is None else [])
        if differ:
            print(f"loadlab dashboards: {', '.join(differ)} in {directory} differ from the "
                  "code; run `loadlab dashboards`", file=sys.stderr)
            return 1
        print(f"dashboards in {directory} match the code")
        return 0
    for path in write(directory):
        print(path)
    if out is None:  # the Kubernetes copies live in the repository only
        for path in kube.write():
            print(path)
    return 0
