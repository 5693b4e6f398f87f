"""The report's tables of estimates, as :class:`~wemix_nb.display.report.content.Table` values.

- :func:`fixed_table`: the fixed effects from each fit's ``tidy()`` (the same estimates, standard
  errors, statistics, *p* values and intervals, formatted by :mod:`~wemix_nb.display.report.style`).
  One fit: a column per quantity. Several fits: the layout of :func:`wemix_nb.compare` (a column
  per model; per term the estimate with significance asterisks, its SE in parentheses and its
  confidence interval in brackets), with the models' sizes and log pseudo-likelihoods below.
- :func:`variance_table`: the variance components from each fit's
  :class:`~wemix_nb.model.variance.VarianceComponents`, labelled as the notebook report labels
  them, with the ICC.
- :func:`weights_table`: units and weights per level with Kish's design effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import wemix_nb.display.report.style as style
from wemix_nb.display.report.content import Inline, Row, Table, inline, italic
from wemix_nb.display.report.facts import MethodFacts

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["STARS", "fixed_table", "icc_text", "stars", "variance_table", "weights_table"]

#: APA's significance asterisks: (threshold, mark)
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def stars(p: float) -> str:
    """``"***"``, ``"**"``, ``"*"`` or ``""`` (APA's thresholds .001, .01, .05)."""
    if p is None or not np.isfinite(p):
        return ""
    return next((mark for threshold, mark in STARS if p < threshold), "")


def _stat_label(result: MixResult, df_kind: str) -> str:
    """*t* for linear models and t references, *z* for a GLMM against the normal (as the
    notebook report labels them)."""
    return "z" if result.family is not None and df_kind == "normal" else "t"


def _se_words(f: MethodFacts) -> str:
    e = f.errors
    if e.kind == "replicate":
        return f"replicate-weight standard error ({e.n_replicates} replicates)"
    if e.kind == "linearization":
        return "design-based (linearized) standard error"
    return f"robust (sandwich) standard error clustered on {e.cluster}"


def _reference_words(f: MethodFacts) -> str:
    df = f.df
    if df.kind == "normal":
        return "the standard normal distribution"
    if f.pv is not None:
        return "t distributions with Barnard\u2013Rubin degrees of freedom"
    return f"a t distribution with {style.df_value(df.low)} degrees of freedom"


def _pct(conf_level: float) -> str:
    return f"{100 * conf_level:g}%"


# -------------------------------------------------------------------------------------------------
# fixed effects


def _single_fixed(result: MixResult, f: MethodFacts, tidy: pd.DataFrame, number: int) -> Table:
    d = style.estimate_decimals(tidy["std_error"])
    show_df = bool(np.isfinite(tidy["df"]).any())
    stat = _stat_label(result, f.df.kind)
    header: list[Inline] = [inline("Term"), inline("Estimate"), inline(italic("SE")), inline(italic(stat))]
    header += [inline(italic("df"))] if show_df else []
    header += [inline(italic("p")), inline(f"{_pct(f.conf_level)} CI")]
    rows = []
    for r in tidy.itertuples(index=False):
        cells = [
            str(r.term),
            style.fixed(r.estimate, d),
            style.fixed(r.std_error, d),
            style.statistic(r.statistic),
        ]
        cells += [style.df_value(r.df)] if show_df else []
        cells += [style.p_value(r.p_value), style.interval(r.conf_low, r.conf_high, d)]
        rows.append(Row(tuple(cells)))
    note = inline(
        italic("Note."),
        " ",
        italic("SE"),
        f" = {_se_words(f)}; CI = confidence interval. ",
        italic(stat),
        " statistics, ",
        italic("p"),
        f" values and intervals refer to {_reference_words(f)}.",
    )
    return Table(
        key="fixed",
        number=number,
        title=f"Fixed effects of the model of {f.response if f.pv is None else 'the plausible values'}",
        header=tuple(header),
        rows=tuple(rows),
        align="l" + "r" * (len(header) - 2) + "c",
        notes=(note,),
    )


def _model_statistics(fits: Sequence[MixResult]) -> list[Row]:
    rows = [Row(("Model statistics",), heading=True)]
    rows.append(Row(("Observations (rows)", *[style.count(m.ngroups.iloc[0]) for m in fits])))
    for factor in dict.fromkeys(str(k) for m in fits for k in m.ngroups.index[1:]):
        counts = [style.count(m.ngroups[factor]) if factor in m.ngroups.index else "" for m in fits]
        rows.append(Row((f"Groups: {factor}", *counts)))
    lnl = [float(m.lnl) for m in fits]
    d = style.decimals_for(lnl, 4, 0, 2)
    rows.append(Row(("Log pseudo-likelihood", *[style.fixed(v, d) for v in lnl])))
    return rows


def _several_fixed(
    fits: Sequence[MixResult], facts: Sequence[MethodFacts], tidies: Sequence[pd.DataFrame], names, number
) -> Table:
    decimals = [style.estimate_decimals(t["std_error"]) for t in tidies]
    frames = [t.set_index("term") for t in tidies]
    rows = [Row(("Fixed effects",), heading=True)]
    for term in dict.fromkeys(str(t) for frame in frames for t in frame.index):
        found = [frame.loc[term] if term in frame.index else None for frame in frames]
        est = [
            "" if r is None else style.fixed(r.estimate, d) + stars(r.p_value)
            for r, d in zip(found, decimals, strict=True)
        ]
        se = [
            "" if r is None else f"({style.fixed(r.std_error, d)})"
            for r, d in zip(found, decimals, strict=True)
        ]
        ci = [
            "" if r is None else style.interval(r.conf_low, r.conf_high, d)
            for r, d in zip(found, decimals, strict=True)
        ]
        rows += [Row((term, *est)), Row(("", *se)), Row(("", *ci))]
    rows += _model_statistics(fits)
    pct = _pct(facts[0].conf_level)
    references = sorted({_reference_words(f) for f in facts})
    notes = (
        inline(
            italic("Note."),
            f" Estimates with standard errors in parentheses and {pct} confidence intervals in brackets. "
            f"Tests and intervals refer to {' or '.join(references)} (see the methods).",
        ),
        inline(*_stars_note()),
    )
    return Table(
        key="fixed",
        number=number,
        title="Fixed effects of the models",
        header=(inline(""), *[inline(n) for n in names]),
        rows=tuple(rows),
        align="l" + "c" * len(names),
        notes=notes,
    )


def _stars_note() -> list:
    return [
        "*",
        italic("p"),
        " < .05. **",
        italic("p"),
        " < .01. ***",
        italic("p"),
        " < .001.",
    ]


def fixed_table(
    fits: Sequence[MixResult],
    facts: Sequence[MethodFacts],
    tidies: Sequence[pd.DataFrame],
    names: Sequence[str],
    number: int = 1,
) -> Table:
    """The fixed-effects table of one fit or of several side by side.

    Parameters
    ----------
    fits, facts, tidies, names
        The fits, their facts, their ``tidy()`` tables (at the report's confidence level and
        reference distribution) and their names.
    number
        The table's number.
    """
    if len(fits) == 1:
        return _single_fixed(fits[0], facts[0], tidies[0], number)
    return _several_fixed(fits, facts, tidies, names, number)


# -------------------------------------------------------------------------------------------------
# variance components


def icc_text(result: MixResult) -> tuple[str, float | None, float | None, str | None]:
    """(label, ICC, its SE, how to read it) as the notebook report labels the ICC: the fit's
    diagnostics decide where they exist; otherwise the random-effect variance over the total
    (latent scale for GLMMs)."""
    diagnostics = getattr(result, "diagnostics", None)
    se = getattr(result, "ICC_SE", None)
    what = "random-effect variance over total variance"
    if result.family is not None:
        what += "; latent residual variance " + ("\u03c0\u00b2/3" if result.link == "logit" else "1")
    if diagnostics is not None:
        label = str(diagnostics.icc_label).replace("ICC", "Intraclass correlation (ICC)", 1)
        # with random slopes the diagnostics say at which covariate values the ICC holds; otherwise
        # their note restates the value the table already shows
        return label, diagnostics.icc, se, diagnostics.icc_note if diagnostics.random_slopes else what
    label = "Intraclass correlation (ICC)" + (" (latent scale)" if result.family is not None else "")
    return label, result.ICC, se, what


def _parameter_rows(result: MixResult) -> list[tuple[str, str, object]]:
    """(group, label, parameter) in WeMix's order."""
    return [(p.group, p.label, p) for p in result.variance.table_parameters()]


def _sd_decimals(params) -> int:
    # the SE of an SD is about SE(variance) / (2 SD)
    ses = [
        p.std_error / (2 * p.std_dev)
        for p in params
        if p.kind == "variance" and np.isfinite(p.std_error) and p.std_dev > 0
    ]
    return style.estimate_decimals(ses)


def _single_variance(result: MixResult, number: int) -> Table:
    params = [p for _, _, p in _parameter_rows(result)]
    d = style.estimate_decimals([p.std_error for p in params])
    d_sd = _sd_decimals(params)
    corr = [p.correlation for p in params if p.kind == "covariance"]
    d_r = style.proportion_decimals(corr)
    header = [
        inline("Group"),
        inline("Parameter"),
        inline("Variance"),
        inline(italic("SE")),
        inline(italic("SD")),
    ]
    header += [inline(italic("r"))] if corr else []
    rows, previous = [], None
    for p in params:
        residual = p.group == "Residual"
        group = "" if p.group == previous else ("Residual" if residual else p.group)
        previous = p.group
        label = "" if residual else ("Covariance: " + p.label if p.kind == "covariance" else p.label)
        cells = [group, label, style.fixed(p.estimate, d), style.fixed(p.std_error, d)]
        cells.append(style.fixed(p.std_dev, d_sd) if p.kind == "variance" else "")
        if corr:
            cells.append(style.proportion(p.correlation, d_r) if p.kind == "covariance" else "")
        rows.append(Row(tuple(cells)))
    notes = [
        inline(
            italic("Note."),
            " ",
            italic("SE"),
            " = standard error of the variance; ",
            italic("SD"),
            " = its square root.",
        )
    ]
    notes += _icc_notes(result)
    return Table(
        key="variance",
        number=number,
        title="Variance components",
        header=tuple(header),
        rows=tuple(rows),
        align="ll" + "r" * (len(header) - 2),
        notes=tuple(notes),
    )


def _icc_notes(result: MixResult) -> list[Inline]:
    label, icc, se, what = icc_text(result)
    if icc is None or not np.isfinite(icc):
        return []
    d = style.proportion_decimals([icc], [se] if se is not None else [])
    se_text = "" if se is None else f" (SE = {style.proportion(se, d)})"
    text = f"{label}: {style.proportion(icc, d)}{se_text}"
    return [inline(text + (f"; {what}" if what else "") + ("" if (what or "").endswith(".") else "."))]


def _several_variance(fits: Sequence[MixResult], names: Sequence[str], number: int) -> Table:
    tables = [{p.name: p for _, _, p in _parameter_rows(m)} for m in fits]
    decimals = [style.estimate_decimals([p.std_error for p in t.values()]) for t in tables]
    labels = {name: p.full_label for t in tables for name, p in t.items()}
    rows = []
    for name in sorted(labels, key=lambda n: labels[n] == "Residual"):
        found = [t.get(name) for t in tables]
        est = ["" if p is None else style.fixed(p.estimate, d) for p, d in zip(found, decimals, strict=True)]
        se = [
            "" if p is None else f"({style.fixed(p.std_error, d)})"
            for p, d in zip(found, decimals, strict=True)
        ]
        rows += [Row((labels[name], *est)), Row(("", *se))]
    iccs = [icc_text(m) for m in fits]
    values = [v for _, v, _, _ in iccs if v is not None]
    if values:
        d = style.proportion_decimals(values)
        rows.append(Row(("ICC", *["" if v is None else style.proportion(v, d) for _, v, _, _ in iccs])))
    notes = [inline(italic("Note."), " Variances and covariances with standard errors in parentheses.")]
    meanings = {}
    for name, (label, value, _, what) in zip(names, iccs, strict=True):
        if value is not None:
            text = label.replace("Intraclass correlation (ICC)", "intraclass correlation") + (
                f": {what}" if what else ""
            )
            meanings.setdefault(text.rstrip("."), []).append(name)
    if len(meanings) == 1:
        notes.append(inline(f"ICC = {next(iter(meanings))}."))
    for text, members in meanings.items() if len(meanings) > 1 else ():
        notes.append(inline(f"ICC of {', '.join(members)} = {text}."))
    return Table(
        key="variance",
        number=number,
        title="Variance components of the models",
        header=(inline(""), *[inline(n) for n in names]),
        rows=tuple(rows),
        align="l" + "c" * len(names),
        notes=tuple(notes),
    )


def variance_table(fits: Sequence[MixResult], names: Sequence[str], number: int = 2) -> Table:
    """The variance-components table of one fit or of several side by side (with the ICC)."""
    if len(fits) == 1:
        return _single_variance(fits[0], number)
    return _several_variance(fits, names, number)


# -------------------------------------------------------------------------------------------------
# weights


def weights_table(fits: Sequence[MixResult], names: Sequence[str], number: int) -> Table:
    """Units and weights per level (and per model when there are several): N, the sum, mean,
    minimum and maximum of the unconditional weights, and Kish's design effect ``1 + CV²``."""
    from wemix_nb.display.tables import level_frame

    frames = [level_frame(m).assign(model=name) for m, name in zip(fits, names, strict=True)]
    data = pd.concat(frames, ignore_index=True)
    several = len(fits) > 1
    formatted = {c: style.column(data[c].tolist()) for c in ("sum", "mean", "min", "max")}
    header = ([inline("Model")] if several else []) + [
        inline("Level"),
        inline("Unit"),
        inline("Weight"),
        inline(italic("N")),
        inline("Sum"),
        inline(italic("M")),
        inline("Min"),
        inline("Max"),
        inline("Design effect"),
    ]
    rows = []
    for i, r in enumerate(data.itertuples(index=False)):
        cells = [r.model] if several else []
        cells += [str(r.level), str(r.unit), str(r.weight), style.count(r.n)]
        cells += [formatted[c][i] for c in ("sum", "mean", "min", "max")]
        cells.append(style.fixed(r.deff, 2))
        rows.append(Row(tuple(cells)))
    note = inline(
        italic("Note."),
        " The unconditional weights the model used; design effect = Kish's 1 + CV\u00b2 of the weights "
        "at that level (Kish, 1965).",
    )
    return Table(
        key="weights",
        number=number,
        title="Units and survey weights by level",
        header=tuple(header),
        rows=tuple(rows),
        align=("l" if several else "") + "lll" + "r" * 6,
        notes=(note,),
    )
