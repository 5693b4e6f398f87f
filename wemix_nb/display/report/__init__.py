"""Report drafting: one call turns fits into a report with a methods paragraph, tables, figures,
diagnostics and a reproducibility appendix, as HTML, Word, LaTeX or Markdown.

>>> rep = wemix_nb.report(fit)              # doctest: +SKIP
>>> rep                                     # shows itself in a notebook    # doctest: +SKIP
>>> rep.save("analysis.docx")               # or .html, .tex, .md           # doctest: +SKIP

How it is built, bottom up:

- :mod:`~wemix_nb.display.report.facts`: each fit's :class:`MethodFacts`, read from its options,
  model frame and variance components;
- :mod:`~wemix_nb.display.report.methods`: the facts as sentences (the methods paragraph) and the
  references they cite;
- :mod:`~wemix_nb.display.report.style`: the number style (APA 7, decimals chosen per column);
- :mod:`~wemix_nb.display.report.tables`, ``checks``, ``figures``, ``appendix``: the tables, the
  diagnostics, the figures and the appendix, as format-free blocks
  (:mod:`~wemix_nb.display.report.content`);
- ``write_html``, ``write_docx``, ``write_latex``, ``write_markdown``: the writers.
"""

from __future__ import annotations

from wemix_nb.display.report.document import Report, report
from wemix_nb.display.report.facts import MethodFacts, method_facts
from wemix_nb.display.report.methods import Sentence, methods_paragraph, methods_sentences

__all__ = [
    "MethodFacts",
    "Report",
    "Sentence",
    "method_facts",
    "methods_paragraph",
    "methods_sentences",
    "report",
]
