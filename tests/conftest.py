"""Fixtures for every test: the ../shared folder, R reference cases, the browser notebook runner."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import reference
from browser import jupyterlab_runner

try:  # property-based tests (tests/test_properties.py): bounded for CI, deadline-free (fits vary)
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "wemix",
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.register_profile("wemix-long", parent=settings.get_profile("wemix"), max_examples=500)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "wemix"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder beside the repository (../shared); skips the test when it is absent."""
    reference.require_shared()
    return reference.SHARED


@pytest.fixture(scope="session")
def reference_case():
    """``reference_case(name) -> (data, expected)`` for an R reference fit in ../shared/reference:
    a ``wemix-r`` case (``"A1_sleepstudy_ri"``) or a ``vignette-pisa-like`` one (``"pisa_like_m1c"``
    or ``"m1c"``). ``data`` has R's factor levels as Categoricals; skips when ../shared is absent."""

    def load(name: str):
        if (reference.WEMIX_R / name).is_dir():
            return reference.wemix_case(name)
        return reference.vignette_case(name.removeprefix("pisa_like_"))

    return load


@pytest.fixture
def run_notebook_in_browser(tmp_path):
    """``run_notebook_in_browser(path, expect={"tables": 1, "charts": 2, "widgets": 1})`` runs the
    notebook in JupyterLab + headless Chromium and fails the test (with a full report and a
    screenshot in tmp_path) unless every cell ran cleanly and rendered at least what `expect` says.
    Returns a ``NotebookRun``; pass ``check=False`` to inspect a run without failing.
    Skips when Chromium is missing, except under CI, where that is a failure."""
    missing = []
    if not jupyterlab_runner.chromium_available():
        missing.append(f"{jupyterlab_runner.CHROMIUM} (apt-get install -y chromium)")
    for module in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the {module} package (pip install -e '.[browser]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(message + "; CI must run the browser tests", pytrace=False)
        pytest.skip(message)

    def run(notebook, expect=None, **kwargs):
        kwargs.setdefault("screenshot", tmp_path / f"{Path(notebook).stem}.png")
        kwargs.setdefault("screenshot_on_failure_only", True)
        return jupyterlab_runner.run_notebook_in_browser(notebook, expect, **kwargs)

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test that uses the browser runner is a `browser` test (so `-m "not browser"` works)."""
    for item in items:
        if "run_notebook_in_browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
