"""A report as Markdown: pipe tables, figures as PNG files next to the ``.md`` file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wemix_nb.display.report.content import Bullets, Code, Figure, Heading, Inline, Paragraph, Table

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.report.document import Report

__all__ = ["render"]

_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"})
_ALIGN = {"l": ":---", "r": "---:", "c": ":---:"}


def _escape(text: str) -> str:
    return text.translate(_SPECIAL)


def _inline(content: Inline | str) -> str:
    if isinstance(content, str):
        return _escape(content)
    out = []
    for span in content:
        if span.style == "code":
            tick = "``" if "`" in span.text else "`"
            out.append(f"{tick}{span.text}{tick}")
        elif span.style in ("italic", "bold") and span.text.strip():
            mark = "*" if span.style == "italic" else "**"
            lead = span.text[: len(span.text) - len(span.text.lstrip())]
            trail = span.text[len(span.text.rstrip()) :]
            out.append(f"{lead}{mark}{_escape(span.text.strip())}{mark}{trail}")
        else:
            out.append(_escape(span.text))
    return "".join(out)


def _caption(kind: str, number, title: str) -> str:
    return f"**{kind} {number}**\n\n*{_escape(title)}*\n"


def _table(table: Table) -> str:
    width = len(table.header)
    lines = [
        "| " + " | ".join(_inline(h) or " " for h in table.header) + " |",
        "| " + " | ".join(_ALIGN[a] for a in table.align) + " |",
    ]
    for row in table.rows:
        cells = list(row.cells) if not row.heading else [f"*{_escape(row.cells[0])}*"] + [""] * (width - 1)
        lines.append("| " + " | ".join(c if row.heading else _escape(c) for c in cells) + " |")
    notes = "\n\n".join(_inline(n) for n in table.notes)
    return (
        _caption("Table", table.number, table.title)
        + "\n"
        + "\n".join(lines)
        + ("\n\n" + notes if notes else "")
    )


def _figure(figure: Figure, stem: str) -> str:
    notes = "\n\n".join(_inline(n) for n in figure.notes)
    image = f"![{_escape(figure.title)}]({stem}-figure-{figure.number}.png)"
    return _caption("Figure", figure.number, figure.title) + "\n" + image + ("\n\n" + notes if notes else "")


def _block(block, stem: str) -> str:
    if isinstance(block, Heading):
        return "#" * (block.level + 1) + " " + _escape(block.text)
    if isinstance(block, Paragraph):
        return _inline(block.content)
    if isinstance(block, Bullets):
        return "\n".join("- " + _inline(item) for item in block.items)
    if isinstance(block, Code):
        return f"```python\n{block.text}\n```"
    if isinstance(block, Table):
        return _table(block)
    return _figure(block, stem)


def render(report: Report, figure_stem: str = "report") -> str:
    """The report as Markdown; figure ``N`` is the image ``<figure_stem>-figure-N.png``."""
    parts = [f"# {_escape(report.title)}", f"*{_escape(report.subtitle)}*"]
    parts += [_block(b, figure_stem) for b in report.blocks]
    return "\n\n".join(parts) + "\n"
