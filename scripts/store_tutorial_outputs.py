"""Run every tutorial and store it with its outputs, so that it reads on GitHub without running.

    python scripts/store_tutorial_outputs.py            # all tutorials
    python scripts/store_tutorial_outputs.py 03 05      # those whose names start so

Each notebook is executed as a reader would run it (kernel ``python3``, in ``tutorials/``) and
written back without what changes from run to run and says nothing to a reader: execution counts,
the cells' timing metadata, and the random element ids of HTML tables (great-tables, pandas
Styler) and widget models, renamed in order of appearance so that storing again changes nothing
the code did not change. Widget state is kept (it lets static renderers draw the widgets).
``tests/test_tutorials.py`` checks that the stored outputs are complete, free of errors and of the
same kinds as a fresh run's; CI re-executes every tutorial anyway.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"

# cell metadata written by Jupyter front ends and nbclient that records when and how long a run took
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop execution counts and timing metadata from every cell, in place; return ``nb``."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        for output in cell.outputs:
            if "execution_count" in output:
                output["execution_count"] = None
    return nb


# random names that every run draws anew, each with the places it is used: great-tables' table ids
# (ten lowercase letters: the element's id and its CSS selectors), pandas Styler's table uuids
# (T_ and five hex digits, used as a prefix) and ipywidgets' model ids (32 hex digits, in outputs
# and in the saved widget state)
RANDOM_IDS = (
    (re.compile(r'<div id=\\"([a-z]{10})\\"'), "gt{:08d}", ('\\"{}\\"', "#{}")),
    (re.compile(r'<table id=\\"(T_[0-9a-f]{5})\\"'), "T_{:05d}", ("{}",)),
    (re.compile(r'(?:IPY_MODEL_|"model_id": ")([0-9a-f]{32})'), "{:032d}", ("{}",)),
)


# the address in a default repr (``<pandas.io.formats.style.Styler at 0x7f...>``, the text fallback
# of a table) differs at every run and means nothing once stored
ADDRESS = re.compile(r" at 0x[0-9a-f]{6,16}>")
# warnings name the cell's file in the kernel's folder, which carries the kernel's process id
KERNEL_FOLDER = re.compile(r"/tmp/ipykernel_[0-9]+/")


def stable_ids(text: str) -> str:
    """``text`` (a stored notebook) with its random element ids renamed in order of appearance,
    object addresses dropped from default reprs and the kernel's process id from file names."""
    text = KERNEL_FOLDER.sub("/tmp/ipykernel/", ADDRESS.sub(">", text))
    for pattern, template, places in RANDOM_IDS:
        names: dict[str, str] = {}
        for match in pattern.finditer(text):
            names.setdefault(match.group(1), template.format(len(names)))
        for old, new in names.items():
            for place in places:
                text = text.replace(place.format(old), place.format(new))
    return text


def store(path: Path, timeout: int = 300) -> int:
    """Execute the notebook at ``path`` and write it back with outputs; return its size in bytes."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    strip_volatile(nb)
    nbformat.validate(nb)
    text = stable_ids(nbformat.writes(nb))
    nbformat.validate(nbformat.reads(text, as_version=4))
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path.stat().st_size


def main(prefixes: list[str]) -> None:
    for path in sorted(TUTORIALS.glob("*.ipynb")):
        if prefixes and not any(path.name.startswith(p) for p in prefixes):
            continue
        size = store(path)
        print(f"{path.name}: stored with outputs, {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main(sys.argv[1:])
