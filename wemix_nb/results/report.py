"""Text reports of a fit: ``summary()`` (WeMix's printed layout), the short ``str(result)``, and the
tidy tables (``tidy``, ``variance_components``, ``random_effects``, ``to_dict``).

Number formatting follows R's ``format(x, digits = d)`` for a column: every value is shown with at
least ``d`` significant digits and the whole column shares one number of decimals (the most any value
needs), so the printed summary reads like WeMix's.
"""

from __future__ import annotations

import html
import math
import textwrap
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from wemix_nb.errors import ArgumentError
from wemix_nb.options import check_flag, check_positive_int
from wemix_nb.results.notes import se_method, summary_notes, survey_arguments

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

# -------------------------------------------------------------------------------------------------
# R-like number formatting


def _needed(x: float, digits: int) -> tuple[int, int, int]:
    """(significant digits needed, power of ten, decimals needed) of ``x`` shown to ``digits``."""
    if x == 0:
        return 1, 0, 0
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    power = int(exponent)
    nsig = len(mantissa.replace(".", "").rstrip("0")) or 1
    return nsig, power, max(0, nsig - power - 1)


def format_column(
    values: Iterable[float | None], digits: int = 4, nsmall: int = 0, na: str = "NA"
) -> list[str]:
    """Format numbers like R's ``format(x, digits, nsmall)``: one common number of decimals.

    Falls back to scientific notation when that is narrower than the fixed form (R's rule with
    ``scipen = 0``).

    Parameters
    ----------
    values
        The column's numbers (``None`` and NaN are missing).
    digits
        Significant digits every value shows at least.
    nsmall
        Least number of decimals.
    na
        Text of a missing value.

    Returns
    -------
    list of str
        One string per value.
    """
    values = [float("nan") if v is None else float(v) for v in values]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [na if not math.isinf(v) else ("Inf" if v > 0 else "-Inf") for v in values]
    info = [_needed(v, digits) for v in finite]
    decimals = max(max(d for _, _, d in info), nsmall)
    decimals = min(decimals, 15)
    neg = any(v < 0 for v in finite)
    left = max(max(p + 1, 1) for _, p, _ in info)
    fixed_width = neg + left + (decimals > 0) + decimals
    mantissa_dec = max(n for n, _, _ in info) - 1
    sci_width = neg + (mantissa_dec > 0) + mantissa_dec + 1 + 4
    out = []
    for v in values:
        if math.isnan(v):
            out.append(na)
        elif math.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        elif fixed_width <= sci_width:
            out.append(f"{v:.{decimals}f}")
        else:
            out.append(f"{v:.{mantissa_dec}e}")
    return out


def format_number(x: float, digits: int = 7, nsmall: int = 0) -> str:
    """One number formatted like R's ``format(x, digits, nsmall)`` (see :func:`format_column`)."""
    return format_column([x], digits, nsmall)[0]


def text_table(columns: list[tuple[str, list[str]]], rownames: list[str] | None = None) -> list[str]:
    """Lines of a right-aligned table like R's ``print.data.frame`` (row names left-aligned).

    Parameters
    ----------
    columns
        ``(header, cells)`` per column, the cells already formatted.
    rownames
        Optional row names, printed first.

    Returns
    -------
    list of str
        The header line and one line per row, without trailing blanks.
    """
    widths = [max([len(head), *map(len, cells)]) for head, cells in columns]
    n = len(columns[0][1]) if columns else 0
    lead_width = max(map(len, rownames)) if rownames else 0
    lines = [
        (" " * lead_width if rownames else "")
        + "".join(" " + head.rjust(w) for (head, _), w in zip(columns, widths, strict=True))
    ]
    for i in range(n):
        lead = rownames[i].ljust(lead_width) if rownames else ""
        lines.append(
            lead + "".join(" " + cells[i].rjust(w) for (_, cells), w in zip(columns, widths, strict=True))
        )
    return [line.rstrip() for line in lines]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


# -------------------------------------------------------------------------------------------------
# building blocks shared by summary() and the tidy tables


def variance_table(result: MixResult) -> pd.DataFrame:
    """WeMix's ``Variance terms`` table (see
    :meth:`~wemix_nb.model.variance.VarianceComponents.terms_table`); the residual row for linear
    models only (a GLMM has no residual variance)."""
    return result.variance.terms_table(with_residual=result.family is None)


def groups_table(result: MixResult) -> pd.DataFrame:
    """WeMix's ``Groups`` table: Level, Group, n size, mean wgt, sum wgt (unconditional weights),
    top level first."""
    names = list(result.ngroups.index)
    rows = []
    for level in range(result.levels, 0, -1):
        stats_row = result.wgtStats.loc[level]
        rows.append(
            {
                "Level": level,
                "Group": "Obs" if level == 1 else str(names[level - 1]),
                "n size": int(result.ngroups.iloc[level - 1]),
                "mean wgt": float(stats_row["mean"]),
                "sum wgt": float(stats_row["sum"]),
            }
        )
    return pd.DataFrame(rows, columns=["Level", "Group", "n size", "mean wgt", "sum wgt"])


def coef_table(result: MixResult) -> pd.DataFrame:
    """WeMix's ``Fixed Effects`` table: Estimate, Std. Error (robust), t value."""
    return pd.DataFrame(
        {"Estimate": result.coef, "Std. Error": result.SE, "t value": result.coef / result.SE}
    )


def call_text(result: MixResult) -> str:
    """The call that fits the model, as text: ``mix('y ~ x + (1|g)', data, weights=[...])``."""
    opts = result.options or {}
    parts = [repr(result.formula), "data"]
    if opts.get("weights") is not None:
        parts.append(f"weights={list(opts['weights'])!r}")
    if result.family is not None:
        parts.append(f"family={result.family_name!r}")
        parts.append(f"link={result.link!r}")
        if result.nquad is not None or opts.get("nquad") is not None:
            parts.append(f"nquad={result.nquad if result.nquad is not None else opts.get('nquad')}")
    if opts.get("cweights"):
        parts.append("cweights=True")
    if opts.get("center_group"):
        parts.append(f"center_group={opts['center_group']!r}")
    if opts.get("center_grand"):
        parts.append(f"center_grand={opts['center_grand']!r}")
    parts += survey_arguments(opts)
    return f"mix({', '.join(parts)})"


# -------------------------------------------------------------------------------------------------
# summary()


@dataclass
class MixSummary:
    """What ``result.summary()`` returns; ``print()`` it for WeMix's layout.

    Attributes
    ----------
    call
        The call, as text.
    variance
        The ``Variance terms`` table (see :func:`variance_table`).
    groups
        The ``Groups`` table: n size, mean and sum of the unconditional weights per level.
    coef
        Fixed effects: ``Estimate``, ``Std. Error`` (robust), ``t value``.
    lnl
        The weighted log-likelihood.
    ICC
        Intraclass correlation (linear models only; ``None`` for GLMMs), WeMix's.
    digits
        Significant digits of the tables (the log-likelihood uses 7).
    notes
        Lines printed after the fixed effects: how the standard errors were computed (when not
        WeMix's sandwich) and how the levels are weighted (level-1 weights only).
    ICC_SE
        Standard error of the ICC (replicate weights), or ``None``.
    diagnostics
        What qualifies the fit (few top-level groups, a boundary fit, how to read the ICC,
        convergence: ``result.diagnostics.notes()``), printed last under "Notes:".
    """

    call: str
    variance: pd.DataFrame
    groups: pd.DataFrame
    coef: pd.DataFrame
    lnl: float
    ICC: float | None
    family: str = "gaussian"
    link: str = "identity"
    digits: int = 4
    notes: tuple[str, ...] = ()
    ICC_SE: float | None = None
    diagnostics: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The printed summary, one string per line (what ``str()`` joins)."""
        d = self.digits
        out = ["Call:", self.call, ""]
        if self.family != "gaussian":
            out[2:2] = [f"Family: {self.family} (link {self.link!r})"]
        v = self.variance
        columns = [
            ("Level", [str(int(x)) for x in v["Level"]]),
            ("Group", [str(x) for x in v["Group"]]),
            ("Name", [str(x) for x in v["Name"]]),
            ("Variance", format_column(v["Variance"], d)),
            ("Std. Error", format_column(v["Std. Error"], d)),
            ("Std.Dev.", format_column(v["Std.Dev."], d)),
        ]
        for name in [c for c in v.columns if c.startswith("Corr")]:
            columns.append((name, ["" if _is_missing(x) else f"{round(float(x), 2):g}" for x in v[name]]))
        out += ["Variance terms:", *text_table(columns)]
        g = self.groups
        out += [
            "Groups:",
            *text_table(
                [
                    ("Level", [str(int(x)) for x in g["Level"]]),
                    ("Group", [str(x) for x in g["Group"]]),
                    ("n size", [str(int(x)) for x in g["n size"]]),
                    ("mean wgt", format_column(g["mean wgt"], d)),
                    ("sum wgt", format_column(g["sum wgt"], d)),
                ]
            ),
            "",
        ]
        c = self.coef
        est_se = format_column([*c["Estimate"], *c["Std. Error"]], d)
        k = len(c)
        out += [
            "Fixed Effects:",
            *text_table(
                [
                    ("Estimate", est_se[:k]),
                    ("Std. Error", est_se[k:]),
                    ("t value", format_column(c["t value"], d)),
                ],
                rownames=[str(i) for i in c.index],
            ),
            "",
        ]
        if self.notes:
            out += [*self.notes, ""]
        out.append(f"lnl= {format_number(self.lnl, 7, 2)}")
        if self.ICC is not None and self.family == "gaussian":
            se = "" if self.ICC_SE is None else f" (SE {format_number(self.ICC_SE, d)})"
            out.append(f"Intraclass Correlation= {format_number(self.ICC, d)}{se}")
        if self.diagnostics:
            out += ["", "Notes:"]
            for note in self.diagnostics:
                out += textwrap.wrap(note, width=100, initial_indent="* ", subsequent_indent="  ")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        """The text layout in a ``<pre>`` block (the notebook report of a fit is the result's own
        ``_repr_html_``). Its lines are laid out for a fixed width, so a narrow output area scrolls
        them sideways instead of breaking them again mid-word."""
        style = "white-space: pre; overflow-x: auto"
        return f'<pre style="{style}">{html.escape(str(self))}</pre>'


def summary(result: MixResult, digits: int = 4) -> MixSummary:
    """WeMix's summary of a fit (:meth:`MixResult.summary <wemix_nb.MixResult.summary>`).

    Parameters
    ----------
    result
        A fitted model.
    digits
        Significant digits of the tables.

    Returns
    -------
    MixSummary
    """
    check_positive_int(digits, "digits")
    return MixSummary(
        call=call_text(result),
        variance=variance_table(result),
        groups=groups_table(result),
        coef=coef_table(result),
        lnl=float(result.lnl),
        ICC=None if result.ICC is None or result.family is not None else float(result.ICC),
        family=result.family_name,
        link=result.link,
        digits=digits,
        notes=summary_notes(result),
        ICC_SE=getattr(result, "ICC_SE", None),
        diagnostics=tuple(result.diagnostics.notes()),
    )


def short_text(result: MixResult) -> str:
    """The short form of ``str(result)``: model, sizes, fixed effects with SEs, variances."""
    kind = "Linear" if result.family is None else f"{result.family_name} ({result.link} link)"
    groups = ", ".join(f"{k}: {v}" for k, v in result.ngroups.iloc[1:].items())
    status = "converged" if result.converged else "NOT converged"
    lines = [
        f"{kind} weighted mixed model: {result.formula}",
        f"{result.nobs} rows; groups {groups}; lnl = {format_number(result.lnl, 7, 2)} ({status})",
        "Fixed effects (robust SE):",
    ]
    variances = result.variance.vars
    est_se = format_column([*result.coef, *result.SE], 4)
    k = len(result.coef)
    lines += [
        "  " + line
        for line in text_table(
            [("Estimate", est_se[:k]), ("Std. Error", est_se[k:])],
            rownames=[str(i) for i in result.coef.index],
        )
    ]
    lines.append(
        "Variances: "
        + ", ".join(
            f"{name} {val}" for name, val in zip(variances.index, format_column(variances, 4), strict=True)
        )
    )
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# tidy tables


def tidy(result: MixResult, conf_level: float = 0.95, df: str | None = None) -> pd.DataFrame:
    """One row per fixed effect: term, estimate, std_error (robust), statistic, df, p_value and the
    ``conf_level`` interval conf_low, conf_high.

    ``df="normal"`` (WeMix's choice) uses the normal reference; ``"groups"`` a t reference with
    (top-level groups - fixed effects) degrees of freedom, as survey analysts often do, or with
    (PSUs - strata) for design-based (linearized) standard errors; plausible-value results use
    Barnard-Rubin degrees of freedom for both ``"groups"`` and ``"rubin"``. ``None`` chooses
    ``"groups"`` below 30 top-level groups (design-based: below 30 PSUs - strata), else
    ``"normal"`` (``result.diagnostics.default_df``).

    The table's ``attrs["se_method"]`` says how the standard errors were computed
    (:func:`se_method`: sandwich, design-based, replicate weights, plausible values).
    """
    from wemix_nb.results.extras import degrees_of_freedom

    check_conf_level(conf_level)
    dof = degrees_of_freedom(result, result.diagnostics.default_df if df is None else df).to_numpy()
    est, se = result.coef.to_numpy(float), result.SE.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = est / se
    crit = stats.t.ppf(0.5 + conf_level / 2, dof)
    table = pd.DataFrame(
        {
            "term": [str(t) for t in result.coef.index],
            "estimate": est,
            "std_error": se,
            "statistic": statistic,
            "df": dof,
            "p_value": 2 * stats.t.sf(np.abs(statistic), dof),
            "conf_low": est - crit * se,
            "conf_high": est + crit * se,
        }
    )
    table.attrs["se_method"] = se_method(result)
    return table


CONFINT_WHICH = ("fixed", "variances", "all")


def confint(
    result: MixResult, conf_level: float = 0.95, df: str | None = None, which: str = "fixed"
) -> pd.DataFrame:
    """Confidence intervals: of the fixed effects (``which="fixed"``, columns ``lower`` and
    ``upper``), of the variance components (``"variances"``, see
    :func:`~wemix_nb.results.intervals.variance_intervals`) or of both (``"all"``, the variance
    table's columns; fixed effects first, their ``parameter`` is ``"coefficient"``)."""
    from wemix_nb.results.intervals import INTERVAL_COLUMNS, variance_intervals

    if which not in CONFINT_WHICH:
        raise ArgumentError(f"which must be one of {', '.join(map(repr, CONFINT_WHICH))}; got {which!r}.")
    check_conf_level(conf_level)
    if which == "variances":
        return variance_intervals(result.variance, conf_level)
    table = tidy(result, conf_level, df).set_index("term")
    table.index.name = None
    if which == "fixed":
        return table[["conf_low", "conf_high"]].rename(columns={"conf_low": "lower", "conf_high": "upper"})
    kind = result.diagnostics.default_df if df is None else df
    reference = "normal" if kind == "normal" else "t"
    fixed = pd.DataFrame(
        {
            "parameter": "coefficient",
            "estimate": table["estimate"],
            "std_error": table["std_error"],
            "lower": table["conf_low"],
            "upper": table["conf_high"],
            "method": f"Wald, robust SE ({reference} reference)",
        },
        columns=INTERVAL_COLUMNS,
    )
    return pd.concat([fixed, variance_intervals(result.variance, conf_level)])


def check_conf_level(conf_level: float) -> None:
    """Raise :class:`~wemix_nb.errors.ArgumentError` unless ``0 < conf_level < 1``."""
    if not isinstance(conf_level, int | float) or not 0 < conf_level < 1:
        raise ArgumentError(f"conf_level must be a number strictly between 0 and 1, got {conf_level!r}.")


def resolve_conf_level(conf_level: float, level: float | None, stacklevel: int = 3) -> float:
    """``conf_level``, or the deprecated ``level=`` keyword when it was given (with a
    ``FutureWarning``: ``level`` names hierarchy levels in wemix_nb)."""
    if level is None:
        return conf_level
    warnings.warn(
        "The keyword level= of a confidence level is deprecated; use conf_level= (level refers to "
        "the levels of the hierarchy).",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return level


def variance_components(result: MixResult) -> pd.DataFrame:
    """One row per variance and free covariance (and the residual variance of a linear model); see
    :meth:`~wemix_nb.model.variance.VarianceComponents.tidy`."""
    return result.variance.tidy()


def random_effects(result: MixResult, with_sd: bool = True, raw: bool = False) -> dict[str, pd.DataFrame]:
    """Per grouping factor, a DataFrame indexed by group: the modes ``<term>`` and (``with_sd``)
    their conditional SDs ``<term>_sd``; rescaled to each group's sample size unless ``raw`` (see
    :mod:`wemix_nb.results.ranef`). Each table's ``attrs["weights"]`` says how the weights were
    treated."""
    check_flag(with_sd, "with_sd")
    check_flag(raw, "raw")
    predictions = result.random_effect_predictions(raw)
    out = {}
    for factor, modes in predictions.modes.items():
        table = modes.copy()
        if with_sd:
            sd = predictions.sd.get(factor)
            pieces = {}
            for term in modes.columns:
                pieces[str(term)] = modes[term]
                pieces[f"{term}_sd"] = (
                    sd[term]
                    if sd is not None and term in sd.columns
                    else pd.Series(np.nan, index=modes.index)
                )
            table = pd.DataFrame(pieces, index=modes.index)
        table.attrs["weights"] = predictions.weights
        out[factor] = table
    return out


# -------------------------------------------------------------------------------------------------
# to_dict


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    if value is pd.NA:
        return None
    return str(value)


def _series(s: pd.Series) -> dict:
    return {str(k): v for k, v in s.items()}


def _matrix(df: pd.DataFrame) -> dict:
    return {"names": [str(c) for c in df.columns], "data": df.to_numpy(dtype=float).tolist()}


def to_dict(result: MixResult) -> dict:
    """A JSON-serialisable dictionary of the estimates (NaN and infinities become ``None``)."""
    out = {
        "formula": result.formula,
        "family": result.family_name,
        "link": result.link,
        "nobs": result.nobs,
        "levels": result.levels,
        "converged": bool(result.converged),
        "n_iterations": result.n_iterations,
        "lnl": result.lnl,
        "coef": _series(result.coef),
        "SE": _series(result.SE),
        "cov_mat": _matrix(result.cov_mat),
        "theta": _series(result.theta),
        "vars": _series(result.vars),
        "sigma": result.sigma,
        "ICC": result.ICC,
        "ngroups": _series(result.ngroups),
        "wgtStats": {str(level): _series(row) for level, row in result.wgtStats.iterrows()},
        "varDF": [
            {k: (None if _is_missing(v) else v) for k, v in row.items()}
            for row in result.varDF.to_dict(orient="records")
        ],
        "var_theta": _matrix(result.var_theta),
        "ranef": {
            factor: {"ids": [str(g) for g in table.index], **_matrix(table)}
            for factor, table in result.ranef.items()
        },
        "options": dict(result.options),
    }
    return _jsonable(out)
