"""`make install`'s first step: one line and exit 2 when this Python cannot make the venv,
or when uv.lock no longer matches pyproject.toml.

It runs on whatever Python the user has (the point is to run on the wrong one), so it
checks the version before it imports anything newer, and reads the lock without uv.
"""

import re
import sys
from pathlib import Path

NEED = (3, 11)
ROOT = Path(__file__).resolve().parent.parent


def python_problem() -> "str | None":
    have = sys.version_info[:2]
    if have < NEED:
        return (f"Python {NEED[0]}.{NEED[1]}+ is needed, {sys.executable} is "
                f"{have[0]}.{have[1]} (make install PY=python3.11)")
    try:
        import ensurepip  # noqa: F401  Debian moves it out of python3 into python3-venv
        import venv  # noqa: F401
    except ImportError:
        return (f"the venv module is missing: apt-get install -y python3-venv "
                f"(or python3.{have[1]}-venv)")
    return None


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str, extra: "str | None") -> tuple:
    found = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?\s*([^;]*?)\s*", requirement)
    if found is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    name, extras, spec = found.groups()
    extras = tuple(sorted(e.strip() for e in (extras or "").split(",") if e.strip()))
    return _name(name), extras, spec.replace(" ", ""), extra


def declared(pyproject: dict) -> set:
    """Every requirement of pyproject.toml as (name, extras, specifier, extra)."""
    project = pyproject["project"]
    out = {_parse(r, None) for r in project.get("dependencies", [])}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out |= {_parse(r, extra) for r in reqs}
    return out


def locked(lock: dict, project: str) -> set:
    """The same, as uv.lock recorded them when it was made."""
    [root] = [p for p in lock["package"] if p["name"] == project]
    out = set()
    for req in root.get("metadata", {}).get("requires-dist", []):
        marker = re.fullmatch(r"extra == '([^']+)'", req.get("marker", ""))
        out.add((_name(req["name"]), tuple(sorted(req.get("extras", []))),
                 req.get("specifier", "").replace(" ", ""), marker and marker.group(1)))
    return out


def lock_problem(root: Path = ROOT) -> "str | None":
    import tomllib

    lock_path = root / "uv.lock"
    if not lock_path.is_file():
        return f"{lock_path} is missing: make lock"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    lock = tomllib.loads(lock_path.read_text())
    want, have = declared(pyproject), locked(lock, pyproject["project"]["name"])
    if want != have:
        changed = sorted({r[0] for r in want ^ have})
        return (f"uv.lock does not match pyproject.toml ({', '.join(changed)}): "
                "run make lock and commit uv.lock and requirements/")
    return None


if __name__ == "__main__":
    why = python_problem() or lock_problem()
    if why is not None:
        sys.stderr.write(f"make install: {why}\n")
        sys.exit(2)
