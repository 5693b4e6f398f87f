"""self_rendering_charts.ipynb in a real JupyterLab + headless Chromium, offline: charts made
self-rendering by wemix_nb.display.render draw with no enable_offline_charts() call and no network,
and Altair's global renderer and data transformer are still the defaults afterwards (the notebook
asserts it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "self_rendering_charts.ipynb"


def test_notebook_sets_nothing_up():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "self_rendering(" in code
    for set_up in ("enable_offline_charts", "renderers.enable", "data_transformers.enable"):
        assert set_up not in code


@pytest.mark.browser
def test_self_rendering_charts_draw_offline_without_set_up(run_notebook_in_browser):
    run = run_notebook_in_browser(NOTEBOOK, expect={"charts": 2})
    assert not run.blocked_requests, f"the notebook tried the network: {run.blocked_requests}"
