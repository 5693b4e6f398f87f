"""The report's figures: the coefficient (forest) plot and the caterpillar plots, drawn by
vl-convert as SVG (HTML) or PNG (Word, LaTeX, Markdown): no browser and no network.

The charts are the notebook's own (:mod:`wemix_nb.display.plots`) without their titles: in a
report the figure's number and title stand above it, and the chart's subtitle becomes the figure's
note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wemix_nb.display.report.content import Figure, inline, italic

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["caterpillar_figures", "coefficient_figure"]

INTERCEPTS = ("Intercept", "(Intercept)")


def _untitled(chart) -> tuple[Any, list[str]]:
    """A copy of the chart without its title, and the title's subtitle lines."""
    import altair as alt

    from wemix_nb.display.render import _title_lines

    title = chart.title
    lines = _title_lines(title)
    copy = chart.copy(deep=False)
    copy.title = alt.Undefined
    return copy, lines[1:]


def _has_slopes(fits: Sequence[MixResult]) -> bool:
    return any(str(t) not in INTERCEPTS for m in fits for t in m.coef.index)


def coefficient_figure(
    fits: Sequence[MixResult], names: Sequence[str], conf_level: float, df_kinds: Sequence[str], number: int
) -> Figure:
    """The fixed effects with their confidence intervals (the intercept left out when there are
    other terms: it is on another scale and would squash them); several fits side by side."""
    from wemix_nb.display.plots import _forest, _select_terms

    frames = []
    for name, model, kind in zip(names, fits, df_kinds, strict=True):
        frame = model.tidy(conf_level, df=kind)
        frame.insert(0, "model", name)
        frames.append(frame)
    import pandas as pd

    intercept = not _has_slopes(fits)
    data = _select_terms(pd.concat(frames, ignore_index=True), intercept, None)
    models = list(names) if len(fits) > 1 else None
    chart = _forest(data, conf_level, title="", width=420, models=models)
    chart, _ = _untitled(chart)
    pct = f"{100 * conf_level:g}%"
    what = "Fixed effects" + (" of the models" if len(fits) > 1 else "")
    notes = (
        inline(
            italic("Note."),
            f" Estimates with {pct} confidence intervals, from the same standard errors and reference "
            "distributions as the fixed-effects table"
            + ("." if intercept else "; the intercept is not shown."),
        ),
    )
    return Figure("coefficients", number, f"{what} with {pct} confidence intervals", chart, notes)


def caterpillar_figures(fits: Sequence[MixResult], names: Sequence[str], first_number: int) -> list[Figure]:
    """One caterpillar plot per fit: the conditional modes of the first random-effect term of the
    grouping factor with the most groups, with +/- 1.96 conditional SD."""
    from wemix_nb.display.plots import ranef_plot

    figures = []
    for i, (model, name) in enumerate(zip(fits, names, strict=True)):
        if not model.ranef:
            continue
        factor = next(iter(model.ranef))
        term = str(model.ranef[factor].columns[0])
        chart, subtitle = _untitled(ranef_plot(model))
        whose = f" ({name})" if len(fits) > 1 else ""
        note = "; ".join(subtitle)
        notes = (inline(italic("Note."), f" {note[0].upper() + note[1:]}."),) if note else ()
        title = f"Conditional modes of the random effect {term} for {factor}{whose}"
        figures.append(Figure(f"caterpillar-{i + 1}", first_number + len(figures), title, chart, notes))
    return figures
