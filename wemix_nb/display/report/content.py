"""What a report holds, independent of the output format: headings, paragraphs of styled text,
lists, code, tables of formatted cells and figures.

:func:`~wemix_nb.display.report.report` builds a list of these blocks once; the HTML, Word,
LaTeX and Markdown writers only lay them out, so every format shows the same words and the same
formatted numbers. Text is a tuple of :class:`Span` (plain, italic, bold or code), so that the
writers can set statistical symbols in italics and column names in a fixed-width font without
parsing markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Bullets",
    "Code",
    "Figure",
    "Heading",
    "Paragraph",
    "Row",
    "Span",
    "Table",
    "bold",
    "code",
    "inline",
    "italic",
    "text_of",
]

STYLES = ("", "italic", "bold", "code")


@dataclass(frozen=True)
class Span:
    """A run of text in one style: ``""`` (plain), ``"italic"``, ``"bold"`` or ``"code"``."""

    text: str
    style: str = ""


Inline = tuple[Span, ...]


def italic(text: str) -> Span:
    """An italic span (statistical symbols: *p*, *SE*, *t*)."""
    return Span(text, "italic")


def bold(text: str) -> Span:
    """A bold span."""
    return Span(text, "bold")


def code(text: str) -> Span:
    """A fixed-width span (column names, formulas)."""
    return Span(text, "code")


def inline(*parts: str | Span | tuple) -> Inline:
    """Text from strings (plain), spans and other inline texts, adjacent plain runs merged."""
    spans: list[Span] = []
    for part in parts:
        if isinstance(part, str):
            new = [Span(part)]
        elif isinstance(part, Span):
            new = [part]
        else:
            new = list(inline(*part))
        for span in new:
            if not span.text:
                continue
            if spans and spans[-1].style == span.style == "":
                spans[-1] = Span(spans[-1].text + span.text)
            else:
                spans.append(span)
    return tuple(spans)


def text_of(content: str | Inline) -> str:
    """The plain text of an inline text (or a string)."""
    if isinstance(content, str):
        return content
    return "".join(span.text for span in content)


@dataclass(frozen=True)
class Heading:
    """A section heading (``level`` 1 or 2)."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; ``key`` names it for tests and readers (``"methods"``)."""

    content: Inline
    key: str = ""

    @property
    def text(self) -> str:
        """The paragraph as plain text."""
        return text_of(self.content)


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: tuple[Inline, ...]


@dataclass(frozen=True)
class Code:
    """Preformatted code (the calls of the reproducibility appendix)."""

    text: str


@dataclass(frozen=True)
class Row:
    """A table row of formatted cells; a ``heading`` row is one label spanning the table."""

    cells: tuple[str, ...]
    heading: bool = False


@dataclass(frozen=True)
class Table:
    """A numbered table, APA style: number and title above, notes below.

    Attributes
    ----------
    key
        ``"fixed"``, ``"variance"``, ``"weights"``, ``"data"``, ``"software"``.
    number
        Its number in the report (``1``, or ``"A1"`` in an appendix).
    title
        The title (set in italics).
    header
        One text per column.
    rows
        The body, formatted.
    align
        One letter per column: ``"l"``, ``"r"`` or ``"c"``.
    notes
        The notes under the table (the first begins with *Note.*).
    """

    key: str
    number: int | str
    title: str
    header: tuple[Inline, ...]
    rows: tuple[Row, ...]
    align: str
    notes: tuple[Inline, ...] = ()

    def body(self) -> list[list[str]]:
        """The body rows' cells (heading rows as one cell)."""
        return [list(row.cells) for row in self.rows]


@dataclass(eq=False)
class Figure:
    """A numbered figure: an Altair chart drawn by vl-convert (SVG for HTML, PNG for Word, LaTeX
    and Markdown), number and title above, notes below. The drawings are made once and kept."""

    key: str
    number: int
    title: str
    chart: Any
    notes: tuple[Inline, ...] = ()
    _svg: str | None = field(default=None, repr=False)
    _png: bytes | None = field(default=None, repr=False)

    def svg(self) -> str:
        """The chart as SVG text (no XML declaration: ready to inline in HTML)."""
        if self._svg is None:
            from wemix_nb.display.report.drawing import to_svg

            self._svg = to_svg(self.chart)
        return self._svg

    def png(self) -> bytes:
        """The chart as PNG bytes at twice the screen resolution (for print)."""
        if self._png is None:
            from wemix_nb.display.report.drawing import to_png

            self._png = to_png(self.chart)
        return self._png


Block = Heading | Paragraph | Bullets | Code | Table | Figure
