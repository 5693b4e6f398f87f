"""HTML reports built with great-tables: a result's report, Wald tests, weight summaries, comparisons.

Every table is a ``great_tables.GT`` object, so users can restyle or save it:

>>> tables = fit.to_gt()                                   # doctest: +SKIP
>>> tables.fixed.tab_options(table_font_size="12px").save("fixed.png")  # doctest: +SKIP

Numbers are taken from the result's ``tidy()`` (the single source of estimate / SE / statistic /
p-value / CI) when the result provides it, else computed here from ``coef``/``SE`` with normal
reference distributions (as ``tidy`` does).
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

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
TIDY_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]


def significance_stars(p: float) -> str:
    """``"***"``, ``"**"``, ``"*"``, ``"."`` or ``""`` for a p-value (NaN: ``""``)."""
    if p is None or not np.isfinite(p):
        return ""
    for threshold, mark in STARS:
        if p < threshold:
            return mark
    return ""


# -------------------------------------------------------------------------------------------------
# numbers shown (one place, shared by the tables, the charts and the widgets)


def coef_frame(result, level: float = 0.95) -> pd.DataFrame:
    """Fixed effects as a tidy DataFrame: ``result.tidy`` is the single source of these numbers."""
    return result.tidy(level=level)[TIDY_COLUMNS].reset_index(drop=True)


def variance_frame(result) -> pd.DataFrame:
    """Variance components from ``varDF``: group, term, variance, SE, SD (variances), Corr (covariances)."""
    rows = []
    var_df = result.varDF
    variances = {
        (r.grp, r.var1): r.vcov for r in var_df.itertuples() if _missing(r.var2) and not _missing(r.var1)
    }
    for r in var_df.itertuples():
        vcov = float(r.vcov)
        se = float(r.SEvcov) if r.SEvcov is not None and not _missing(r.SEvcov) else np.nan
        if _missing(r.var2):
            term = str(r.grp) if _missing(r.var1) else str(r.var1)
            rows.append((str(r.grp), term, vcov, se, math.sqrt(max(vcov, 0.0)), np.nan, False))
        else:
            v1, v2 = variances.get((r.grp, r.var1)), variances.get((r.grp, r.var2))
            corr = vcov / math.sqrt(v1 * v2) if v1 and v2 and v1 > 0 and v2 > 0 else np.nan
            rows.append((str(r.grp), f"{r.var1} × {r.var2}", vcov, se, np.nan, corr, True))
    return pd.DataFrame(rows, columns=["group", "term", "variance", "std_error", "sd", "corr", "covariance"])


def level_frame(result) -> pd.DataFrame:
    """Units and weights per level: ngroups + wgtStats (+ Kish design effect from the model frame)."""
    from wemix_nb.survey.describe import weight_stats

    ngroups = result.ngroups
    wgt = result.wgtStats
    frame = getattr(result, "frame", None)
    weight_columns = list((getattr(result, "options", None) or {}).get("weights") or [])
    arrays: dict[int, np.ndarray] = {}
    if frame is not None:
        arrays[1] = np.asarray(frame.weight1, dtype=float)
        for lv in frame.levels:
            arrays[int(lv.number)] = np.asarray(lv.weight, dtype=float)
    rows = []
    for k in range(1, len(ngroups) + 1):
        unit = "rows" if k == 1 else str(ngroups.index[k - 1])
        stats = wgt.loc[k] if k in wgt.index else pd.Series(dtype=float)
        deff = weight_stats(arrays[k])["deff"] if k in arrays else np.nan
        rows.append(
            {
                "level": k,
                "unit": unit,
                "weight": weight_columns[k - 1] if k - 1 < len(weight_columns) else "(unit weights)",
                "n": int(ngroups.iloc[k - 1]),
                "sum": float(stats.get("sum", np.nan)),
                "mean": float(stats.get("mean", np.nan)),
                "min": float(stats.get("min", np.nan)),
                "max": float(stats.get("max", np.nan)),
                "deff": float(deff),
            }
        )
    return pd.DataFrame(rows)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _family_text(result) -> str:
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


def result_gt(result, level: float = 0.95, digits: int = 3) -> ResultTables:
    """The report of a :class:`~wemix_nb.MixResult` as great-tables tables.

    - ``fixed``: title = formula, subtitle = family / sizes / log pseudo-likelihood; estimate,
      robust SE, t (z for GLMMs), p, significance stars and the ``level`` confidence interval;
    - ``variance``: variance components (variance, robust SE, SD; correlations of covariances)
      with the ICC as a note;
    - ``groups``: units and weights per level (n, sum, mean, min, max, Kish design effect) and
      the convergence note.
    """
    from great_tables import GT, html

    coefs = coef_frame(result, level)
    coefs["stars"] = [significance_stars(p) for p in coefs["p_value"]]
    stat = "t" if result.family is None else "z"
    pct = f"{100 * level:g}%"
    sizes = ", ".join(
        [f"{int(result.ngroups.iloc[0]):,} rows"]
        + [f"{int(n):,} {_html.escape(str(k))}" for k, n in result.ngroups.iloc[1:].items()]
    )
    subtitle = f"{_family_text(result)} · {sizes} · log pseudo-likelihood {_fmt(float(result.lnl), digits)}"
    top = str(result.ngroups.index[-1]) if len(result.ngroups) > 1 else "rows"
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
            std_error="Robust SE",
            statistic=f"{stat} value",
            p_value="p",
            stars="",
            conf_low=f"{pct} CI",
        )
        .tab_source_note(
            f"Robust (sandwich) standard errors, clustered on the top level ({top}); "
            f"normal reference distribution. {STARS_NOTE}"
        )
    )

    var = variance_frame(result)
    icc = getattr(result, "ICC", None)
    variance = (
        GT(var.drop(columns="covariance"), rowname_col="term", groupname_col="group")
        .tab_header(title="Variance components")
        .fmt_number(columns=["variance", "std_error", "sd"], decimals=digits)
        .fmt_number(columns="corr", decimals=3)
        .sub_missing(missing_text="")
        .cols_label(variance="Variance / Cov.", std_error="Robust SE", sd="SD", corr="Corr")
    )
    if icc is not None and np.isfinite(icc):
        scale = " (latent scale)" if result.family is not None else ""
        variance = variance.tab_source_note(
            f"Intraclass correlation (ICC){scale}: {_fmt(float(icc), 3)} "
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
    return ResultTables(fixed=fixed, variance=variance, groups=groups)


def _convergence_note(result) -> str:
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


def result_html(result) -> str:
    """The notebook report of a result (``MixResult._repr_html_``)."""
    return result_gt(result).as_raw_html()


# -------------------------------------------------------------------------------------------------
# Wald tests and weight summaries


def wald_gt(test):
    """A Wald test (:class:`wemix_nb.inference.WaldTest`) as a great-tables table.

    Title: the test type; subtitle: Wald (chi-square) statistic, degrees of freedom and p-value;
    one row per restriction with its estimate, hypothesised value, difference and standard error.
    """
    from great_tables import GT

    table_method = getattr(test, "table", None)
    if callable(table_method):
        body = table_method().reset_index()
        body = body.rename(columns={body.columns[0]: "term"})
        body["term"] = body["term"].astype(str)
    else:
        names = [str(n) for n in np.atleast_1d(test.names)]
        body = pd.DataFrame(
            {
                "term": names,
                "estimate": np.asarray(test.estimate, dtype=float).reshape(-1)[: len(names)],
                "hypothesis": np.asarray(test.hypothesis, dtype=float).reshape(-1)[: len(names)],
            }
        )
    kind = getattr(test, "type", None)
    what = {"beta": "fixed effects", "Lambda": "random-effect (co)variances"}.get(kind, kind)
    title = "Wald test" + (f" of {what}" if what else "")
    p = float(test.p_value)
    subtitle = (
        f"chi-square = {_fmt(float(test.statistic), 3)}, df = {int(test.df)}, p {_fmt_p(p, relation=True)} "
        f"{significance_stars(p)}"
    ).strip()
    numbers = [c for c in ("estimate", "hypothesis", "difference", "std_error") if c in body.columns]
    return (
        GT(body, rowname_col="term")
        .tab_header(title=title, subtitle=subtitle)
        .tab_stubhead("Parameter")
        .fmt_number(columns=numbers, decimals=3)
        .sub_missing(missing_text="—")
        .cols_label(
            estimate="Estimate", hypothesis="Hypothesised (H0)", difference="Difference", std_error="SE"
        )
        .tab_source_note(
            "H0: every listed parameter equals its hypothesised value (joint test, "
            f"chi-square with {int(test.df)} df). {STARS_NOTE}"
        )
    )


def wald_html(test) -> str:
    """HTML of a Wald test (for ``WaldTest._repr_html_``)."""
    return wald_gt(test).as_raw_html()


def weights_gt(summary):
    """A :class:`~wemix_nb._weights.WeightSummary` as a great-tables table."""
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


def weights_html(summary) -> str:
    return weights_gt(summary).as_raw_html()


# -------------------------------------------------------------------------------------------------
# side-by-side comparison


class Comparison:
    """Several fitted models side by side (from :func:`compare`).

    ``table`` is the DataFrame of displayed strings; :meth:`to_gt` the great-tables table; in a
    notebook the object shows as that table; :meth:`plot` draws all models on one coefficient plot.
    """

    def __init__(
        self, models: Sequence, names: Sequence[str] | None = None, digits: int = 3, level: float = 0.95
    ):
        models = list(models)
        if not models:
            from wemix_nb.errors import ArgumentError

            raise ArgumentError("compare() needs at least one fitted model.")
        if names is None:
            names = [f"({i + 1})" for i in range(len(models))]
        names = [str(n) for n in names]
        if len(names) != len(models) or len(set(names)) != len(names):
            from wemix_nb.errors import ArgumentError

            raise ArgumentError(f"names must be {len(models)} distinct labels, got {names}.")
        self.models = models
        self.names = names
        self.digits = digits
        self.level = level
        self.table = self._build()

    def _build(self) -> pd.DataFrame:
        d = self.digits
        coefs = [coef_frame(m, self.level).set_index("term") for m in self.models]
        terms = list(dict.fromkeys(t for c in coefs for t in c.index))
        rows: list[dict] = []

        def add(section: str, label: str, kind: str, values: list[str]):
            rows.append(
                {
                    "section": section,
                    "label": label,
                    "kind": kind,
                    **dict(zip(self.names, values, strict=True)),
                }
            )

        for term in terms:
            est, se = [], []
            for c in coefs:
                if term in c.index:
                    r = c.loc[term]
                    est.append(_fmt(r.estimate, d) + significance_stars(r.p_value))
                    se.append(f"({_fmt(r.std_error, d)})")
                else:
                    est.append("")
                    se.append("")
            add("Fixed effects", term, "estimate", est)
            add("Fixed effects", "", "se", se)
        vars_ = [variance_frame(m) for m in self.models]
        keys = list(dict.fromkeys((r.group, r.term) for v in vars_ for r in v.itertuples()))
        keys.sort(key=lambda key: key[0] == "Residual")  # stable: the residual last
        for group, term in keys:
            label = group if term in ("", group) else f"{group}: {term}"
            est, se = [], []
            for v in vars_:
                match = v[(v.group == group) & (v.term == term)]
                if len(match):
                    r = match.iloc[0]
                    est.append(_fmt(r.variance, d))
                    se.append(f"({_fmt(r.std_error, d)})")
                else:
                    est.append("")
                    se.append("")
            add("Variance components", label, "variance", est)
            add("Variance components", "", "se", se)
        add("Model statistics", "Log pseudo-likelihood", "lnl", [_fmt(float(m.lnl), d) for m in self.models])
        add("Model statistics", "N (rows)", "n", [f"{int(m.ngroups.iloc[0]):,}" for m in self.models])
        factors = list(dict.fromkeys(str(k) for m in self.models for k in m.ngroups.index[1:]))
        for factor in factors:
            add(
                "Model statistics",
                f"Groups: {factor}",
                "groups",
                [f"{int(m.ngroups[factor]):,}" if factor in m.ngroups.index else "" for m in self.models],
            )
        add(
            "Model statistics",
            "ICC",
            "icc",
            [_fmt(float(m.ICC), 3) if m.ICC is not None else "" for m in self.models],
        )
        return pd.DataFrame(rows)

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

    def plot(self, level: float | None = None, intercept: bool = True):
        """All models on one coefficient (forest) plot, dodged by model."""
        from wemix_nb.display.plots import compare_plot

        return compare_plot(self, level=self.level if level is None else level, intercept=intercept)

    def _repr_html_(self) -> str:
        return self.to_gt().as_raw_html()

    def __repr__(self) -> str:
        return f"Model comparison\n{self.table.drop(columns='kind').to_string(index=False)}"


def compare(
    models: Sequence, names: Sequence[str] | None = None, digits: int = 3, level: float = 0.95
) -> Comparison:
    """Side-by-side regression table of several fitted models.

    Estimates with robust SEs in parentheses and significance stars, variance components (with
    SEs), log pseudo-likelihood, N and groups per factor, ICC. Returns a :class:`Comparison`
    (shows as a table in notebooks; ``.to_gt()`` for the great-tables object, ``.plot()`` for a
    coefficient plot of all models).
    """
    return Comparison(models, names=names, digits=digits, level=level)
