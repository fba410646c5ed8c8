"""`make install` from the lock: the lock matches pyproject.toml, a stale one or a Python
that cannot make the venv is one line and exit 2 (scripts/preflight.py, scripts/lock.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.system_tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
PREFLIGHT = ROOT / "scripts" / "preflight.py"


def _preflight(code: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run preflight.py as a script after `code` (which fakes the Python it runs on)."""
    script = (f"import runpy, sys\n{code}\n"
              f"runpy.run_path({str(cwd / 'scripts' / 'preflight.py')!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("make install: ")
    return line


def test_lock_and_requirement_files_match_pyproject() -> None:
    assert _preflight().returncode == 0
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_a_changed_pyproject_is_a_stale_lock(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(PREFLIGHT, tmp_path / "scripts")
    shutil.copy(ROOT / "uv.lock", tmp_path)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"rich>=13.9"' in pyproject
    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace('"rich>=13.9"', '"rich>=13.9", "tomli-w"'))
    line = _one_line(_preflight(cwd=tmp_path))
    assert "uv.lock does not match pyproject.toml (tomli-w)" in line and "make lock" in line


def test_an_old_python_is_one_line() -> None:
    line = _one_line(_preflight("sys.version_info = (3, 10, 14, 'final', 0)"))
    assert "Python 3.11+ is needed" in line and "is 3.10" in line


def test_a_python_without_venv_is_one_line() -> None:
    line = _one_line(_preflight("sys.modules['ensurepip'] = None"))
    assert "apt-get install -y python3-venv" in line



def test_images_and_ci_install_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for extra in ("fastapi", "flask", "locust"):
        assert f"requirements/{extra}.txt" in dockerfile
    assert dockerfile.count("--require-hashes") >= 3
    assert "--require-hashes -r requirements/all.txt" in (ROOT / "Makefile").read_text()


def test_no_module_finds_the_checkout_by_counting_parents() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "src").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"__file__\)?\.resolve\(\)\.parents\[|\.parents\[\d\]", line)]
    assert not offenders, offenders


@pytest.mark.slow
def test_a_non_editable_install_finds_the_lab_from_its_root(tmp_path: Path) -> None:
    """`pip install .` into a fresh venv (dependencies borrowed from this one through a .pth
    file, so only the package itself is built): commands run outside the checkout say in
    one line where the files are missing, and work with --repo."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()
    borrowed = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig."
                               "get_path('purelib'))"], capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()
    Path(site, "borrowed.pth").write_text(borrowed + "\n")
    source = tmp_path / "source"  # a copy: setuptools writes build/ beside the sources
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LOADLAB_REPO", "PYTHONPATH")}

    def loadlab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "loadlab"), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    where = subprocess.run([str(python), "-c", "import loadlab; print(loadlab.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True,
                           timeout=60).stdout
    assert where.startswith(site), where  # the installed copy, not the checkout's src/
    assert loadlab("--version").returncode == 0
    for args in (["dashboards", "--check"], ["serve", "fastapi", "--port", "9"]):
        done = loadlab(*args)
        assert done.returncode == 2, (args, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert "not found in" in line and "--repo DIR" in line, line
    done = loadlab("--repo", str(ROOT), "dashboards", "--check")
    assert done.returncode == 0, done.stderr


def test_the_docs_cite_only_the_projects_own_files() -> None:
    outside = "DESIGN" + ".md"  # a contract page users do not have; docs/design.md is ours
    listed = subprocess.run([require_tool("git"), "-C", str(ROOT), "ls-files"],
                            capture_output=True, text=True, timeout=30,
                            check=False).stdout.split()
    if not listed:
        pytest.skip("not a git checkout")
    citing = [name for name in listed if (ROOT / name).is_file()
              and outside in (ROOT / name).read_text(errors="replace")]
    assert not citing, citing


def test_make_lint_covers_every_shell_script_dockerfile_and_workflow() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = subprocess.run([require_tool("git"), "-C", str(ROOT), "ls-files"],
                            capture_output=True, text=True, timeout=30,
                            check=False).stdout.split()
    if not listed:
        pytest.skip("not a git checkout")
    scripts = [name for name in listed if (ROOT / name).is_file() and (
        name.endswith(".sh") or (ROOT / name).read_bytes()[:40].split(b"\n")[0]
        in (b"#!/bin/sh", b"#!/usr/bin/env bash", b"#!/bin/bash"))]
    dockerfiles = [name for name in listed if Path(name).name.startswith("Dockerfile")]
    assert scripts and dockerfiles
    missing = [name for name in scripts + dockerfiles if name not in makefile]
    assert not missing, f"not linted by make lint: {missing}"
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/" \
        in makefile


def test_a_matrix_is_found_under_the_lab_root(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from loadlab.runner.commands import matrix_file

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOADLAB_REPO", str(ROOT))
    assert matrix_file("matrices/quick.toml") == ROOT / "matrices" / "quick.toml"
    assert matrix_file("matrices/none.toml") == Path("matrices/none.toml")  # one line later
    monkeypatch.setenv("LOADLAB_REPO", str(tmp_path))
    assert matrix_file("matrices/quick.toml") == Path("matrices/quick.toml")
