"""The "meat" of every sandwich covariance: the sampling variance of the per-top-group scores.

Both estimators (linear and GLMM) compute per-top-level-group score vectors ``s_g`` of the
pseudo-log-likelihood and call :func:`score_meat`, the single place where their sampling variance
is estimated.

Without a sampling design (WeMix's estimator), every top-level group is a PSU of one stratum::

    J = G / (G - 1) sum_g s_g s_g'

(the scores sum to zero at the estimate, so they are not centred). With a
:class:`~wemix_nb.model.sampling.SamplingDesign` (``strata=``, ``psu=``, ``fpc=``), the scores are
summed to PSU totals ``t_hi``, centred within strata, and weighted per stratum::

    J = sum_h (1 - f_h) n_h / (n_h - 1) sum_i (t_hi - tbar_h)(t_hi - tbar_h)'

the with-replacement (ultimate cluster) variance of R's ``survey`` package with a first-stage
finite population correction. A stratum with a single PSU (allowed only with
``lonely_psu="adjust"``) contributes ``(t_h1 - tbar)(t_h1 - tbar)'`` with ``tbar`` the mean of all
PSU totals (R's ``lonely.psu = "adjust"``). Without strata and fpc, with the top-level groups as
PSUs, this equals the first form up to rounding.

A model with a single top-level group has no between-group variance: the meat is NaN.
"""

from __future__ import annotations

import numpy as np

from wemix_nb.model.sampling import SamplingDesign


def _rowsum(values: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Sums of the rows of ``values`` ``(m, k)`` by ``index`` ``(m,)`` into ``(n, k)``."""
    out = np.zeros((n, values.shape[1]))
    np.add.at(out, index, values)
    return out


def score_meat(scores: np.ndarray, design: SamplingDesign | None = None) -> np.ndarray:
    """The sampling covariance of the total score from per-top-group scores.

    Parameters
    ----------
    scores
        ``(G_top, k)`` score vectors of the top-level groups.
    design
        The sampling design of the top-level groups; ``None``: each top-level group a PSU of one
        stratum, without centring (WeMix).

    Returns
    -------
    numpy.ndarray
        ``(k, k)``, symmetric; all NaN when the variance between top-level groups (or PSUs) cannot
        be estimated (a single top-level group).
    """
    scores = np.asarray(scores, dtype=float)
    G, k = scores.shape
    if design is None:
        if G < 2:
            return np.full((k, k), np.nan)
        return G / (G - 1) * (scores.T @ scores)
    totals = _rowsum(scores, design.psu, design.n_psu)
    n_h = design.psus_per_stratum
    stratum = design.psu_stratum
    means = _rowsum(totals, stratum, design.n_strata) / np.maximum(n_h, 1)[:, None]
    lonely = n_h[stratum] < 2
    centred = totals - np.where(lonely[:, None], totals.mean(axis=0), means[stratum])
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n_h > 1, (1.0 - design.fraction) * n_h / (n_h - 1), 1.0)
    if design.n_psu < 2:
        return np.full((k, k), np.nan)
    weighted = centred * factor[stratum][:, None]
    meat = weighted.T @ centred
    return 0.5 * (meat + meat.T)
