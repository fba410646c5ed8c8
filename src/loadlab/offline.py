"""Build every image the lab can run without a container registry.

For air-gapped machines, proxies with their own CA, and CI machines where nothing can be
pulled: a Python base image made from Debian packages with debootstrap, trusting this
machine's CA bundle (so pip inside a build reaches PyPI through such a proxy); the lab's
own images from the very same Dockerfiles with ``PYTHON_IMAGE`` pointing at that base;
a Prometheus image from Debian's ``prometheus`` package; and PostgreSQL 15 and
postgres_exporter images from Debian's ``postgresql`` and ``prometheus-postgres-exporter``
packages, with the official images' conventions (``postgres/``). Grafana has no Debian, PyPI or
npm package, so it is the one service this cannot provide.

``python -m loadlab.offline`` (``make offline-images``) builds them and writes
``.offline/images.env``, which compose reads with ``--env-file``.

``--arch arm64`` (``make arm64-images``) builds the lab's own three images for linux/arm64
on an amd64 machine instead, under qemu-user-static through binfmt_misc: the Debian base
debootstrapped for arm64 (``loadlab/python-base:bookworm-arm64``) and ``loadlab/NAME:arm64``
from the same Dockerfile, with the locust image's builder stage compiling what has no
arm64 wheel. It proves the images build on Apple-silicon Macs and arm64 Linux.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from loadlab.errors import UserError
from loadlab.paths import LabFilesMissing, lab_root

BASE_IMAGE = "loadlab/python-base:bookworm"
PROMETHEUS_IMAGE = "loadlab/prometheus:debian"
POSTGRES_IMAGE = "loadlab/postgres:debian"
POSTGRES_EXPORTER_IMAGE = "loadlab/postgres-exporter:debian"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Services compose can start offline: everything but Grafana.
OFFLINE_SERVICES = ("fastapi", "flask", "locust-master", "locust-worker", "prometheus",
                    "postgres", "postgres-exporter")


ARM64_BASE_IMAGE = f"{BASE_IMAGE}-arm64"
ARM64_TAG = "arm64"
LAB_TARGETS = ("fastapi", "flask", "locust")
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


class OfflineError(UserError, RuntimeError):
    """A missing tool or a failed step; the message is one line for the user."""

    exit_code = 1  # a build that failed, not bad input


def _need(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        raise OfflineError(f"{tool} not found: {hint}")


def _run(cmd: Sequence[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(list(cmd), check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise OfflineError(f"{cmd[0]} {cmd[1]} failed with exit {result.returncode}")


def image_exists(name: str) -> bool:
    probe = subprocess.run(
        ["docker", "image", "inspect", name], capture_output=True, check=False
    )
    return probe.returncode == 0


def require_arm64_emulation(entry: Path = BINFMT_AARCH64) -> None:
    """arm64 binaries run here: natively, or through qemu-user-static in binfmt_misc with
    the F flag (the interpreter is opened once, so it works inside containers too)."""
    if os.uname().machine in ("aarch64", "arm64"):
        return
    how = ("apt-get install -y qemu-user-static binfmt-support; mount binfmt_misc -t "
           "binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64")
    try:
        text = entry.read_text()
    except OSError:
        raise OfflineError(f"no arm64 emulation here ({entry} missing): {how}") from None
    if not text.startswith("enabled") or "F" not in next(
            (line.split()[1] for line in text.splitlines() if line.startswith("flags:")), ""):
        raise OfflineError(f"arm64 emulation is registered without the F flag or disabled "
                           f"({entry}): {how}")


def build_base(tag: str = BASE_IMAGE, mirror: str | None = None, arch: str | None = None
               ) -> None:
    """debootstrap a minimal Debian with Python, trust the host's CAs, import it as `tag`."""
    _need("debootstrap", "apt-get install -y debootstrap")
    if not HOST_CA_BUNDLE.is_file():
        raise OfflineError(f"{HOST_CA_BUNDLE} missing: apt-get install -y ca-certificates")
    with tempfile.TemporaryDirectory(prefix="loadlab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            *([f"--arch={arch}"] if arch else []), SUITE, str(rootfs),
        ]
        _run([*cmd, mirror] if mirror else cmd, stdout=subprocess.DEVNULL)
        # The host bundle includes any CA a proxy here re-signs with; Debian's own does not.
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / IMAGE_CA_BUNDLE.lstrip("/"))
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"ENV PIP_CERT={IMAGE_CA_BUNDLE}",
            f"ENV SSL_CERT_FILE={IMAGE_CA_BUNDLE}",
            f"ENV REQUESTS_CA_BUNDLE={IMAGE_CA_BUNDLE}",
            'CMD ["python3"]',
        ]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        change_args = [arg for change in changes for arg in ("--change", change)]
        try:
            _run(["docker", "import", *change_args, "-", tag], stdin=tar.stdout,
                 stdout=subprocess.DEVNULL)
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()


def _build_debian(directory: str, dockerfile: str, tag: str, base: str = BASE_IMAGE) -> None:
    """A third-party service's image from Debian packages, on the Debian base."""
    root = lab_root()
    _run([
        "docker", "build", "--build-arg", f"BASE_IMAGE={base}", "-t", tag,
        "-f", str(root / directory / dockerfile), str(root / directory),
    ])


def build_prometheus(base: str = BASE_IMAGE, tag: str = PROMETHEUS_IMAGE) -> None:
    _build_debian("prometheus", "Dockerfile.debian", tag, base)


def build_postgres(base: str = BASE_IMAGE) -> None:
    _build_debian("postgres", "Dockerfile.debian", POSTGRES_IMAGE, base)
    _build_debian("postgres", "Dockerfile.exporter.debian", POSTGRES_EXPORTER_IMAGE, base)


def compose_env(base: str = BASE_IMAGE, prometheus: str = PROMETHEUS_IMAGE) -> dict[str, str]:
    """The variables that make compose use the offline images."""
    return {"PYTHON_IMAGE": base, "PROMETHEUS_IMAGE": prometheus,
            "POSTGRES_IMAGE": POSTGRES_IMAGE, "POSTGRES_EXPORTER_IMAGE": POSTGRES_EXPORTER_IMAGE}


def build_lab_images(base: str = BASE_IMAGE) -> None:
    """The lab's own images from the same Dockerfiles users build, on the Debian base."""
    env = {**os.environ, **compose_env(base)}
    _run(["docker", "compose", "--project-directory", str(lab_root()), "build",
          "fastapi", "flask", "locust-master"], env=env)


def build_arm64(rebuild_base: bool = False, mirror: str | None = None) -> list[str]:
    """The lab's own images for linux/arm64 under emulation; returns their tags."""
    _need("docker", "apt-get install -y docker.io, then start dockerd")
    require_arm64_emulation()
    started = time.monotonic()
    if rebuild_base or not image_exists(ARM64_BASE_IMAGE):
        build_base(ARM64_BASE_IMAGE, mirror=mirror, arch="arm64")
        print(f"arm64 base in {time.monotonic() - started:.0f} s", flush=True)
    tags = []
    for target in LAB_TARGETS:
        tag = f"loadlab/{target}:{ARM64_TAG}"
        _run(["docker", "build", "--build-arg", f"PYTHON_IMAGE={ARM64_BASE_IMAGE}",
              "--target", target, "-t", tag, str(lab_root())])
        tags.append(tag)
    # What each image runs is arm64 code: the interpreter and every compiled module load.
    probe = ("import platform, importlib; "
             "[importlib.import_module(m) for m in MODULES]; print(platform.machine())")
    modules = {"fastapi": ["uvloop", "httptools", "pydantic_core", "psycopg", "psycopg_binary"],
               "flask": ["gevent", "greenlet", "psycopg", "psycopg_binary"],
               "locust": ["pyhdrh", "gevent", "zmq", "msgpack"]}
    for target, tag in zip(LAB_TARGETS, tags, strict=True):
        code = probe.replace("MODULES", repr(modules[target]))
        done = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", tag, "-c",
                               code], capture_output=True, text=True, timeout=300,
                              check=False)
        if done.returncode != 0 or done.stdout.strip() != "aarch64":
            raise OfflineError(f"{tag} does not run as arm64: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    print(f"built {', '.join(tags)} for arm64 in {time.monotonic() - started:.0f} s")
    return tags


def write_env_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in sorted(compose_env().items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# Written by `make offline-images`: compose uses the images built here.\n"
                   + "\n".join(lines) + "\n")
    tmp.replace(path)


def build_all(rebuild_base: bool = False, mirror: str | None = None) -> Path:
    _need("docker", "apt-get install -y docker.io, then start dockerd")
    started = time.monotonic()
    if rebuild_base or not image_exists(BASE_IMAGE):
        build_base(mirror=mirror)
    build_prometheus()
    build_postgres()
    build_lab_images()
    env_file = lab_root() / ".offline" / "images.env"
    write_env_file(env_file)
    print(f"built in {time.monotonic() - started:.0f} s; start the lab without Grafana "
          "(no offline image exists for it):")
    print(f"  docker compose --env-file {env_file.relative_to(lab_root())} up -d --wait "
          + " ".join(OFFLINE_SERVICES))
    return env_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadlab.offline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild-base", action="store_true",
                        help="debootstrap the base image again even if it exists")
    parser.add_argument("--mirror", default=None, help="Debian mirror for debootstrap")
    parser.add_argument("--arch", choices=("native", "arm64"), default="native",
                        help="arm64: the lab's own images for linux/arm64, emulated")
    args = parser.parse_args(argv)
    try:
        if args.arch == "arm64":
            build_arm64(rebuild_base=args.rebuild_base, mirror=args.mirror)
        else:
            build_all(rebuild_base=args.rebuild_base, mirror=args.mirror)
    except OfflineError as exc:
        print(f"loadlab offline: error: {exc}", file=sys.stderr)
        return 1
    except LabFilesMissing as exc:
        print(f"loadlab offline: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
