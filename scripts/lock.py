"""`make lock`: resolve uv.lock again, then write the pinned, hashed requirement files that
pip installs from (`make install`, the Dockerfiles, CI) — one per image and one for all.

`python scripts/lock.py --check` says in one line (exit 2) when they no longer match.
uv resolves once for every platform and Python the project supports; pip installs, so a
machine's own pip configuration (index, proxy, CA bundle) keeps working.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "requirements"
# requirements/NAME.txt -> the extras it holds (the images install one extra each).
EXPORTS: dict[str, tuple[str, ...]] = {
    "all": ("all",),
    "fastapi": ("fastapi",),
    "flask": ("flask",),
    "locust": ("locust",),
}


def uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.is_file() else shutil.which("uv")
    if found is None:
        sys.exit("lock: uv not found: pip install uv (it is in the dev extra)")
    return found


def export(extras: tuple[str, ...]) -> str:
    """The requirement file uv writes for `extras`, from uv.lock alone (no network)."""
    cmd = [uv(), "export", "--frozen", "--offline", "--quiet", "--no-emit-project",
           "--no-header", "--project", str(ROOT)]
    for extra in extras:
        cmd += ["--extra", extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def header(name: str) -> str:
    return (f"# requirements/{name}.txt: written by `make lock` from uv.lock; do not edit.\n"
            f"# pip install --require-hashes -r requirements/{name}.txt\n")


def stale() -> list[str]:
    """What no longer matches: the lock against pyproject.toml, each file against the lock."""
    problems = []
    check = subprocess.run([uv(), "lock", "--check", "--offline", "--project", str(ROOT)],
                           capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        problems.append("uv.lock")
    for name, extras in EXPORTS.items():
        path = OUT / f"{name}.txt"
        if not path.is_file() or path.read_text() != header(name) + export(extras):
            problems.append(str(path.relative_to(ROOT)))
    return problems


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = stale()
        if problems:
            print(f"lock: {', '.join(problems)} out of date with pyproject.toml: make lock",
                  file=sys.stderr)
            return 2
        return 0
    subprocess.run([uv(), "lock", "--project", str(ROOT)], check=True)
    OUT.mkdir(exist_ok=True)
    for name, extras in EXPORTS.items():
        (OUT / f"{name}.txt").write_text(header(name) + export(extras))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
