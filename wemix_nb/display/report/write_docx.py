"""A report as a Word document, written with python-docx (``pip install 'wemix_nb[report]'``):
APA-style tables (rules above and below the header and below the body only), figures as PNG."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from wemix_nb.display.report.content import Bullets, Code, Figure, Heading, Inline, Paragraph, Table

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.report.document import Report

__all__ = ["MONOSPACE", "load_docx", "render"]

MONOSPACE = "Consolas"
_RULE = {"val": "single", "sz": "8", "space": "0", "color": "000000"}
_THICK = {**_RULE, "sz": "12"}


def load_docx():
    """The ``docx`` module, or an ImportError that says how to install it."""
    try:
        import docx
    except ImportError as exc:
        raise ImportError(
            "Saving a report as .docx needs python-docx: pip install 'wemix_nb[report]' "
            "(or pip install python-docx). HTML, LaTeX and Markdown need nothing more."
        ) from exc
    return docx


def _runs(paragraph, content: Inline | str, size=None) -> None:
    spans = [(content, "")] if isinstance(content, str) else [(s.text, s.style) for s in content]
    for text, style in spans:
        run = paragraph.add_run(text)
        run.italic = style == "italic" or None
        run.bold = style == "bold" or None
        if style == "code":
            run.font.name = MONOSPACE
        if size is not None:
            run.font.size = size


def _borders(cell, **sides) -> None:
    """Set the borders of a table cell (``top``/``bottom`` -> attributes of ``w:top``...)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    properties = cell._tc.get_or_add_tcPr()
    borders = properties.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        properties.append(borders)
    for side, attributes in sides.items():
        element = OxmlElement(f"w:{side}")
        for key, value in attributes.items():
            element.set(qn(f"w:{key}"), value)
        borders.append(element)


def _caption(document, kind: str, number, title: str) -> None:
    label = document.add_paragraph()
    label.add_run(f"{kind} {number}").bold = True
    label.paragraph_format.space_after = 0
    label.paragraph_format.keep_with_next = True
    heading = document.add_paragraph()
    heading.add_run(title).italic = True
    heading.paragraph_format.keep_with_next = True


def _alignment(letter: str):
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    return {"l": WD_ALIGN_PARAGRAPH.LEFT, "r": WD_ALIGN_PARAGRAPH.RIGHT, "c": WD_ALIGN_PARAGRAPH.CENTER}[
        letter
    ]


def _tight(paragraph) -> None:
    """No space around a table cell's paragraph, single line spacing (rows as in a typeset table)."""
    from docx.shared import Pt

    paragraph.paragraph_format.space_before = Pt(1)
    paragraph.paragraph_format.space_after = Pt(1)
    paragraph.paragraph_format.line_spacing = 1.0


def _fill_row(cells, texts, align, size, header: bool) -> None:
    for cell, text, letter in zip(cells, texts, align, strict=True):
        paragraph = cell.paragraphs[0]
        paragraph.alignment = _alignment(letter)
        _tight(paragraph)
        _runs(paragraph, text, size)


def _table(document, table: Table) -> None:
    from docx.shared import Pt

    _caption(document, "Table", table.number, table.title)
    width = len(table.header)
    grid = document.add_table(rows=1 + len(table.rows), cols=width)
    size = Pt(9.5)
    _fill_row(grid.rows[0].cells, table.header, table.align, size, header=True)
    for cell in grid.rows[0].cells:
        _borders(cell, top=_THICK, bottom=_RULE)
    for i, row in enumerate(table.rows, start=1):
        cells = grid.rows[i].cells
        if row.heading:
            merged = cells[0].merge(cells[-1])
            _tight(merged.paragraphs[0])
            run = merged.paragraphs[0].add_run(row.cells[0])
            run.italic, run.font.size = True, size
        else:
            _fill_row(cells, row.cells, table.align, size, header=False)
    for cell in grid.rows[-1].cells:
        _borders(cell, bottom=_THICK)
    for note in table.notes:
        paragraph = document.add_paragraph()
        _runs(paragraph, note, Pt(9))


def _figure(document, figure: Figure) -> None:
    from docx.shared import Inches, Pt

    _caption(document, "Figure", figure.number, figure.title)
    document.add_picture(io.BytesIO(figure.png()), width=Inches(5.5))
    for note in figure.notes:
        _runs(document.add_paragraph(), note, Pt(9))


def _block(document, block) -> None:
    from docx.shared import Pt

    if isinstance(block, Heading):
        document.add_heading(block.text, level=block.level)
    elif isinstance(block, Paragraph):
        _runs(document.add_paragraph(), block.content)
    elif isinstance(block, Bullets):
        for item in block.items:
            _runs(document.add_paragraph(style="List Bullet"), item)
    elif isinstance(block, Code):
        for line in block.text.splitlines() or [""]:
            paragraph = document.add_paragraph()
            paragraph.paragraph_format.space_after = 0
            run = paragraph.add_run(line)
            run.font.name, run.font.size = MONOSPACE, Pt(8.5)
    elif isinstance(block, Table):
        _table(document, block)
    else:
        _figure(document, block)


def render(report: Report) -> bytes:
    """The report as the bytes of a ``.docx`` file."""
    docx = load_docx()
    document = docx.Document()
    document.core_properties.title = report.title
    document.core_properties.comments = report.subtitle
    document.add_heading(report.title, level=0)
    document.add_paragraph().add_run(report.subtitle).italic = True
    for block in report.blocks:
        _block(document, block)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
