"""The documentation site builds with no warning, documents every public name, and shows its
tables and charts offline.

One strict Sphinx build (``sphinx-build -W --keep-going``, every tutorial executed, any cell error
fails it) into a temporary folder; then its object inventory is checked against the public modules'
``__all__``, and the built index and a tutorial page are opened in headless Chromium with every
request that leaves the built folder blocked. Marked ``docs`` (about two minutes, most of it the
tutorials): ``python -m pytest -m "not docs"`` (or ``--ignore=tests/browser``) skips it locally; the
default run includes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import in_ci

import wemix_nb
from browser import jupyterlab_runner

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TUTORIAL_PAGE = "tutorials/01-introduction.html"

# modules whose __all__ is public API: every name in them must be in the reference
PUBLIC_MODULES = [
    "wemix_nb",
    "wemix_nb.errors",
    "wemix_nb.datasets",
    "wemix_nb.estimation.families",  # wemix_nb.families
    "wemix_nb.display",
    "wemix_nb.display.tables",
    "wemix_nb.display.html",
    "wemix_nb.display.plots",
    "wemix_nb.display.render",
    "wemix_nb.display.widgets",
    "wemix_nb.display.maketables",
    "wemix_nb.display.report",
    "wemix_nb.display.report.facts",
    "wemix_nb.display.report.methods",
    "wemix_nb.display.report.style",
    "wemix_nb.display.report.content",
]
# classes whose public methods and properties must each have an entry
RESULT_CLASSES = ["MixResult", "PVResult", "MixSummary", "WaldTest", "WeightSummary", "ReplicateWeights"]

pytestmark = pytest.mark.docs


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        message = f"the docs test needs {', '.join(missing)} (pip install -e '.[docs]')"
        if in_ci():
            pytest.fail(message + "; CI must build the documentation", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The HTML site, built strictly; the test fails with Sphinx's output if the build does."""
    _require("sphinx", "myst_nb", "pydata_sphinx_theme", "numpydoc", "latex2mathml")
    out = tmp_path_factory.mktemp("docs") / "html"
    env = dict(os.environ)
    # the tutorials' kernels import this checkout's package
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    # execute every tutorial whatever a local cache holds
    command += ["-D", "nb_execution_mode=force", str(DOCS), str(out)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        pytest.fail(
            f"sphinx-build failed ({run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}",
            pytrace=False,
        )
    return out


def _inventory(site: Path) -> set[str]:
    """The object names of Sphinx's ``objects.inv`` (a 4-line header, then zlib-compressed lines
    ``name domain:role priority uri display-name``)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    lines = zlib.decompress(raw[header_end:]).decode("utf-8").splitlines()
    return {line.split(" ", 1)[0] for line in lines if line.split(" ", 2)[1].startswith("py:")}


def _resolve(name: str) -> object | None:
    """The Python object an inventory name stands for (None if it cannot be imported)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part, None)
        return obj
    return None


def _is_documented(module: str, name: str, names: set[str], objects: list[object]) -> bool:
    if f"{module}.{name}" in names:
        return True
    value = getattr(importlib.import_module(module), name)
    # a re-export (wemix_nb.compare is wemix_nb.display.html.compare) counts once, wherever it is
    if inspect.ismodule(value) or inspect.isclass(value) or callable(value):
        return any(value is obj for obj in objects)
    return False


def test_every_public_name_is_in_the_api_reference(site):
    names = _inventory(site)
    objects = [obj for obj in map(_resolve, names) if obj is not None]
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if not _is_documented(module, name, names, objects)
    ]
    assert not missing, f"public names missing from docs/api/index.md: {missing}"


def test_result_classes_document_their_methods_and_properties(site):
    names = _inventory(site)
    missing = []
    for class_name in RESULT_CLASSES:
        cls = getattr(wemix_nb, class_name)
        for member, value in vars(cls).items():
            if member.startswith("_") or not (callable(value) or isinstance(value, property)):
                continue
            if f"wemix_nb.{class_name}.{member}" not in names:
                missing.append(f"{class_name}.{member}")
    assert not missing, f"undocumented members (add a docstring): {missing}"


def test_index_and_a_tutorial_show_tables_and_charts_offline(site, tmp_path):
    if not jupyterlab_runner.chromium_available():
        message = f"the docs browser check needs {jupyterlab_runner.CHROMIUM} (apt-get install -y chromium)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    _require("playwright")
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(site.as_uri()):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=jupyterlab_runner.CHROMIUM, args=jupyterlab_runner.CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", route)
        try:
            page.goto((site / "index.html").as_uri())
            page.wait_for_load_state("load")
            nav = page.locator("nav a").all_inner_texts()
            for title in ("Tutorials", "API reference", "How it computes", "Weights", "From R WeMix"):
                assert any(title in text for text in nav), f"index: no link to {title!r} in {nav}"

            page.goto((site / TUTORIAL_PAGE).as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / "tutorial.png"), full_page=True)
            counts = page.evaluate(
                """() => ({
                    reports: document.querySelectorAll('table.gt_table').length,
                    charts: [...document.querySelectorAll('img')].filter(
                        i => /\\.svg$|\\.png$|^data:image/.test(i.getAttribute('src') || '')
                             && i.complete && i.naturalWidth > 100).length,
                    widgets: document.querySelectorAll('.wemix-static-widget').length,
                    broken: [...document.querySelectorAll('img')].filter(i => !i.naturalWidth).length,
                    errors: document.querySelectorAll('.output.traceback').length,
                    text: document.body.innerText,
                })"""
            )
        finally:
            browser.close()
    assert not outside, f"the pages requested something outside the site: {outside}"
    assert counts["reports"] >= 3, f"{TUTORIAL_PAGE}: {counts['reports']} great-tables reports"
    assert counts["charts"] >= 3, f"{TUTORIAL_PAGE}: {counts['charts']} drawn charts"
    assert counts["widgets"] >= 1, f"{TUTORIAL_PAGE}: the Wald widget's static picture is missing"
    assert counts["broken"] == 0, f"{TUTORIAL_PAGE}: {counts['broken']} images did not load"
    assert counts["errors"] == 0, f"{TUTORIAL_PAGE}: a cell shows a traceback"
    assert "chart not drawn" not in counts["text"]
