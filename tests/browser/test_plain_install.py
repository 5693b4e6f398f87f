"""A plain `pip install` gives the whole notebook experience, offline.

A fresh virtual environment gets only `pip install <a copy of the repository>` (no extras) and
ipykernel (what makes it a Jupyter kernel). JupyterLab (from the test environment) runs
notebooks/plain_install.ipynb with that environment's Python as its kernel and every request to the
internet blocked: the fit's report, plot_ranef(), plot_coef() and compare([...]).plot() must all draw,
with no enable_offline_charts() call, and Altair's global settings must be unchanged afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(__file__).parent / "notebooks" / "plain_install.ipynb"


def _copy_repository(target: Path) -> None:
    """The repository's files as git sees them (building in place would leave build/ behind)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = ROOT / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory) -> Path:
    """The Python of a fresh venv holding `pip install .` and ipykernel, nothing else."""
    tmp = tmp_path_factory.mktemp("plain")
    repo = tmp / "repo"
    _copy_repository(repo)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--progress-bar", "off",
         "--disable-pip-version-check", str(repo), "ipykernel"],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, f"pip install failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return python


def test_notebook_sets_nothing_up():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for call in ("plot_ranef()", "plot_coef()", ".plot(", "fit\n"):
        assert call in code
    for set_up in ("enable_offline_charts", "renderers.enable", "data_transformers.enable", "self_rendering"):
        assert set_up not in code


@pytest.mark.browser
def test_plain_install_renders_report_and_charts_offline(run_notebook_in_browser, plain_python, tmp_path):
    listed = subprocess.run(
        [str(plain_python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert {"wemix_nb", "great-tables", "altair", "vl-convert-python"} <= {
        n.replace("-", "_") if n.startswith("wemix") else n for n in installed
    }
    assert not {"jupyterlab", "playwright", "dask"} & installed  # a plain install, no extras
    notebook = tmp_path / NOTEBOOK.name  # run outside the repository: nothing to import from there
    shutil.copy(NOTEBOOK, notebook)
    run = run_notebook_in_browser(
        notebook, expect={"tables": 3, "charts": 3}, kernel_python=plain_python, timeout=180
    )
    assert not run.blocked_requests, f"the notebook tried the network: {run.blocked_requests}"
    assert run.errors == 0 and run.unexecuted_cells == 0
