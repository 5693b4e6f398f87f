"""A report as a LaTeX document: booktabs tables, figures as PNG files next to the ``.tex`` file
(``\\includegraphics``), compiled by pdflatex, xelatex or lualatex (characters outside ASCII are
written as LaTeX commands).

Captions are LaTeX's own (``\\caption``, set APA style by the caption package: the number in bold
on its own line, the title in italics below, both above the table or figure), so LaTeX numbers the
tables and figures as the report does, the appendix's as A1, A2, ...; wide tables are shrunk to
the text width (adjustbox) and floats stay in their section (placeins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wemix_nb.display.report.content import Bullets, Code, Figure, Heading, Inline, Paragraph, Table

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.display.report.document import Report

__all__ = ["PREAMBLE", "escape", "render"]

PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage[margin=2.5cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\usepackage{array}
\usepackage[section]{placeins}
\usepackage[hyphens]{url}
\usepackage[export]{adjustbox}
\usepackage{caption}
\captionsetup{labelsep=newline, labelfont=bf, textfont=it, justification=raggedright,
  singlelinecheck=false, skip=4pt}
\setlength{\parskip}{0.4em}
\setlength{\parindent}{0pt}
"""

_CHARS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "\u2212": r"\textminus{}",
    "\u2013": "--",
    "\u2014": "---",
    "\u00d7": r"\texttimes{}",
    "\u00b2": r"\textsuperscript{2}",
    "\u00b1": r"\textpm{}",
    "\u03c0": r"$\pi$",
    "\u03a3": r"$\Sigma$",
    "\u221e": r"$\infty$",
    "\u2019": "'",
    # a cell or line that begins with "[" would be read as an optional argument of \\ or \item
    "[": "{[}",
    "]": "{]}",
}


def escape(text: str) -> str:
    """Text for LaTeX: its special characters escaped, the non-ASCII ones of reports as commands."""
    return "".join(_CHARS.get(c, c) for c in text)


def _inline(content: Inline | str) -> str:
    if isinstance(content, str):
        return escape(content)
    out = []
    for span in content:
        text = escape(span.text)
        if span.style == "italic":
            out.append(f"\\textit{{{text}}}")
        elif span.style == "bold":
            out.append(f"\\textbf{{{text}}}")
        elif span.style == "code":
            out.append(f"\\texttt{{{text}}}")
        else:
            out.append(text)
    return "".join(out)


def _table(table: Table) -> str:
    width = len(table.header)
    lines = []
    if str(table.number) == "A1":  # the appendix's tables: A1, A2, ...
        lines += ["\\setcounter{table}{0}", "\\renewcommand{\\thetable}{A\\arabic{table}}"]
    lines += [
        "\\begin{table}[htbp]",
        "\\small",
        f"\\caption{{{escape(table.title)}}}",
        f"\\label{{tab:{table.key}}}",
        "\\begin{adjustbox}{max width=\\linewidth}",
        f"\\begin{{tabular}}{{{table.align}}}",
        "\\toprule",
        " & ".join(_inline(h) for h in table.header) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        if row.heading:
            lines.append(f"\\multicolumn{{{width}}}{{l}}{{\\textit{{{escape(row.cells[0])}}}}} \\\\")
        else:
            lines.append(" & ".join(escape(c) for c in row.cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{adjustbox}"]
    for note in table.notes:
        lines.append(f"\\par\\smallskip\\parbox{{\\linewidth}}{{\\footnotesize {_inline(note)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines)


def _figure(figure: Figure, stem: str) -> str:
    lines = [
        "\\begin{figure}[htbp]",
        f"\\caption{{{escape(figure.title)}}}",
        f"\\label{{fig:{figure.key}}}",
        f"\\includegraphics[width=0.85\\linewidth]{{{stem}-figure-{figure.number}.png}}",
    ]
    for note in figure.notes:
        lines.append(f"\\par\\smallskip\\parbox{{\\linewidth}}{{\\footnotesize {_inline(note)}}}")
    lines.append("\\end{figure}")
    return "\n".join(lines)


def _block(block, stem: str) -> str:
    if isinstance(block, Heading):
        return f"\\section*{{{escape(block.text)}}}"
    if isinstance(block, Paragraph):
        return _inline(block.content)
    if isinstance(block, Bullets):
        items = "\n".join(f"  \\item {_inline(item)}" for item in block.items)
        return f"\\begin{{itemize}}\n{items}\n\\end{{itemize}}"
    if isinstance(block, Code):
        return f"{{\\small\n\\begin{{verbatim}}\n{block.text}\n\\end{{verbatim}}\n}}"
    if isinstance(block, Table):
        return _table(block)
    return _figure(block, stem)


def render(report: Report, figure_stem: str = "report") -> str:
    """The report as a LaTeX document; figure ``N`` is ``<figure_stem>-figure-N.png``."""
    body = "\n\n".join(_block(b, figure_stem) for b in report.blocks)
    return (
        PREAMBLE
        + f"\\title{{{escape(report.title)}}}\n\\author{{}}\n\\date{{{escape(report.subtitle)}}}\n"
        + "\\begin{document}\n\\maketitle\n\n"
        + body
        + "\n\n\\end{document}\n"
    )
