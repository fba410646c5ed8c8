"""The generated files of the Kubernetes manifests (deploy/kubernetes): the dashboards as
ConfigMaps for Grafana's dashboard sidecar, and copies of the lab's Prometheus files and
of the database's seed.sql for the base's configMapGenerator (kustomize reads files only
from inside its directory).

Written and checked by ``loadlab dashboards`` with the dashboard JSON, so neither can
drift from the code or from ``prometheus/``.
"""

from __future__ import annotations

from pathlib import Path

from loadlab.dashboards import render

PROMETHEUS_FILES = {"prometheus.yml": "prometheus.yml", "entrypoint.sh": "entrypoint.sh",
                    "alerts.yml": "rules/alerts.yml", "recording.yml": "rules/recording.yml"}
HEADER = ("# Written by `loadlab dashboards` from src/loadlab/dashboards/: never edit by hand.\n"
          "# One ConfigMap per dashboard, labelled for Grafana's dashboard sidecar.\n")


def repo_root() -> Path:
    from loadlab.paths import lab_root  # the lab's checkout (--repo, the cwd, the source)

    return lab_root()


def dashboard_configmaps() -> str:
    docs = []
    for name, text in sorted(render().items()):
        body = "".join(f"    {line}\n" if line else "\n" for line in text.splitlines())
        docs.append(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            f"  name: loadlab-dashboard-{name.removesuffix('.json')}\n"
            "  labels:\n    grafana_dashboard: \"1\"\n    app.kubernetes.io/part-of: loadlab\n"
            f"data:\n  {name}: |\n{body}")
    return HEADER + "---\n".join(docs)


def render_files(root: Path | None = None) -> dict[Path, str]:
    """Path (under the repository) -> content, exactly as committed."""
    root = root or repo_root()
    kube = root / "deploy" / "kubernetes"
    files = {kube / "operator" / "dashboards.yaml": dashboard_configmaps()}
    for copy, source in PROMETHEUS_FILES.items():
        files[kube / "prometheus" / copy] = (root / "prometheus" / source).read_text()
    # The database's seed, the one seed.sql (compose mounts the same file).
    files[kube / "postgres" / "10-seed.sql"] = (
        root / "src" / "loadlab" / "pgcluster" / "seed.sql").read_text()
    return files


def write(root: Path | None = None) -> list[Path]:
    written = []
    for path, text in render_files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def stale(root: Path | None = None) -> list[str]:
    base = root or repo_root()
    return [str(path.relative_to(base)) for path, text in render_files(root).items()
            if not path.is_file() or path.read_text() != text]
