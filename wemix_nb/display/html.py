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
        return self.as_raw_html()


def _wrap(parts: Sequence[str]) -> str:
    return '<div class="wemix-result">\n' + "\n".join(parts) + "\n</div>"


def result_gt(
    result: MixResult, conf_level: float = 0.95, digits: int = 3, *, level: float | None = None
) -> ResultTables:
    """The report of a :class:`~wemix_nb.MixResult` as great-tables tables.

    - ``fixed``: title = formula, subtitle = family / sizes / log pseudo-likelihood; estimate,
      robust SE, t (z for GLMMs), p, significance stars and the ``conf_level`` confidence
      interval (``level``: deprecated alias);
    - ``variance``: variance components (variance, robust SE, SD; correlations of covariances)
      with the ICC as a note;
    - ``groups``: units and weights per level (n, sum, mean, min, max, Kish design effect) and
      the convergence note.
    """
    from great_tables import GT, html

    check_positive_int(digits, "digits")
    conf_level = resolve_conf_level(conf_level, level)
    coefs = coef_frame(result, conf_level)
    coefs["stars"] = [significance_stars(p) for p in coefs["p_value"]]
    stat = "t" if result.family is None else "z"
    pct = f"{100 * conf_level:g}%"
    sizes = ", ".join(
        [f"{int(result.ngroups.iloc[0]):,} rows"]
        + [f"{int(n):,} {_html.escape(str(k))}" for k, n in result.ngroups.iloc[1:].items()]
    )
    subtitle = f"{_family_text(result)} · {sizes} · log pseudo-likelihood {_fmt(float(result.lnl), digits)}"
    se_label = "Replicate SE" if getattr(result.options, "replicates", None) else "Robust SE"
    fixed = (
        GT(coefs, rowname_col="term")
        .tab_header(title=html(f"<code>{_html.escape(str(result.formula))}</code>"), subtitle=subtitle)
        .tab_stubhead("Fixed effects")
        .fmt_number(columns=["estimate", "std_error", "conf_low", "conf_high"], decimals=digits)
        .fmt_number(columns="statistic", decimals=2)
        .fmt_number(columns="p_value", decimals=3)
        .sub_small_vals(columns="p_value", threshold=0.001)
        .sub_missing(missing_text="—")
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
        .tab_source_note(f"{se_method(result)}; normal reference distribution. {STARS_NOTE}")
    )

    var = variance_frame(result)
    icc = getattr(result, "ICC", None)
    variance = (
        GT(var.drop(columns=["name", "covariance"]), rowname_col="term", groupname_col="group")
        .tab_header(title="Variance components")
        .fmt_number(columns=["variance", "std_error", "sd"], decimals=digits)
        .fmt_number(columns="corr", decimals=3)
        .sub_missing(missing_text="")
        .cols_label(variance="Variance / Cov.", std_error=se_label, sd="SD", corr="Corr")
    )
    if icc is not None and np.isfinite(icc):
        scale = " (latent scale)" if result.family is not None else ""
        icc_se = getattr(result, "ICC_SE", None)
        se = "" if icc_se is None else f", SE {_fmt(float(icc_se), 3)}"
        variance = variance.tab_source_note(
            f"Intraclass correlation (ICC){scale}: {_fmt(float(icc), 3)}{se} "
            "(random-effect variance over total variance)"
        )

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
    return ResultTables(fixed=fixed, variance=variance, groups=groups)


def _convergence_note(result: MixResult) -> str:
    iterations = getattr(result, "n_iterations", None)
    message = _html.escape(str(getattr(result, "message", "") or ""))
    extra = ""
    nquad = getattr(result, "nquad", None)
    if result.family is not None and nquad:
        kind = "adaptive " if getattr(result, "is_adaptive", False) else ""
        extra = f" {kind}Gauss-Hermite quadrature with {nquad} point(s) per random effect."
    if result.converged:
        its = f" after {iterations} iterations" if iterations is not None else ""
        return f'<span class="wemix-converged">Converged{its}: {message}.</span>{extra}'
    return (
        '<span class="wemix-not-converged" style="color:#b00020;font-weight:bold;">'
        f"⚠ Did not converge: {message}. Estimates may be unreliable.</span>{extra}"
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
        iccs = [_fmt(float(m.ICC), 3) if m.ICC is not None else "" for m in models]
        self._add("Model statistics", "ICC", "icc", iccs)

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
        if se_rows:
            table = table.tab_style(
                style=style.text(color="#555555", size="small"),
                locations=loc.body(columns=self.names, rows=se_rows),
            )
        return table

    def plot(self, conf_level: float | None = None, intercept: bool = True, *, level: float | None = None):
        """All models on one coefficient (forest) plot, dodged by model (intervals at
        ``conf_level``, by default the comparison's; ``level``: deprecated alias)."""
        from wemix_nb.display.plots import compare_plot

        conf_level = resolve_conf_level(self.conf_level if conf_level is None else conf_level, level)
        return compare_plot(self, conf_level=conf_level, intercept=intercept)

    def _repr_html_(self) -> str:
        return self.to_gt().as_raw_html()

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
