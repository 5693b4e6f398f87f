"""The numbers the notebook layer shows, as DataFrames: one place shared by the HTML tables
(:mod:`wemix_nb.display.html`), the charts (:mod:`wemix_nb.display.plots`) and the maketables hooks
(:mod:`wemix_nb.display.maketables`).

- :func:`coef_frame`: the fixed effects, from ``result.tidy`` (the single source of estimate, SE,
  statistic, p-value and confidence interval);
- :func:`variance_frame`: the variance components, from ``result.variance`` (names, the report's
  labels, estimates, SEs, SDs and correlations);
- :func:`level_frame`: units and weights per level.

Nothing here imports great-tables, Altair or ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wemix_nb.results.report import resolve_conf_level

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["TIDY_COLUMNS", "VARIANCE_COLUMNS", "coef_frame", "level_frame", "variance_frame"]

#: columns of :func:`coef_frame`
TIDY_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
#: columns of :func:`variance_frame`
VARIANCE_COLUMNS = ["name", "group", "term", "variance", "std_error", "sd", "corr", "covariance"]


def coef_frame(
    result: MixResult, conf_level: float = 0.95, *, df: str | None = None, level: float | None = None
) -> pd.DataFrame:
    """Fixed effects as a tidy DataFrame (:data:`TIDY_COLUMNS`) with ``conf_level`` intervals.

    Parameters
    ----------
    result
        A fitted model.
    conf_level
        Confidence level of ``conf_low``/``conf_high``.
    df
        The reference distribution (see :meth:`~wemix_nb.MixResult.tidy`; ``None``: its default,
        t with few top-level groups).
    level
        Deprecated alias of ``conf_level``.

    Returns
    -------
    pandas.DataFrame
        One row per coefficient, in the model's order.
    """
    conf_level = resolve_conf_level(conf_level, level)
    return result.tidy(conf_level, df)[TIDY_COLUMNS].reset_index(drop=True)


def variance_frame(result: MixResult) -> pd.DataFrame:
    """Variance components as displayed, one row per parameter in WeMix's order.

    Parameters
    ----------
    result
        A fitted model.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VARIANCE_COLUMNS`: ``name`` (the parameter's name), ``group``, ``term`` (its
        label under the group: ``"Days"``, ``"Intercept × Days"``, ``"Residual"``), ``variance``
        (the estimate, a covariance for covariances), ``std_error``, ``sd`` (variances),
        ``corr`` (covariances) and ``covariance`` (True for covariances).
    """
    rows = [
        (
            p.name,
            p.group,
            p.label,
            p.estimate,
            p.std_error,
            p.std_dev,
            p.correlation,
            p.kind == "covariance",
        )
        for p in result.variance.table_parameters()
    ]
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


def level_frame(result: MixResult) -> pd.DataFrame:
    """Units and weights per level: ``ngroups`` and ``wgtStats``, plus Kish's design effect
    computed from the model frame's weights.

    Returns
    -------
    pandas.DataFrame
        Columns level, unit, weight (column name), n, sum, mean, min, max, deff.
    """
    from wemix_nb.survey.describe import weight_stats

    ngroups = result.ngroups
    wgt = result.wgtStats
    frame = result.frame
    weight_columns = list((result.options or {}).get("weights") or [])
    arrays: dict[int, np.ndarray] = {}
    if frame is not None:
        arrays[1] = np.asarray(frame.weight1, dtype=float)
        for lv in frame.levels:
            arrays[int(lv.number)] = np.asarray(lv.weight, dtype=float)
    rows = []
    for k in range(1, len(ngroups) + 1):
        stats = wgt.loc[k] if k in wgt.index else pd.Series(dtype=float)
        rows.append(
            {
                "level": k,
                "unit": "rows" if k == 1 else str(ngroups.index[k - 1]),
                "weight": weight_columns[k - 1] if k - 1 < len(weight_columns) else "(unit weights)",
                "n": int(ngroups.iloc[k - 1]),
                "sum": float(stats.get("sum", np.nan)),
                "mean": float(stats.get("mean", np.nan)),
                "min": float(stats.get("min", np.nan)),
                "max": float(stats.get("max", np.nan)),
                "deff": float(weight_stats(arrays[k])["deff"]) if k in arrays else np.nan,
            }
        )
    return pd.DataFrame(rows)
