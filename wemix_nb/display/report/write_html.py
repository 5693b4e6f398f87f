"""A report as HTML: one self-contained page (styles inline, figures as inline SVG, no script, no
font, image or style sheet fetched from anywhere) or, for the notebook, the same content as a
fragment whose styles are scoped to it."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from wemix_nb.display.report.content import Bullets, Code, Figure, Heading, Inline, Paragraph, Table

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.report.document import Report

__all__ = ["CSS", "render"]

#: the report's styles, scoped to ``.wemix-report`` (APA-like tables: three horizontal rules)
CSS = """
.wemix-report { font-family: Georgia, 'Times New Roman', serif; line-height: 1.5; color: #111;
  max-width: 54em; }
.wemix-report h1.wemix-title { font-size: 1.6em; margin: .2em 0; }
.wemix-report .wemix-subtitle { color: #555; font-size: .9em; margin-bottom: 1em; }
.wemix-report h2 { font-size: 1.25em; margin: 1.4em 0 .5em; }
.wemix-report p { margin: .5em 0; text-align: left; }
article.wemix-report :not(pre) > code, article.wemix-report pre > code {
  font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .88em; background: none;
  padding: 0; border: none; }
.wemix-report pre { background: #f6f6f6; padding: .6em .8em; overflow-x: auto; font-size: .85em;
  line-height: 1.35; }
.wemix-report .wemix-caption { margin: 1.4em 0 .3em; }
.wemix-report .wemix-number { font-weight: bold; display: block; }
.wemix-report .wemix-caption-title { font-style: italic; display: block; }
.wemix-report table.wemix-apa { border-collapse: collapse; margin: .2em 0; font-size: .92em;
  background: transparent; }
.wemix-report table.wemix-apa thead th { border-top: 2px solid #111; border-bottom: 1px solid #111;
  padding: .3em .7em; font-weight: normal; background: transparent; }
.wemix-report table.wemix-apa tbody tr { background: transparent; }
.wemix-report table.wemix-apa tbody tr:last-child td { border-bottom: 2px solid #111; }
.wemix-report table.wemix-apa td { padding: .12em .7em; border: none; white-space: nowrap; }
.wemix-report table.wemix-apa td.wemix-heading { font-style: italic; padding-top: .45em;
  text-align: left; }
.wemix-report table.wemix-apa .wemix-l { text-align: left; }
.wemix-report table.wemix-apa .wemix-r { text-align: right; }
.wemix-report table.wemix-apa .wemix-c { text-align: center; }
.wemix-report .wemix-note { font-size: .88em; margin: .25em 0; max-width: 54em; }
.wemix-report figure { margin: 0 0 1em; }
.wemix-report figure svg { max-width: 100%; height: auto; }
.wemix-report ul { padding-left: 1.4em; }
.wemix-report li { margin: .25em 0; }
"""

#: the page around a saved report
PAGE_CSS = "body { margin: 2em auto; padding: 0 1.5em; max-width: 56em; }"
_TAGS = {"italic": "i", "bold": "b", "code": "code"}


def _inline(content: Inline | str) -> str:
    if isinstance(content, str):
        return html.escape(content)
    out = []
    for span in content:
        text = html.escape(span.text)
        tag = _TAGS.get(span.style)
        out.append(f"<{tag}>{text}</{tag}>" if tag else text)
    return "".join(out)


def _caption(kind: str, number, title: str) -> str:
    return (
        f'<div class="wemix-caption"><span class="wemix-number">{kind} {html.escape(str(number))}</span>'
        f'<span class="wemix-caption-title">{html.escape(title)}</span></div>'
    )


def _table(table: Table) -> str:
    align = [f"wemix-{a}" for a in table.align]
    head = "".join(f'<th class="{a}">{_inline(h)}</th>' for h, a in zip(table.header, align, strict=True))
    body = []
    for row in table.rows:
        if row.heading:
            label = html.escape(row.cells[0])
            body.append(f'<tr><td class="wemix-heading" colspan="{len(table.header)}">{label}</td></tr>')
            continue
        cells = "".join(
            f'<td class="{a}">{html.escape(c)}</td>' for c, a in zip(row.cells, align, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    notes = "".join(f'<p class="wemix-note">{_inline(n)}</p>' for n in table.notes)
    return (
        f'<section class="wemix-table" data-key="{html.escape(table.key)}">'
        + _caption("Table", table.number, table.title)
        + f'<table class="wemix-apa"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        + notes
        + "</section>"
    )


def _figure(figure: Figure) -> str:
    notes = "".join(f'<p class="wemix-note">{_inline(n)}</p>' for n in figure.notes)
    return (
        f'<figure class="wemix-figure" data-key="{html.escape(figure.key)}">'
        + _caption("Figure", figure.number, figure.title)
        + f'<div class="wemix-chart">{figure.svg()}</div>'
        + (f"<figcaption>{notes}</figcaption>" if notes else "")
        + "</figure>"
    )


def _block(block) -> str:
    if isinstance(block, Heading):
        return f"<h2>{html.escape(block.text)}</h2>"
    if isinstance(block, Paragraph):
        key = f' class="wemix-{html.escape(block.key)}"' if block.key else ""
        return f"<p{key}>{_inline(block.content)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, Table):
        return _table(block)
    return _figure(block)


def render(report: Report, standalone: bool = True) -> str:
    """The report as an HTML page (``standalone``) or a notebook fragment."""
    body = (
        f'<article class="wemix-report"><h1 class="wemix-title">{html.escape(report.title)}</h1>'
        f'<div class="wemix-subtitle">{html.escape(report.subtitle)}</div>'
        + "\n".join(_block(b) for b in report.blocks)
        + "</article>"
    )
    if not standalone:
        return f"<style>{CSS}</style>\n{body}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(report.title)}</title>\n<style>{CSS}\n{PAGE_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
