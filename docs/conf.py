"""Sphinx configuration of the wemix_nb documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the repository root
(``pip install -e ".[docs]"`` first). The tutorials (``docs/tutorials`` links to ``../tutorials``)
are executed during the build, and any error in a cell fails it. ``WEMIX_DOCS_EXECUTE=off`` (or
``cache``) skips (or caches) their execution, for quick work on the prose pages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import wemix_nb  # noqa: E402  (after the path set-up)

project = "wemix_nb"
author = "the wemix_nb developers"
copyright = "the wemix_nb developers"
release = wemix_nb.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (MyST) and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",  # numpy-style docstrings
    "mathml",  # docs/_ext/mathml.py: maths as MathML at build time (no MathJax, no network)
    "static_widgets",  # docs/_ext/static_widgets.py: widget outputs as static HTML/SVG
]

# .rst first: autosummary writes its generated pages (reStructuredText) with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "tutorials/wemix_reference_values.json"]
templates_path = ["_templates"]
root_doc = "index"
language = "en"

# -- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
autosummary_generate_overwrite = True
autosummary_imported_members = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"  # numpydoc's Parameters/Returns sections carry the types
autodoc_member_order = "groupwise"
numpydoc_show_class_members = False  # the class template lists members instead
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
add_module_names = False

# -- MyST and notebooks ----------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# every tutorial runs at each build; an error in any cell fails the build
nb_execution_mode = os.environ.get("WEMIX_DOCS_EXECUTE", "force")
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_execution_excludepatterns: list[str] = []
# Charts from wemix_nb carry Vega 5, SVG (or PNG) and text: the site shows the picture, which needs
# no JavaScript and no network. The Vega spec is left to live notebooks.
# myst-nb has no renderer for the Vega mimetype and says so for every chart; the picture beside it
# is what is shown, and an output with nothing renderable still fails the build (mime_priority)
suppress_warnings = ["mystnb.unknown_mime_type"]
nb_mime_priority_overrides = [
    ("html", "image/svg+xml", 25),
    ("html", "image/png", 26),
]
# static_widgets.py replaces widget outputs by static pictures; no widget JavaScript is loaded
nb_ipywidgets_js: dict[str, dict[str, str]] = {}

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"wemix_nb {release}"
html_static_path = ["_static"]
html_css_files = ["wemix.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": ["sidebar-nav-bs"], "index": []}
html_show_sourcelink = False
html_copy_source = False
html_math_renderer = "mathml"
autosummary_ignore_module_all = False


def _python_warnings_to_sphinx(app) -> None:
    """numpydoc reports docstrings it cannot parse as Python warnings, which ``-W`` does not see;
    pass them to Sphinx's logger so that they fail a strict build too."""
    import warnings

    from sphinx.util import logging

    logger = logging.getLogger("wemix_docs")
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if "numpydoc" in filename or "autodoc" in filename or "autosummary" in filename:
            logger.warning("%s: %s", category.__name__, message)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def setup(app) -> None:
    _python_warnings_to_sphinx(app)
