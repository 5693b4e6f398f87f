"""result_display.ipynb in a real JupyterLab + headless Chromium, offline: the result's HTML report
(great-tables), the caterpillar and coefficient plots (Altair, offline renderer) and the Wald
widget, whose Test button must reach the kernel and put the test table in the output."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "result_display.ipynb"


@pytest.mark.browser
def test_result_display_notebook_renders(run_notebook_in_browser):
    run = run_notebook_in_browser(NOTEBOOK, expect={"tables": 1, "charts": 2, "widgets": 1})
    assert run.tables >= 3  # fixed effects, variance components, groups and weights
    assert run.charts >= 2
    assert run.button_clicked and run.click_changed_output, run.summary()
    assert not run.blocked_requests, f"the notebook tried the network: {run.blocked_requests}"
