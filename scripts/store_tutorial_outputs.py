"""Run every tutorial and store it with its outputs, so that it reads on GitHub without running.

    python scripts/store_tutorial_outputs.py            # all tutorials
    python scripts/store_tutorial_outputs.py 03 05      # those whose names start so

Each notebook is executed as a reader would run it (kernel ``python3``, in ``tutorials/``) and
written back without what changes from run to run and says nothing to a reader: execution counts
and the cells' timing metadata. Widget state is kept (it lets static renderers draw the widgets).
``tests/test_tutorials.py`` checks that the stored outputs are complete, free of errors and of the
same kinds as a fresh run's; CI re-executes every tutorial anyway.
"""

from __future__ import annotations

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
    nbformat.write(nb, path)
    return path.stat().st_size


def main(prefixes: list[str]) -> None:
    for path in sorted(TUTORIALS.glob("*.ipynb")):
        if prefixes and not any(path.name.startswith(p) for p in prefixes):
            continue
        size = store(path)
        print(f"{path.name}: stored with outputs, {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main(sys.argv[1:])
