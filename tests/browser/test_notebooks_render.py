"""Notebooks run in a real JupyterLab + headless Chromium, offline: tables, charts and widgets
must render, and clicking a widget button must reach the kernel and change an output."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent / "notebooks"

# notebook -> minimum number of great_tables tables, drawn charts and top-level widgets
RENDERED = {
    "smoke.ipynb": {"tables": 1, "charts": 1, "widgets": 1},
}


@pytest.mark.browser
@pytest.mark.parametrize("name", list(RENDERED))
def test_notebook_renders(run_notebook_in_browser, name):
    run = run_notebook_in_browser(NOTEBOOKS / name, expect=RENDERED[name])
    assert run.click_changed_output, run.summary()
    assert not run.blocked_requests, f"the notebook tried the network: {run.blocked_requests}"


@pytest.mark.browser
def test_runner_reports_what_did_not_render(run_notebook_in_browser):
    """The checker can fail: a CDN-loaded chart, an inert button, an exception, a skipped cell."""
    run = run_notebook_in_browser(NOTEBOOKS / "broken.ipynb", expect={"charts": 1}, check=False)
    assert not run.ok
    assert run.errors == 1 and "ZeroDivisionError" in run.error_texts[0]
    assert run.unexecuted_cells == 1
    assert run.charts == 0 and run.blocked_requests
    assert any("Error loading script" in f for f in run.render_failures)
    assert run.button_clicked and run.click_changed_output is False
    assert "expected at least 1 charts, saw 0" in run.problems
