""":func:`report`: one or several fits -> a :class:`Report` (methods, tables, figures,
diagnostics, reproducibility appendix, references) that shows itself in a notebook and saves as
HTML, Word, LaTeX or Markdown."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wemix_nb.display.report.style as style
from wemix_nb.display.report.appendix import data_table, reproducible_call, software_table
from wemix_nb.display.report.checks import diagnostic_items
from wemix_nb.display.report.content import (
    Block,
    Bullets,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    inline,
    text_of,
)
from wemix_nb.display.report.facts import MethodFacts, check_df, default_df, method_facts
from wemix_nb.display.report.figures import caterpillar_figures, coefficient_figure
from wemix_nb.display.report.methods import (
    Sentence,
    methods_paragraph,
    methods_sentences,
    reference_inline,
    references,
)
from wemix_nb.display.report.tables import fixed_table, variance_table, weights_table
from wemix_nb.errors import ArgumentError, ReportError, ReportWriteError

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["FORMATS", "Report", "report"]

#: file extensions :meth:`Report.save` writes, and what
FORMATS = {
    ".html": "a single HTML file (figures as inline SVG; no external requests)",
    ".docx": "a Word document (python-docx; figures as PNG)",
    ".tex": "a LaTeX document with booktabs tables (figures as PNG files next to it)",
    ".md": "Markdown with pipe tables (figures as PNG files next to it)",
}


def _fits_and_names(fits: Any, names: Sequence[str] | None) -> tuple[list[MixResult], list[str]]:
    from wemix_nb.display.html import Comparison
    from wemix_nb.results.result import MixResult

    if isinstance(fits, Comparison):
        names = list(fits.names) if names is None else names
        fits = fits.models
    models = [fits] if isinstance(fits, MixResult) else list(fits) if isinstance(fits, Sequence) else None
    if not models:
        raise ArgumentError(
            "report() takes a fitted model, a list of fitted models or a compare() table; "
            f"got {type(fits).__name__ if models is None else 'an empty list'}."
        )
    for i, model in enumerate(models):
        if not isinstance(model, MixResult):
            raise ArgumentError(
                f"report(): entry {i} is a {type(model).__name__}, not a fitted model (mix()'s result)."
            )
    if names is None:
        names = [f"Model {i + 1}" for i in range(len(models))]
    names = [str(n) for n in names]
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ArgumentError(f"names must be {len(models)} distinct labels, one per model; got {names}.")
    return models, names


def _check_scales(models: Sequence[MixResult], names: Sequence[str]) -> None:
    """Raise :class:`ReportError` for fits whose coefficients are on different scales."""
    scales = [(m.family_name, m.link) for m in models]
    if len(set(scales)) > 1:
        described = "; ".join(
            f"{name}: {'linear model' if fam == 'gaussian' else f'{fam} GLMM, {link} link'}"
            for name, (fam, link) in zip(names, scales, strict=True)
        )
        raise ReportError(
            f"These models cannot share a table: their coefficients are on different scales ({described}). "
            "Draft one report per family and link."
        )


def _document_title(models: Sequence[MixResult], title: str | None) -> str:
    if title is not None:
        if not isinstance(title, str):
            raise ArgumentError(f"title must be a string, got {type(title).__name__}.")
        return title
    if len(models) == 1:
        return f"Weighted multilevel model of {str(models[0].formula).split('~', 1)[0].strip()}"
    return f"Weighted multilevel models ({len(models)} models)"


class Report:
    """A drafted report of one or several fits (from :func:`report`).

    It shows itself in a notebook (HTML, with the figures as SVG) and :meth:`save` writes it as
    HTML, Word, LaTeX or Markdown. Its parts are plain values, to read or test:

    Attributes
    ----------
    title
        The report's title.
    models, names
        The fits and their names.
    facts
        The :class:`~wemix_nb.display.report.facts.MethodFacts` of each fit.
    sentences
        The methods paragraph's :class:`~wemix_nb.display.report.methods.Sentence` values.
    tidies
        Each fit's ``tidy()`` table at the report's confidence level and reference distribution
        (the numbers of the fixed-effects table and figure).
    blocks
        The report's content in order (headings, paragraphs, tables, figures, lists, code).
    """

    def __init__(
        self,
        models: Sequence[MixResult],
        names: Sequence[str],
        title: str,
        conf_level: float,
        df: str | None,
        figures: bool,
    ):
        self.models = list(models)
        self.names = list(names)
        self.title = title
        self.conf_level = conf_level
        self.df_kinds = [default_df(m) if df is None else df for m in self.models]
        self.facts: list[MethodFacts] = [
            method_facts(m, kind, conf_level) for m, kind in zip(self.models, self.df_kinds, strict=True)
        ]
        self.tidies = [
            m.tidy(conf_level, df=kind) for m, kind in zip(self.models, self.df_kinds, strict=True)
        ]
        self.sentences: list[Sentence] = methods_sentences(self.facts, self.names)
        self.date = datetime.date.today().isoformat()
        self.blocks: list[Block] = self._build(figures)

    # -- content ---------------------------------------------------------------------------------

    def _build(self, with_figures: bool) -> list[Block]:
        models, names = self.models, self.names
        fixed = fixed_table(models, self.facts, self.tidies, names, 1)
        variance = variance_table(models, names, 2)
        weights = weights_table(models, names, 3)
        figures: list[Figure] = []
        if with_figures:
            figures.append(coefficient_figure(models, names, self.conf_level, self.df_kinds, 1))
            figures += caterpillar_figures(models, names, 2)
        calls = "\n".join(
            reproducible_call(m, "fit" if len(models) == 1 else f"fit{i + 1}") for i, m in enumerate(models)
        )
        return [
            Heading("Method", 1),
            Paragraph(methods_paragraph(self.facts, names), key="methods"),
            Heading("Results", 1),
            fixed,
            variance,
            *figures,
            Heading("Diagnostics", 1),
            Bullets(tuple(diagnostic_items(models, self.facts, names, weights.number))),
            weights,
            Heading("Appendix: Reproducibility", 1),
            Paragraph(
                inline("The models were fitted with these calls, ", "on a pandas DataFrame named data:")
            ),
            Code("import wemix_nb\n\n" + self._offset_comment() + calls),
            data_table(models, self.facts, names, "A1"),
            software_table("A2"),
            Heading("References", 1),
            *[Paragraph(reference_inline(entry), key="reference") for entry in self._references()],
        ]

    def _offset_comment(self) -> str:
        if any("offset=offset" in reproducible_call(m) for m in self.models):
            return "# offset: the offset values that were passed to mix() as an array\n"
        return ""

    def _references(self) -> list[str]:
        return references(self.sentences, extra=("kish1965",))

    @property
    def subtitle(self) -> str:
        """The line under the title: software, date and number style."""
        return f"Drafted with {self.facts[0].software} on {self.date}. Numbers in {style.STYLE_NAME} style."

    @property
    def methods(self) -> str:
        """The methods paragraph as plain text."""
        return text_of(methods_paragraph(self.facts, self.names))

    @property
    def tables(self) -> dict[str, Table]:
        """The tables by key: ``"fixed"``, ``"variance"``, ``"weights"``, ``"data"``, ``"software"``."""
        return {b.key: b for b in self.blocks if isinstance(b, Table)}

    @property
    def figures(self) -> list[Figure]:
        """The figures, in order."""
        return [b for b in self.blocks if isinstance(b, Figure)]

    # -- output ----------------------------------------------------------------------------------

    def to_html(self, standalone: bool = True) -> str:
        """The report as HTML: a complete page (``standalone``) or a fragment for a notebook."""
        from wemix_nb.display.report.write_html import render

        return render(self, standalone=standalone)

    def to_markdown(self, figure_stem: str = "report") -> str:
        """The report as Markdown; figures are referenced as ``<figure_stem>-figure-N.png``."""
        from wemix_nb.display.report.write_markdown import render

        return render(self, figure_stem)

    def to_latex(self, figure_stem: str = "report") -> str:
        """The report as a LaTeX document; figures are ``<figure_stem>-figure-N.png``."""
        from wemix_nb.display.report.write_latex import render

        return render(self, figure_stem)

    def to_docx(self) -> bytes:
        """The report as a Word document (needs python-docx: ``pip install 'wemix_nb[report]'``)."""
        from wemix_nb.display.report.write_docx import render

        return render(self)

    def _files(self, path: Path) -> dict[Path, bytes]:
        """Every file that saving to ``path`` writes, with its content."""
        suffix = path.suffix.lower()
        if suffix == ".html":
            return {path: self.to_html().encode("utf-8")}
        if suffix == ".docx":
            return {path: self.to_docx()}
        text = self.to_latex(path.stem) if suffix == ".tex" else self.to_markdown(path.stem)
        files = {path: text.encode("utf-8")}
        for figure in self.figures:
            files[path.with_name(f"{path.stem}-figure-{figure.number}.png")] = figure.png()
        return files

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report; the extension chooses the format (see :data:`FORMATS`).

        Parameters
        ----------
        path
            ``"analysis.html"``, ``".docx"``, ``".tex"`` or ``".md"``. LaTeX and Markdown get their
            figures as PNG files next to them (``analysis-figure-1.png``, ...).

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ArgumentError
            An extension other than those of :data:`FORMATS`, or a path that is not a string.
        ReportWriteError
            The folder does not exist or cannot be written, or a folder is in the way.
        ImportError
            ``.docx`` without python-docx installed.
        """
        target = _check_path(path)
        files = self._files(target)
        for file, content in files.items():
            try:
                file.write_bytes(content)
            except OSError as exc:
                raise ReportWriteError(
                    f"Cannot write the report to '{file}': {exc.strerror or exc}."
                ) from exc
        return target

    def _repr_html_(self) -> str:
        return self.to_html(standalone=False)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {m.formula!r}" for n, m in zip(self.names, self.models, strict=True))
        return f"<Report {self.title!r}: {parts}; {len(self.tables)} tables, {len(self.figures)} figures>"


def _check_path(path: Any) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise ArgumentError(f"save() takes a file path, got {type(path).__name__}.")
    target = Path(path).expanduser()
    if target.suffix.lower() not in FORMATS:
        known = ", ".join(FORMATS)
        given = repr(target.suffix) if target.suffix else "(no extension)"
        raise ArgumentError(f"Unknown report format {given} in '{target}': use one of {known}.")
    folder = target.parent
    if not folder.exists():
        raise ReportWriteError(
            f"Cannot write the report to '{target}': the folder '{folder}' does not exist."
        )
    if not folder.is_dir():
        raise ReportWriteError(f"Cannot write the report to '{target}': '{folder}' is not a folder.")
    if target.is_dir():
        raise ReportWriteError(f"Cannot write the report to '{target}': a folder of that name is in the way.")
    if not os.access(folder, os.W_OK):
        raise ReportWriteError(
            f"Cannot write the report to '{target}': the folder '{folder}' is not writable."
        )
    return target


def report(
    fits: Any,
    names: Sequence[str] | None = None,
    title: str | None = None,
    *,
    conf_level: float = 0.95,
    df: str | None = None,
    figures: bool = True,
) -> Report:
    """Draft a report of one or several fits: methods paragraph, tables, figures, diagnostics and a
    reproducibility appendix.

    Parameters
    ----------
    fits
        A fitted model (:func:`~wemix_nb.mix`'s result, plausible-value and replicate results
        included), a list of them, or a :func:`~wemix_nb.compare` table. Several fits are shown
        side by side, as :func:`~wemix_nb.compare` does; they must share a family and link.
    names
        The models' names (default ``"Model 1"``, ``"Model 2"``, ...; a comparison's own names).
    title
        The report's title (default: from the response).
    conf_level
        Confidence level of the intervals.
    df
        Reference distribution of tests and intervals, as in :meth:`~wemix_nb.MixResult.tidy`:
        ``None`` (default) uses each fit's own default, so the report shows the numbers of
        ``fit.tidy()``.
    figures
        Include the coefficient and caterpillar plots (drawn by vl-convert).

    Returns
    -------
    Report
        Shows itself in a notebook; ``.save("analysis.html" | ".docx" | ".tex" | ".md")``.

    Raises
    ------
    ArgumentError
        Not a fitted model, names that do not match, a bad ``conf_level``, ``df`` or ``title``.
    ReportError
        Fits whose coefficients are on different scales (another family or link).

    Examples
    --------
    >>> weights = ["w_fstuwt", "w_fschwt"]
    >>> fit = wemix_nb.mix("pv1math ~ escs + (1|schoolid)", data, weights=weights)  # doctest: +SKIP
    >>> wemix_nb.report(fit).save("analysis.docx")  # doctest: +SKIP
    """
    from wemix_nb.results.report import check_conf_level

    models, labels = _fits_and_names(fits, names)
    check_conf_level(conf_level)
    check_df(df)
    _check_scales(models, labels)
    return Report(models, labels, _document_title(models, title), conf_level, df, bool(figures))
