"""A saved HTML report opens in headless Chromium with no network: every table and figure is drawn
and the page asks for nothing outside its own file (a plain page check, no JupyterLab)."""

from __future__ import annotations

import warnings

import pytest
from conftest import in_ci

import wemix_nb
from browser import jupyterlab_runner

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A report of two fits (sandwich; plausible values x Fay replicates) saved as HTML."""
    data = wemix_nb.datasets.pisa2012_like(design=True)
    weights = ["w_fstuwt", "w_fschwt"]
    rhs = "escs + st04q01 + (1|schoolid)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [
            wemix_nb.mix(f"pv1math ~ {rhs}", data, weights=weights),
            wemix_nb.mix(
                f"PV{{1..5}}MATH ~ {rhs}",
                data,
                weights=weights,
                replicate_weights="W_FSTR{1..80}",
                replicate_method="fay",
                progress=False,
            ),
        ]
    drafted = wemix_nb.report(fits, names=["Sandwich", "PVs x Fay"])
    folder = tmp_path_factory.mktemp("report")
    return drafted, drafted.save(folder / "analysis.html")


def _require_browser() -> None:
    if not jupyterlab_runner.chromium_available():
        message = f"the report page check needs {jupyterlab_runner.CHROMIUM} (apt-get install -y chromium)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    pytest.importorskip("playwright")


PAGE_FACTS = """() => {
    const box = (e) => e.getBoundingClientRect();
    const tables = [...document.querySelectorAll('table.wemix-apa')].map(t => ({
        rows: t.querySelectorAll('tbody tr').length,
        width: box(t).width, height: box(t).height,
        text: t.innerText,
    }));
    const figures = [...document.querySelectorAll('figure.wemix-figure')].map(f => {
        const svg = f.querySelector('svg');
        return {
            width: svg ? box(svg).width : 0, height: svg ? box(svg).height : 0,
            marks: svg ? svg.querySelectorAll('path, line, circle, rect').length : 0,
            labels: svg ? svg.querySelectorAll('text').length : 0,
        };
    });
    return {tables, figures, methods: document.querySelector('p.wemix-methods').innerText,
            headings: [...document.querySelectorAll('h2')].map(h => h.innerText)};
}"""


def test_the_html_report_draws_every_table_and_figure_offline(saved, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    drafted, path = saved
    outside: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url == path.as_uri():
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=jupyterlab_runner.CHROMIUM, args=jupyterlab_runner.CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.route("**/*", route)
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            facts = page.evaluate(PAGE_FACTS)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert not outside, f"the report requested something outside its file: {outside}"
    assert facts["headings"] == [
        "Method",
        "Results",
        "Diagnostics",
        "Appendix: Reproducibility",
        "References",
    ]
    assert facts["methods"] == drafted.methods
    assert len(facts["tables"]) == len(drafted.tables) == 5
    for table, expected in zip(facts["tables"], drafted.tables.values(), strict=True):
        assert table["rows"] == len(expected.rows) and table["width"] > 100 and table["height"] > 20
    assert "<.001" not in facts["tables"][0]["text"]  # several fits: asterisks, not p columns
    assert "467.5***" in facts["tables"][0]["text"]
    assert len(facts["figures"]) == len(drafted.figures) == 3
    for figure in facts["figures"]:
        assert figure["width"] > 200 and figure["height"] > 100, figure
        assert figure["marks"] > 10 and figure["labels"] > 5, figure
