"""Notebook displays that never fail: if the HTML layer raises, the text form is shown instead.

A ``_repr_html_`` that raises makes Jupyter print a traceback where the result should be, and
stops "Run All" in some front ends. :func:`html_or_text` builds the HTML and, if anything goes
wrong (a missing or incompatible great-tables, a bug in a table), returns the object's text form
in a ``<pre>`` block under a one-line reason.
"""

from __future__ import annotations

import html
from collections.abc import Callable

__all__ = ["html_or_text", "report_html"]

#: the longest reason shown (the exception's first line, cut)
REASON_CHARS = 200


def _reason(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _first_text(texts: tuple[Callable[[], str], ...]) -> str:
    for text in texts:
        try:
            return str(text())
        except Exception:  # try the next, simpler form
            continue
    return ""


def html_or_text(build: Callable[[], str], *texts: Callable[[], str]) -> str:
    """``build()``, or the first of ``texts`` that works in ``<pre>`` with the reason ``build``
    failed.

    Parameters
    ----------
    build
        Makes the HTML (e.g. great-tables tables).
    texts
        Makes the text form, from the fullest to the simplest (e.g. the summary, then ``repr``).

    Returns
    -------
    str
        HTML; never raises (short of ``KeyboardInterrupt`` and the like).
    """
    try:
        return build()
    except Exception as exc:
        body = _first_text(texts)
        note = html.escape(f"HTML report unavailable ({_reason(exc)}); the text summary follows.")
        return (
            '<div class="wemix-text-fallback">'
            f'<p style="color:#8a4b00;font-size:smaller;margin:0 0 4px 0;">{note}</p>'
            f"<pre>{html.escape(body)}</pre></div>"
        )


def report_html(result) -> str:
    """A result's HTML report (``MixResult._repr_html_``), or its text summary."""

    def report() -> str:
        from wemix_nb.display.html import result_html

        return result_html(result)

    return html_or_text(report, lambda: str(result.summary()), lambda: str(result), lambda: repr(result))
