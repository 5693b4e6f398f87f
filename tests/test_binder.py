"""Binder: binder/requirements.txt (exact pins) + binder/postBuild must give an environment in
which wemix_nb and its notebook stack import. repo2docker ignores the root pyproject.toml when a
binder/ folder exists, so the pins must keep up with pyproject's dependencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOK_STACK = ["jupyterlab", "ipykernel"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def binder_pins() -> dict[str, str]:
    pins = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"binder/requirements.txt: not an exact pin: {line!r}"
            pins[_norm(name)] = version
    return pins


def test_binder_pins_cover_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    needed = project["dependencies"] + extras["notebook"] + extras["report"] + NOTEBOOK_STACK
    pins = binder_pins()
    problems = []
    for text in needed:
        req = Requirement(text)
        version = pins.get(_norm(req.name))
        if version is None:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy pyproject's {text!r}")
    assert not problems, "binder/requirements.txt: " + "; ".join(problems)
    assert os.access(BINDER / "postBuild", os.X_OK), "binder/postBuild must be executable"


def test_binder_environment_builds_and_runs_a_tutorial(tmp_path):
    """A fresh venv from binder/ only (the pins, then postBuild on a copy of the repository)
    imports wemix_nb and runs the first tutorial top to bottom (as Binder would)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    repo = tmp_path / "repo"
    for rel in filter(None, files):
        source, target = ROOT / rel, repo / rel
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def run(*cmd, cwd=tmp_path):
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--progress-bar", "off", "-r", "binder/requirements.txt", cwd=repo)
    run("bash", "binder/postBuild", cwd=repo)
    run(python, "-m", "pip", "check")
    location = run(
        python,
        "-c",
        "import altair, anywidget, great_tables, ipywidgets, vl_convert, wemix_nb;print(wemix_nb.__file__)",
    ).strip()
    assert Path(location).is_relative_to(venv), f"wemix_nb imported from {location}, not the venv"
    lab = run(python, "-m", "jupyterlab", "--version").strip()
    assert lab == binder_pins()["jupyterlab"]
    executed = tmp_path / "executed.ipynb"
    run(
        python,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--ExecutePreprocessor.timeout=300",
        "--ExecutePreprocessor.kernel_name=python3",
        "--output",
        str(executed),
        "tutorials/01-introduction.ipynb",
        cwd=repo,
    )
    assert "key numbers agree with R WeMix" in executed.read_text()
