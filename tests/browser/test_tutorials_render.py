"""Every tutorial in a real JupyterLab + headless Chromium, offline: all cells run without error,
and every great-tables table, Altair chart and widget is drawn (at least the counts below; the Wald
widget's Test button in chapter 1 must reach the kernel and show its result)."""

from __future__ import annotations

from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"

# notebook -> minimum number of great_tables tables, drawn charts and top-level widgets
RENDERED = {
    "01-introduction.ipynb": {"tables": 14, "charts": 4, "widgets": 1},
    "02-weighted-linear-models.ipynb": {"tables": 4, "charts": 1},
    "03-binary-outcomes.ipynb": {"tables": 6, "charts": 1},
    "04-why-weights-matter.ipynb": {"tables": 1, "charts": 2},
    "05-pisa-style-analysis.ipynb": {"tables": 7, "charts": 2},
    "06-real-data-california-schools.ipynb": {"tables": 3, "charts": 1},
}


def test_every_tutorial_is_rendered():
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == sorted(RENDERED)


@pytest.mark.browser
@pytest.mark.parametrize("name", list(RENDERED))
def test_tutorial_renders_offline(run_notebook_in_browser, name):
    run = run_notebook_in_browser(TUTORIALS / name, expect=RENDERED[name], timeout=150)
    assert not run.blocked_requests, f"the notebook tried the network: {run.blocked_requests}"
    if name.startswith("01-"):
        assert run.button_clicked and run.click_changed_output, run.summary()
