"""Render maths as MathML when the site is built, so pages need no MathJax and no network.

Browsers draw MathML Core natively (Chromium 109+, Firefox, Safari). Conversion uses the pure-Python
``latex2mathml`` package; it covers the LaTeX used on these pages (fractions, sums, integrals,
accents, bold symbols, sub- and superscripts), not environments such as ``aligned``: write one
display equation per line instead.
"""

from __future__ import annotations

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _mathml(self, node: nodes.Element, latex: str, display: str) -> str:
    try:
        return convert(latex, display=display)
    except Exception as exc:  # a formula latex2mathml cannot read is a warning (-W: an error)
        logger.warning("cannot convert to MathML: %s (%s)", latex, exc, location=node)
        return f"<code>{self.encode(latex)}</code>"


def visit_math(self, node: nodes.Element) -> None:
    self.body.append(f'<span class="math">{_mathml(self, node, node.astext(), "inline")}</span>')
    raise nodes.SkipNode


def visit_displaymath(self, node: nodes.Element) -> None:
    if node.get("label"):
        self.body.append(f'<span id="{node["ids"][0]}"></span>' if node.get("ids") else "")
    # TeX sets display equations in display style: limits under sums, full-size fractions
    latex = "\\displaystyle " + node.astext()
    if node.get("number"):
        number = f'<span class="eqno">({node["number"]})</span>'
    else:
        number = ""
    self.body.append(f'<div class="math-block">{_mathml(self, node, latex, "block")}{number}</div>')
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict:
    try:
        app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    except ExtensionError:  # already registered (a second build in the same process)
        pass
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
