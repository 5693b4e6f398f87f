"""Beyond WeMix: R^2 of mixed models and degrees of freedom for tests and intervals.

R^2 (Nakagawa & Schielzeth 2013, with Johnson's 2014 extension to random slopes)
    ``var_f`` is the variance of the fixed part ``X beta`` over the rows, weighted by the
    unconditional level-1 weights; ``var_r`` the weighted mean over rows of ``z_i' Sigma_l z_i``
    summed over the levels (for random intercepts: the sum of their variances); ``var_e`` the
    residual variance ``sigma^2`` for linear models and, on the latent scale of a GLMM, ``pi^2/3``
    (logit), ``1`` (probit) or ``log(1 + 1/mu)`` (Poisson with log link; ``mu`` is the weighted
    mean of the marginal mean ``exp(X beta + var_r,i / 2)``). Then
    ``R2_marginal = var_f / (var_f + var_r + var_e)`` and
    ``R2_conditional = (var_f + var_r) / (var_f + var_r + var_e)``.

Degrees of freedom
    ``"normal"``: infinite (z tests, WeMix's convention); ``"groups"``: the number of top-level
    groups minus the number of fixed effects (a t reference for few clusters); for a result
    combined over plausible values, ``"groups"`` (or ``"rubin"``) gives the Barnard-Rubin degrees
    of freedom per coefficient, which use that complete-data value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError
from wemix_nb.options import check_result
from wemix_nb.results.diagnostics import design_df

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

DF_KINDS = ("normal", "groups", "rubin")


def _weighted_var(x: np.ndarray, w: np.ndarray) -> float:
    mean = np.sum(w * x) / np.sum(w)
    return float(np.sum(w * (x - mean) ** 2) / np.sum(w))


def _random_variance_by_row(result: MixResult) -> np.ndarray:
    """``sum_l z_il' Sigma_l z_il`` per row (Johnson 2014)."""
    # Sigma_l = scale * Lambda_l Lambda_l' from the fitted theta (relative to sigma for linear
    # models), laid out by the result's variance components: R^2 is a function of the parameters
    # (beta, theta, sigma), so a result whose sigma or family is replaced is measured on its own
    # scale. For an assembled result this is the stored Sigma_l up to rounding.
    scale = result.sigma**2 if result.family is None else 1.0
    covs = result.variance.covariances_of(result.theta.to_numpy(), scale)
    total = np.zeros(result.frame.n)
    for level, cov in zip(result.frame.levels, covs, strict=True):
        total += np.einsum("ni,ij,nj->n", level.Z, cov, level.Z)
    return total


def r_squared(result: MixResult) -> pd.Series:
    """Marginal and conditional R^2 of a fitted model (Nakagawa & Schielzeth 2013).

    Returns
    -------
    pandas.Series
        ``marginal``, ``conditional``, and the pieces ``var_fixed``, ``var_random``,
        ``var_residual`` (latent-scale distribution-specific variance for GLMMs).
    """
    frame = result.frame
    if frame is None or frame.n == 0:
        raise ArgumentError("R^2 needs the rows of the fit (the result carries no model frame with data).")
    w = frame.weight1
    eta_fixed = frame.X @ result.coef.to_numpy()
    var_f = _weighted_var(eta_fixed, w)
    z_sigma_z = _random_variance_by_row(result)
    var_r = float(np.sum(w * z_sigma_z) / np.sum(w))
    if result.family is None:
        var_e = float(result.sigma**2)
    else:
        name, link = result.family.name, result.family.link
        if name == "binomial" and link == "logit":
            var_e = float(np.pi**2 / 3)
        elif name == "binomial" and link == "probit":
            var_e = 1.0
        elif name == "poisson" and link == "log":
            mu = float(np.sum(w * np.exp(eta_fixed + 0.5 * z_sigma_z)) / np.sum(w))
            var_e = float(np.log1p(1.0 / mu))
        else:
            raise ArgumentError(f"R^2 is not defined here for family {name!r} with link {link!r}.")
    total = var_f + var_r + var_e
    return pd.Series(
        {
            "marginal": var_f / total,
            "conditional": (var_f + var_r) / total,
            "var_fixed": var_f,
            "var_random": var_r,
            "var_residual": var_e,
        },
        name="r_squared",
    )


def degrees_of_freedom(result: MixResult, kind: str = "normal") -> pd.Series:
    """Degrees of freedom of each coefficient's t statistic, for p-values and intervals.

    Parameters
    ----------
    result
        A :class:`~wemix_nb.MixResult` (or :class:`~wemix_nb.pv.PVResult`).
    kind
        ``"normal"`` (infinite: normal reference, as WeMix), ``"groups"`` (top-level groups minus
        fixed effects; PSUs minus strata for design-based (linearized) standard errors;
        Barnard-Rubin df for plausible-value results) or ``"rubin"`` (plausible-value results
        only).

    Returns
    -------
    pandas.Series
        Indexed by coefficient name. Use ``scipy.stats.t(df)`` (``inf`` gives the normal).
    """
    check_result(result, "degrees_of_freedom")
    if kind not in DF_KINDS:
        raise ArgumentError(f"df must be one of {', '.join(map(repr, DF_KINDS))}; got {kind!r}.")
    index = result.coef.index
    rubin = getattr(result, "rubin", None)
    if kind == "normal":
        values = np.full(len(index), np.inf)
    elif rubin is not None:
        values = rubin["df"].reindex(index).to_numpy(dtype=float)
    elif kind == "rubin":
        raise ArgumentError("df='rubin' needs a result combined over plausible values (mix(..., pv=...)).")
    else:
        design = design_df(result)
        n_top = int(result.ngroups.iloc[-1])
        values = np.full(len(index), float(max(n_top - len(index), 1) if design is None else design))
    return pd.Series(values, index=index, name="df")
