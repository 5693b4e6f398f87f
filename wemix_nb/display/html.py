"""HTML reports built with great-tables: a result's report, Wald tests, weight summaries, comparisons.

Every table is a ``great_tables.GT`` object, so users can restyle or save it:

>>> tables = fit.to_gt()                                   # doctest: +SKIP
>>> tables.fixed.tab_options(table_font_size="12px").save("fixed.png")  # doctest: +SKIP

The numbers come from :mod:`wemix_nb.display.tables`: the fixed effects from the result's
``tidy()`` (the single source of estimate / SE / statistic / p-value / CI), the variance
components from its :class:`~wemix_nb.model.variance.VarianceComponents` (rows labelled as
``"Intercept × Days"`` under their group).
"""

from __future__ import annotations

import html as _html
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from wemix_nb.display.tables import coef_frame, level_frame, variance_frame
from wemix_nb.options import check_positive_int, check_result
from wemix_nb.results.fallback import html_or_text
from wemix_nb.results.notes import se_method, weights_note
from wemix_nb.results.report import resolve_conf_level

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.inference import WaldTest
    from wemix_nb.results.result import MixResult
    from wemix_nb.survey.describe import WeightSummary

__all__ = [
    "Comparison",
    "ResultTables",
    "coef_frame",
    "compare",
    "result_gt",
    "result_html",
    "significance_stars",
    "variance_frame",
    "wald_gt",
    "wald_html",
    "weights_gt",
    "weights_html",
]

#: significance codes, R style: (threshold, mark)
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, "."))
STARS_NOTE = "Signif. codes: *** p < 0.001, ** p < 0.01, * p < 0.05, . p < 0.1"


def significance_stars(p: float) -> str:
    """``"***"``, ``"**"``, ``"*"``, ``"."`` or ``""`` for a p-value (NaN: ``""``)."""
    if p is None or not np.isfinite(p):
        return ""
    for threshold, mark in STARS:
        if p < threshold:
            return mark
    return ""


def _family_text(result: MixResult) -> str:
    family = getattr(result, "family", None)
    if family is None:
        return "Linear mixed model (gaussian, identity link)"
    return f"Generalized linear mixed model ({family.name}, {family.link} link)"


def _fmt(x: float, decimals: int = 3) -> str:
    """Numbers as the comparison table and widgets show them (minus sign: U+2212, as great-tables)."""
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:,.{decimals}f}".replace("-", "−")


def _fmt_p(p: float, relation: bool = False) -> str:
    """``<0.001`` or ``0.123``; with ``relation``, ready to follow "p": ``< 0.001`` / ``= 0.123``."""
    if p is None or not np.isfinite(p):
        return "—"
    if p < 0.001:
        return "< 0.001" if relation else "<0.001"
    return f"= {p:.3f}" if relation else f"{p:.3f}"


# -------------------------------------------------------------------------------------------------
# a result's report


class ResultTables(NamedTuple):
    """The great-tables tables of a result's report (``MixResult.to_gt()``)."""

    fixed: Any
    variance: Any
    groups: Any

    def as_raw_html(self) -> str:
        """All three tables as one HTML fragment (what the notebook shows)."""
        return _wrap([t.as_raw_html() for t in self])

    def _repr_html_(self) -> str:
        return html_or_text(self.as_raw_html, lambda: "\n\n".join(str(t._tbl_data) for t in self))


def _wrap(parts: Sequence[str]) -> str:
    return '<div class="wemix-result">\n' + "\n".join(parts) + "\n</div>"


def result_gt(
    result: MixResult,
    conf_level: float = 0.95,
    digits: int = 3,
    *,
    df: str | None = None,
    level: float | None = None,
) -> ResultTables:
    """The report of a :class:`~wemix_nb.MixResult` as great-tables tables.

    - ``fixed``: title = formula, subtitle = family / sizes / log pseudo-likelihood; estimate,
      robust SE, t (z for GLMMs), p, significance stars and the ``conf_level`` confidence
      interval, from ``result.tidy(conf_level, df)``: with fewer than 30 top-level groups behind
      the sandwich the p-values, stars and intervals use the t reference with (groups - fixed
      effects) df (design-based SEs: below 30 PSUs - strata, with that many df), and the table
      says so (``df="normal"`` forces WeMix's normal reference);
      ``level``: deprecated alias of ``conf_level``;
    - ``variance``: variance components (variance, robust SE, SD; correlations of covariances)
      with the ICC as labelled by ``result.diagnostics`` and a note on a boundary (singular) fit;
    - ``groups``: units and weights per level (n, sum, mean, min, max, Kish design effect) and
      the convergence note.
    """
    check_positive_int(digits, "digits")
    conf_level = resolve_conf_level(conf_level, level)
    se_label = "Replicate SE" if getattr(result.options, "replicates", None) else "Robust SE"
    return ResultTables(
        fixed=_fixed_gt(result, conf_level, digits, df, se_label),
        variance=_variance_gt(result, digits, se_label),
        groups=_groups_gt(result, digits),
    )


def _sizes(result: MixResult) -> str:
    """``"5,057 rows, 150 groups (schoolid)"``."""
    counts = [f"{int(result.ngroups.iloc[0]):,} rows"]
    counts += [f"{int(n):,} groups ({_html.escape(str(k))})" for k, n in result.ngroups.iloc[1:].items()]
    return ", ".join(counts)


def _reference_note(result: MixResult, df: str | None) -> str:
    """How the SEs were computed and the reference distribution of the p-values (with few
    top-level groups behind the sandwich, why it is a t)."""
    diagnostics = result.diagnostics
    kind = diagnostics.default_df if df is None else df
    if kind == "normal":
        reference = "normal reference distribution"
    elif kind == diagnostics.default_df and diagnostics.few_groups:
        reference = diagnostics.reference
    else:
        reference = f"t reference distribution (df = {kind!r})"
    text = f"{se_method(result)}; {reference}."
    if not diagnostics.few_groups:
        return text
    if diagnostics.design_based:
        few = f" Only {diagnostics.clusters}"
        why = "fewer than 30 design degrees of freedom (PSUs − strata) the design-based"
    else:
        few = f" Only {diagnostics.n_top_groups} top-level groups"
        why = "fewer than 30 the robust"
    if kind == "normal":
        return f"{text}{few}: normal-based p-values are too small with so few clusters."
    return f"{text}{few}: with {why} standard errors are themselves uncertain, hence the t reference."


def _fixed_gt(result: MixResult, conf_level: float, digits: int, df: str | None, se_label: str):
    from great_tables import GT, html

    coefs = coef_frame(result, conf_level, df=df)
    coefs["stars"] = [significance_stars(p) for p in coefs["p_value"]]
    # p as text: "<0.001" for every p below 0.001, exactly 0 included
    coefs["p_value"] = [_fmt_p(p) for p in coefs["p_value"]]
    # WeMix's "t value" for linear models, "z value" for GLMMs against the normal reference
    normal = (result.diagnostics.default_df if df is None else df) == "normal"
    stat = "z" if result.family is not None and normal else "t"
    pct = f"{100 * conf_level:g}%"
    subtitle = (
        f"{_family_text(result)} · {_sizes(result)} · log pseudo-likelihood {_fmt(float(result.lnl), digits)}"
    )
    note = _reference_note(result, df)
    if result.diagnostics.few_groups:
        note = html(f'<span class="wemix-few-groups" style="color:#8a4b00;">⚠ {_html.escape(note)}</span>')
    return (
        GT(coefs, rowname_col="term")
        .tab_header(title=html(f"<code>{_html.escape(str(result.formula))}</code>"), subtitle=subtitle)
        .tab_stubhead("Fixed effects")
        .fmt_number(columns=["estimate", "std_error", "conf_low", "conf_high"], decimals=digits)
        .fmt_number(columns="statistic", decimals=2)
        .sub_missing(missing_text="—")
        .cols_align(align="right", columns="p_value")
        .cols_merge(columns=["conf_low", "conf_high"], pattern="[{0}, {1}]")
        .cols_move(columns="stars", after="p_value")
        .cols_label(
            estimate="Estimate",
            std_error=se_label,
            statistic=f"{stat} value",
            p_value="p",
            stars="",
            conf_low=f"{pct} CI",
        )
        .tab_source_note(note)
        .tab_source_note(STARS_NOTE)
    )


def _variance_gt(result: MixResult, digits: int, se_label: str):
    from great_tables import GT, html

    diagnostics = result.diagnostics
    var = variance_frame(result)
    # the residual row is its own label: no "Residual" group heading above it
    var.loc[var["group"] == var["term"], "group"] = ""
    table = (
        GT(var.drop(columns=["name", "covariance"]), rowname_col="term", groupname_col="group")
        .tab_header(title="Variance components")
        .fmt_number(columns=["variance", "std_error", "sd"], decimals=digits)
        .fmt_number(columns="corr", decimals=3)
        .sub_missing(missing_text="")
        .cols_label(variance="Variance / Cov.", std_error=se_label, sd="SD", corr="Corr")
    )
    if diagnostics.singular_note:
        warning = _html.escape(diagnostics.singular_note)
        table = table.tab_source_note(
            html(f'<span class="wemix-singular" style="color:#b00020;">⚠ {warning}</span>')
        )
    icc = diagnostics.icc
    if icc is not None and np.isfinite(icc):
        table = table.tab_source_note(_icc_note(result, diagnostics))
        if diagnostics.icc_note and diagnostics.random_slopes:
            table = table.tab_source_note(diagnostics.icc_note)
    return table


def _icc_note(result: MixResult, diagnostics) -> str:
    """``"Intraclass correlation (ICC): 0.131 (random-effect variance over total variance)"``, with
    the ICC's SE when the replicate weights give one."""
    what = "random-effect variance over total variance"
    if diagnostics.random_slopes:
        what = "intercept variances over their total with the residual variance"
    if result.family is not None:
        what += f"; latent residual variance {'π²/3' if result.link == 'logit' else '1'}"
    icc_se = getattr(result, "ICC_SE", None)
    # the replicate SE is that of the ICC as WeMix defines it: shown when that is the one reported
    se = "" if icc_se is None or diagnostics.random_slopes else f", SE {_fmt(float(icc_se), 3)}"
    return f"{_icc_label(diagnostics.icc_label)}: {_fmt(float(diagnostics.icc), 3)}{se} ({what})"


def _icc_label(label: str) -> str:
    """``"ICC at covariate values 0 (latent logit scale)"`` -> ``"Intraclass correlation (ICC) at
    covariate values 0, on the latent logit scale"``."""
    label = label.replace("ICC", "Intraclass correlation (ICC)", 1)
    if label.endswith(" scale)") and " (latent " in label:
        head, scale = label.rsplit(" (", 1)
        label = f"{head}{',' if 'covariate' in head else ''} on the {scale[:-1]}"
    return label


def _groups_gt(result: MixResult, digits: int):
    from great_tables import GT, html

    lv = level_frame(result)
    groups = (
        GT(lv)
        .tab_header(title="Groups and weights")
        .fmt_integer(columns=["level", "n"])
        .fmt_number(columns=["sum", "mean", "min", "max"], decimals=digits)
        .fmt_number(columns="deff", decimals=3)
        .sub_missing(missing_text="—")
        .cols_label(
            level="Level",
            unit="Unit",
            weight="Weight",
            n="N",
            sum="Sum of weights",
            mean="Mean",
            min="Min",
            max="Max",
            deff="Design effect",
        )
        .tab_source_note("Design effect: Kish's 1 + CV² of the weights at that level.")
        .tab_source_note(html(_convergence_note(result)))
    )
    if weights_note(result):
        groups = groups.tab_source_note(weights_note(result))
    return groups


def _convergence_note(result: MixResult) -> str:
    iterations = getattr(result, "n_iterations", None)
    message = str(getattr(result, "message", "") or "")
    extra = ""
    nquad = getattr(result, "nquad", None)
    if result.family is not None and nquad:
        kind = "Adaptive Gauss-Hermite" if getattr(result, "is_adaptive", False) else "Gauss-Hermite"
        extra = f" {kind} quadrature with {nquad} point(s) per random effect."
    if result.converged:
        if message.lower().startswith("converged"):  # the estimator says it itself: say it once
            text = "Converged" + message[len("converged") :]
        else:
            its = f" after {iterations} iterations" if iterations is not None else ""
            text = f"Converged{its}: {message}"
        text = _html.escape(text.rstrip("."))
        return f'<span class="wemix-converged">{text}.</span>{extra}'
    return (
        '<span class="wemix-not-converged" style="color:#b00020;font-weight:bold;">'
        f"⚠ Did not converge: {_html.escape(message)}. Estimates may be unreliable.</span>{extra}"
    )


def result_html(result: MixResult) -> str:
    """The notebook report of a result (``MixResult._repr_html_``)."""
    return result_gt(result).as_raw_html()


# -------------------------------------------------------------------------------------------------
# Wald tests and weight summaries


def wald_gt(test: WaldTest):
    """A Wald test (:class:`wemix_nb.WaldTest`) as a great-tables table.

    Title: the test type; subtitle: Wald (chi-square) statistic, degrees of freedom and p-value;
    one row per restriction with its estimate, hypothesised value, difference and standard error,
    and for (co)variance parameters the component as the report labels it
    (``"Subject: Intercept × Days"``).
    """
    from great_tables import GT

    body = test.table().reset_index().rename(columns={"parameter": "term"})
    body["term"] = body["term"].astype(str)
    if test.labels is not None:
        body["component"] = list(test.labels)
    what = {"beta": "fixed effects", "Lambda": "random-effect (co)variances"}.get(test.type, test.type)
    p = float(test.p_value)
    subtitle = (
        f"chi-square = {_fmt(float(test.statistic), 3)}, df = {int(test.df)}, p {_fmt_p(p, relation=True)} "
        f"{significance_stars(p)}"
    ).strip()
    return (
        GT(body, rowname_col="term")
        .tab_header(title=f"Wald test of {what}", subtitle=subtitle)
        .tab_stubhead("Parameter")
        .fmt_number(columns=["estimate", "hypothesis", "difference", "std_error"], decimals=3)
        .sub_missing(missing_text="—")
        .cols_label(
            estimate="Estimate",
            hypothesis="Hypothesised (H0)",
            difference="Difference",
            std_error="SE",
            **({"component": "Component"} if test.labels is not None else {}),
        )
        .tab_source_note(
            "H0: every listed parameter equals its hypothesised value (joint test, "
            f"chi-square with {int(test.df)} df). {STARS_NOTE}"
        )
    )


def wald_html(test: WaldTest) -> str:
    """HTML of a Wald test (for ``WaldTest._repr_html_``)."""
    return wald_gt(test).as_raw_html()


def weights_gt(summary: WeightSummary):
    """A :class:`~wemix_nb.WeightSummary` as a great-tables table."""
    from great_tables import GT

    note = "CV: population coefficient of variation; design effect (Kish) = 1 + CV²; effective n = n / deff."
    table = (
        GT(summary.table)
        .tab_header(title="Survey weights by level")
        .fmt_integer(columns=["level", "n"])
        .fmt_number(columns=["sum", "mean", "min", "max"], decimals=3)
        .fmt_number(columns=["cv", "deff"], decimals=3)
        .fmt_number(columns="n_eff", decimals=1)
        .sub_missing(missing_text="—")
        .cols_label(
            level="Level",
            unit="Unit",
            weight="Weight",
            n="N",
            sum="Sum",
            mean="Mean",
            min="Min",
            max="Max",
            cv="CV",
            deff="Design effect",
            n_eff="Effective n",
        )
        .tab_source_note(note)
    )
    if summary.n_dropped:
        table = table.tab_source_note(f"{summary.n_dropped} row(s) with missing weights or groups dropped.")
    return table


def weights_html(summary: WeightSummary) -> str:
    """HTML of a weight summary (for ``WeightSummary._repr_html_``)."""
    return weights_gt(summary).as_raw_html()


# -------------------------------------------------------------------------------------------------
# side-by-side comparison


class Comparison:
    """Several fitted models side by side (from :func:`compare`).

    ``table`` is the DataFrame of displayed strings; :meth:`to_gt` the great-tables table; in a
    notebook the object shows as that table; :meth:`plot` draws all models on one coefficient plot.
    """

    def __init__(
        self,
        models: Sequence[MixResult],
        names: Sequence[str] | None = None,
        digits: int = 3,
        conf_level: float = 0.95,
        *,
        level: float | None = None,
    ):
        from wemix_nb.errors import ArgumentError

        if isinstance(models, str | Mapping) or not isinstance(models, Iterable):
            raise ArgumentError(f"models must be a list of fits (MixResult), got {type(models).__name__}.")
        models = [check_result(model, "compare") for model in models]
        if not models:
            raise ArgumentError("compare() needs at least one fitted model.")
        if names is None:
            names = [f"({i + 1})" for i in range(len(models))]
        names = [str(n) for n in names]
        if len(names) != len(models) or len(set(names)) != len(names):
            raise ArgumentError(f"names must be {len(models)} distinct labels, got {names}.")
        self.models = models
        self.names = names
        self.digits = digits
        self.conf_level = resolve_conf_level(conf_level, level)
        self._rows: list[dict] = []
        self._fixed_rows()
        self._variance_rows()
        self._statistics_rows()
        self.table = pd.DataFrame(self._rows)

    def _add(self, section: str, label: str, kind: str, values: list[str]) -> None:
        self._rows.append(
            {"section": section, "label": label, "kind": kind, **dict(zip(self.names, values, strict=True))}
        )

    def _fixed_rows(self) -> None:
        d = self.digits
        coefs = [coef_frame(m, self.conf_level).set_index("term") for m in self.models]
        for term in dict.fromkeys(t for c in coefs for t in c.index):
            rows = [c.loc[term] if term in c.index else None for c in coefs]
            est = ["" if r is None else _fmt(r.estimate, d) + significance_stars(r.p_value) for r in rows]
            se = ["" if r is None else f"({_fmt(r.std_error, d)})" for r in rows]
            self._add("Fixed effects", term, "estimate", est)
            self._add("Fixed effects", "", "se", se)

    def _variance_rows(self) -> None:
        d = self.digits
        frames = [variance_frame(m).set_index("name") for m in self.models]
        labels = {name: (r.group, r.term) for v in frames for name, r in v.iterrows()}
        # in order of appearance, the residual last (stable sort)
        for name in sorted(labels, key=lambda name: labels[name][0] == "Residual"):
            group, term = labels[name]
            rows = [v.loc[name] if name in v.index else None for v in frames]
            est = ["" if r is None else _fmt(r.variance, d) for r in rows]
            se = ["" if r is None else f"({_fmt(r.std_error, d)})" for r in rows]
            self._add("Variance components", group if term == group else f"{group}: {term}", "variance", est)
            self._add("Variance components", "", "se", se)

    def _statistics_rows(self) -> None:
        models, d = self.models, self.digits
        self._add("Model statistics", "Log pseudo-likelihood", "lnl", [_fmt(float(m.lnl), d) for m in models])
        self._add("Model statistics", "N (rows)", "n", [f"{int(m.ngroups.iloc[0]):,}" for m in models])
        for factor in dict.fromkeys(str(k) for m in models for k in m.ngroups.index[1:]):
            counts = [f"{int(m.ngroups[factor]):,}" if factor in m.ngroups.index else "" for m in models]
            self._add("Model statistics", f"Groups: {factor}", "groups", counts)
        iccs = [m.diagnostics.icc for m in models]
        self._add("Model statistics", "ICC", "icc", ["" if v is None else _fmt(float(v), 3) for v in iccs])

    def _notes(self) -> list[str]:
        """What qualifies the stars and the ICCs of some of the models."""
        notes = []
        pairs = list(zip(self.names, self.models, strict=True))
        few = [n for n, m in pairs if m.diagnostics.few_groups and not m.diagnostics.design_based]
        if few:
            notes.append(
                f"Stars of {', '.join(few)}: t reference with (top-level groups − fixed effects) df "
                "(fewer than 30 top-level groups)."
            )
        few = [n for n, m in pairs if m.diagnostics.few_groups and m.diagnostics.design_based]
        if few:
            notes.append(
                f"Stars of {', '.join(few)}: t reference with (PSUs − strata) df "
                "(fewer than 30 design degrees of freedom)."
            )
        singular = [n for n, m in zip(self.names, self.models, strict=True) if m.diagnostics.is_singular]
        if singular:
            notes.append(f"Boundary (singular) fit: {', '.join(singular)}.")
        slopes = any(m.diagnostics.random_slopes for m in self.models)
        latent = any(m.family is not None for m in self.models)
        if slopes or latent:
            parts = ["at covariate values 0 with random slopes"] if slopes else []
            parts += ["on the latent scale for GLMMs"] if latent else []
            notes.append(f"ICC: {' and '.join(parts)}.")
        return notes

    @property
    def level(self) -> float:
        """Deprecated alias of :attr:`conf_level`."""
        warnings.warn(
            "Comparison.level is deprecated; use Comparison.conf_level.", FutureWarning, stacklevel=2
        )
        return self.conf_level

    def to_gt(self):
        """The comparison as a great-tables ``GT`` (restyle or save it)."""
        from great_tables import GT, html, loc, style

        shown = self.table.drop(columns="kind")
        se_rows = [i for i, k in enumerate(self.table["kind"]) if k == "se"]
        formulas = "<br>".join(
            f"{_html.escape(n)}: <code>{_html.escape(str(m.formula))}</code>"
            + ("" if m.family is None else f" ({_html.escape(m.family.name)}, {_html.escape(m.family.link)})")
            for n, m in zip(self.names, self.models, strict=True)
        )
        table = (
            GT(shown, rowname_col="label", groupname_col="section")
            .tab_header(title="Model comparison")
            .cols_align(align="center", columns=self.names)
            .tab_source_note(html(formulas))
            .tab_source_note(f"Robust standard errors in parentheses. {STARS_NOTE}")
        )
        for note in self._notes():
            table = table.tab_source_note(note)
        if se_rows:
            table = table.tab_style(
                style=style.text(color="#555555", size="small"),
                locations=loc.body(columns=self.names, rows=se_rows),
            )
        return table

    def plot(self, conf_level: float | None = None, intercept: bool = False, *, level: float | None = None):
        """All models on one coefficient (forest) plot: one band per coefficient with the models
        side by side (intervals at ``conf_level``, by default the comparison's). The intercept is
        left out unless ``intercept=True`` (it would squash the other intervals); ``level`` is a
        deprecated alias of ``conf_level``."""
        from wemix_nb.display.plots import compare_plot

        conf_level = resolve_conf_level(self.conf_level if conf_level is None else conf_level, level)
        return compare_plot(self, conf_level=conf_level, intercept=intercept)

    def _repr_html_(self) -> str:
        """The comparison table; if it cannot be built, the text form (never raises)."""
        return html_or_text(lambda: self.to_gt().as_raw_html(), lambda: repr(self))

    def __repr__(self) -> str:
        return f"Model comparison\n{self.table.drop(columns='kind').to_string(index=False)}"


def compare(
    models: Sequence[MixResult],
    names: Sequence[str] | None = None,
    digits: int = 3,
    conf_level: float = 0.95,
    *,
    level: float | None = None,
) -> Comparison:
    """Side-by-side regression table of several fitted models.

    Estimates with robust SEs in parentheses and significance stars, variance components (with
    SEs), log pseudo-likelihood, N and groups per factor, ICC. Returns a :class:`Comparison`
    (shows as a table in notebooks; ``.to_gt()`` for the great-tables object, ``.plot()`` for a
    coefficient plot of all models with ``conf_level`` intervals; ``level`` is a deprecated alias).
    """
    return Comparison(models, names=names, digits=digits, conf_level=resolve_conf_level(conf_level, level))
