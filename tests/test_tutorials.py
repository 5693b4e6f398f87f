"""The tutorials in tutorials/ run top to bottom, check their key numbers, and ship clean.

Each notebook is executed with nbclient (kernel ``python3`` of this interpreter, 120 s per cell) in
the tutorials folder, as a reader would run it. Its last cell asserts the chapter's key numbers
against R WeMix's reference values (tutorials/wemix_reference_values.json) or, for the simulation,
the facts the text states, and prints a sentence this test looks for. The notebooks are stored
with their outputs (``scripts/store_tutorial_outputs.py``), so that they read on GitHub, without
execution counts or timings, and with outputs of the same kinds as a fresh run's; they import only
what the Binder environment installs.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"

# notebook -> text its last cell prints when every check in it passed
NOTEBOOKS = {
    "01-introduction.ipynb": "key numbers agree with R WeMix",
    "02-weighted-linear-models.ipynb": "key numbers agree with R WeMix",
    "03-binary-outcomes.ipynb": "key numbers agree with R WeMix",
    "04-why-weights-matter.ipynb": "The simulation shows what the text says.",
    "05-pisa-style-analysis.ipynb": "key numbers agree with R WeMix",
    "06-real-data-california-schools.ipynb": "key numbers agree with R WeMix",
}

# import name -> distribution name, for the packages the tutorials may import
DISTRIBUTIONS = {
    "altair": "altair",
    "numpy": "numpy",
    "pandas": "pandas",
    "great_tables": "great-tables",
    "ipywidgets": "ipywidgets",
    "scipy": "scipy",
}


def _text(output) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    return output.get("data", {}).get("text/plain", "")


def test_every_tutorial_is_tested():
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_tutorial_runs_and_checks_its_numbers(name):
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any error
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "some code cells did not run"
    errors = [o for c in code for o in c.outputs if o["output_type"] == "error"]
    assert not errors, errors
    last = "".join(_text(o) for o in code[-1].outputs)
    assert NOTEBOOKS[name] in last, f"{name}: the final check did not report success:\n{last}"
    stored = [c for c in nbformat.read(TUTORIALS / name, as_version=4).cells if c.cell_type == "code"]
    stale = [
        i
        for i, (old, new) in enumerate(zip(stored, code, strict=True))
        if _output_kinds(old) != _output_kinds(new)
    ]
    assert not stale, (
        f"{name}: the stored outputs of code cells {stale} are not what the code gives now; "
        "run `python scripts/store_tutorial_outputs.py` and commit the notebook"
    )


def _output_kinds(cell) -> list[tuple]:
    """What a cell shows, by kind: stream names and the MIME types of rich outputs (consecutive
    pieces of one stream count once: how a stream is split depends on timing)."""
    kinds: list[tuple] = []
    for output in cell.outputs:
        if output["output_type"] == "stream":
            kind: tuple = ("stream", output["name"])
        else:
            kind = (output["output_type"], *sorted(output.get("data", {})))
        if not (kinds and kind[0] == "stream" and kinds[-1] == kind):
            kinds.append(kind)
    return kinds


# written by Jupyter front ends and nbclient: when and how long a cell ran
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime")


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_tutorial_is_stored_with_outputs_and_without_run_details(name):
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counted = [
        i
        for i, c in enumerate(code)
        if c.execution_count is not None or any(o.get("execution_count") for o in c.outputs)
    ]
    assert not counted, f"{name}: code cells {counted} carry execution counts"
    timed = [i for i, c in enumerate(code) if any(k in c.metadata for k in VOLATILE_CELL_METADATA)]
    assert not timed, f"{name}: code cells {timed} carry timing metadata"
    errors = [o for c in code for o in c.outputs if o["output_type"] == "error"]
    assert not errors, f"{name} is stored with an error output"
    last = "".join(_text(o) for o in code[-1].outputs)
    assert NOTEBOOKS[name] in last, f"{name} is stored without its final check's success"
    rich = {mime for c in code for o in c.outputs for mime in o.get("data", {})}
    assert "text/html" in rich, f"{name} is stored without its tables"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_tutorial_imports_only_what_binder_installs(name):
    pins = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    modules = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"wemix_nb"}  # wemix_nb: binder/postBuild installs it
    unknown = modules - set(DISTRIBUTIONS)
    assert not unknown, f"{name} imports {unknown}; add them to binder/requirements.txt and DISTRIBUTIONS"
    missing = {DISTRIBUTIONS[m] for m in modules} - pins
    assert not missing, f"{name} needs {missing}, which binder/requirements.txt does not pin"


def test_reference_values_say_where_they_come_from():
    ref = json.loads((TUTORIALS / "wemix_reference_values.json").read_text())
    assert "WeMix" in ref["_about"]
    for section in ("pisa2012_like", "sleepstudy", "apiclus2"):
        assert ref[section]["_source"]
        for key, case in ref[section].items():
            if not key.startswith("_"):
                assert "call" in case and "lnl" in case or key == "wald", key


def test_readme_sends_binder_users_to_the_tutorials():
    """The Binder badge (or the text beside it) opens JupyterLab on tutorials/."""
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/badge" in readme
    badge_line = next(i for i, line in enumerate(readme.splitlines()) if "mybinder.org/badge" in line)
    near = "\n".join(readme.splitlines()[badge_line : badge_line + 4])
    assert "urlpath=lab/tree/tutorials" in near
    # the hosting address is not known in advance: the README says what to put in each form field
    for field in ("GitHub repository name or URL", "Git ref", "Path to a notebook file"):
        assert f"| {field} |" in readme, field
