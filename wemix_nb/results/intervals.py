"""Confidence intervals of the variance components, from the robust (sandwich) covariance of their
estimates by the delta method on scales where a normal approximation holds better and whose
intervals map back inside the parameter space.

* A variance ``v`` (random effects' and the residual): Wald on the log standard deviation,
  ``log sqrt(v)``, whose standard error is ``se(v) / (2 v)``; back-transformed, the interval is
  ``v exp(-/+ z se(v) / v)``, always positive.
* A covariance ``c`` of effects with variances ``v1``, ``v2``: Wald on Fisher's
  ``z = atanh(rho)`` of the correlation ``rho = c / sqrt(v1 v2)``; ``se(rho)`` comes from the
  3 x 3 covariance of ``(c, v1, v2)`` (``var_theta``) and ``se(z) = se(rho) / (1 - rho^2)``;
  back-transformed by ``tanh``, the interval lies inside (-1, 1). The row reports the correlation.

A variance estimated at 0, or one without a standard error, gets no interval (NaN): the delta
method says nothing on the boundary. Near it (a variance that is tiny next to its standard error)
the interval runs from about 0 to a very large value, possibly ``inf``: equally uninformative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from wemix_nb.model.covariance import parameter_name
from wemix_nb.model.variance import VarianceComponents, VarianceParameter

__all__ = ["INTERVAL_COLUMNS", "LOG_SD", "FISHER_Z", "variance_intervals"]

#: columns of :func:`variance_intervals` (and of ``confint(which="variances" | "all")``)
INTERVAL_COLUMNS = ["parameter", "estimate", "std_error", "lower", "upper", "method"]
#: the method of a variance's interval
LOG_SD = "Wald on log SD, robust SE (delta method)"
#: the method of a correlation's interval
FISHER_Z = "Wald on Fisher z, robust SE (delta method)"


def variance_intervals(variance: VarianceComponents, conf_level: float = 0.95) -> pd.DataFrame:
    """Confidence intervals of every variance and correlation of a fit.

    Parameters
    ----------
    variance
        The fit's :class:`~wemix_nb.model.variance.VarianceComponents` (``result.variance``).
    conf_level
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per parameter in WeMix's ``varDF`` order, indexed by its name (the naming rule of
        ``vars``: ``"Subject.Days"``, ``"Subject.Days.Intercept"``, ``"Residual"``), with columns
        ``parameter`` (``"variance"``, or ``"correlation"`` for a covariance: its row reports the
        correlation of the two effects), ``estimate``, ``std_error`` (robust, on that scale),
        ``lower``, ``upper`` and ``method``.
    """
    z = stats.norm.ppf(0.5 + conf_level / 2)
    cov = variance.var_theta
    rows = {}
    for p in variance.table_parameters():
        if p.kind == "variance":
            rows[p.name] = _variance_row(p.estimate, p.std_error, z)
        else:
            rows[p.name] = _correlation_row(variance, p, cov, z)
    return pd.DataFrame.from_dict(rows, orient="index", columns=INTERVAL_COLUMNS)


def _variance_row(v: float, se: float, z: float) -> list:
    """The log-SD interval of a variance."""
    if not (v > 0 and np.isfinite(se)):
        return ["variance", v, se, np.nan, np.nan, LOG_SD]
    half_width = z * se / v  # 2 z se(log sd), on the log-variance scale
    with np.errstate(over="ignore"):  # a variance near 0 next to its SE: the interval reaches inf
        return ["variance", v, se, v * np.exp(-half_width), v * np.exp(half_width), LOG_SD]


def _correlation_row(variance: VarianceComponents, p: VarianceParameter, cov: pd.DataFrame, z: float) -> list:
    """The Fisher-z interval of the correlation behind a covariance."""
    level = next(lv for lv in variance.levels if lv.group == p.group)
    first, second = level.terms.index(p.term1), level.terms.index(p.term2)
    v1, v2 = level.sigma[first, first], level.sigma[second, second]
    names = [p.name, *(parameter_name(p.group, level.terms, a, a) for a in (first, second))]
    rho = p.correlation
    if not (v1 > 0 and v2 > 0 and abs(rho) < 1) or not all(n in cov.index for n in names):
        return ["correlation", rho, np.nan, np.nan, np.nan, FISHER_Z]
    # d rho / d (c, v1, v2)
    gradient = np.array([1.0 / np.sqrt(v1 * v2), -rho / (2 * v1), -rho / (2 * v2)])
    block = cov.loc[names, names].to_numpy(dtype=float)
    se_rho = float(np.sqrt(max(gradient @ block @ gradient, 0.0)))
    if not np.isfinite(se_rho):
        return ["correlation", rho, se_rho, np.nan, np.nan, FISHER_Z]
    centre, half_width = np.arctanh(rho), z * se_rho / (1.0 - rho**2)
    return ["correlation", rho, se_rho, np.tanh(centre - half_width), np.tanh(centre + half_width), FISHER_Z]
