"""The one path from an estimator's solution to a :class:`~wemix_nb.results.MixResult`.

Each estimator's output is translated into the same pieces -- fixed effects and their covariances,
a :class:`~wemix_nb.model.variance.VarianceComponents`, the random effects' modes, residuals and
fitted values -- and :func:`_assemble` builds the result from them, so linear models, GLMMs and the
Dask fits share every table (``vars``, ``varDF``, ``var_theta`` are views of the one variance value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm import GlmmFit
from wemix_nb.estimation.linear import LinearProblem, LinearSolution
from wemix_nb.model.covariance import parameter_name
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.variance import VarianceComponents
from wemix_nb.options import FitOptions
from wemix_nb.results.details import GlmmDetails, LegacyExtra, LinearDetails
from wemix_nb.results.result import MixResult

__all__ = [
    "WeightTotals",
    "glmm_result",
    "group_tables",
    "linear_result",
    "random_effect_tables",
    "variance_views",
]

# variance of the latent residual on the link scale (logistic: pi^2/3, standard normal: 1)
_LATENT_RESIDUAL = {"logit": np.pi**2 / 3, "probit": 1.0}


@dataclass(frozen=True)
class WeightTotals:
    """Count, sum, minimum and maximum of the level-1 (row) weights of a fit.

    Computed from the model frame's rows, or summed over partitions when the rows stay in a Dask
    cluster (:func:`wemix_nb.mix_dask`).
    """

    n: int
    sum: float
    min: float
    max: float

    @classmethod
    def of(cls, weights: np.ndarray) -> WeightTotals:
        """The totals of an array of row weights."""
        return cls(len(weights), float(weights.sum()), float(weights.min()), float(weights.max()))


def group_tables(frame: ModelFrame, rows: WeightTotals | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """``ngroups`` and ``wgtStats`` of a model frame (``rows``: the level-1 weight totals, when the
    frame does not hold the rows)."""
    rows = WeightTotals.of(frame.weight1) if rows is None else rows
    ngroups = pd.Series(
        {"Number of obs": rows.n, **{lv.name: lv.n_groups for lv in frame.levels}}, name="ngroups"
    )
    per_level = [(rows.sum / rows.n, rows.sum, rows.min, rows.max)]
    per_level += [
        (lv.weight.mean(), lv.weight.sum(), lv.weight.min(), lv.weight.max()) for lv in frame.levels
    ]
    wgt = pd.DataFrame(
        per_level,
        columns=["mean", "sum", "min", "max"],
        index=pd.RangeIndex(1, len(per_level) + 1, name="level"),
    )
    return ngroups, wgt


def random_effect_tables(
    frame: ModelFrame, b: list[np.ndarray], sd: list[np.ndarray]
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Per grouping factor: DataFrames of the modes and of their conditional SDs (``(G, q)`` arrays)."""
    ranef, ranef_sd = {}, {}
    for level, modes, sds in zip(frame.levels, b, sd, strict=True):
        index = pd.Index(level.labels, name=level.name)
        ranef[level.name] = pd.DataFrame(modes, index=index, columns=level.terms)
        ranef_sd[level.name] = pd.DataFrame(sds, index=index, columns=level.terms)
    return ranef, ranef_sd


def variance_views(variance: VarianceComponents) -> dict[str, Any]:
    """The :class:`~wemix_nb.MixResult` fields that hold a variance value and its WeMix views."""
    return {
        "variance": variance,
        "vars": variance.vars,
        "varDF": variance.varDF,
        "var_theta": variance.var_theta,
    }


def _assemble(
    formula: str,
    frame: ModelFrame,
    options: FitOptions,
    *,
    beta: np.ndarray,
    cov_beta: np.ndarray,
    model_cov: np.ndarray,
    theta: np.ndarray,
    variance: VarianceComponents,
    modes: tuple[list[np.ndarray], list[np.ndarray]],
    details: LinearDetails | GlmmDetails,
    se_beta: np.ndarray | None = None,
    row_weights: WeightTotals | None = None,
    **fields: Any,
) -> MixResult:
    """The result fields every estimator shares; ``fields`` are the estimator's own (family,
    sigma, lnl, ICC, residuals, convergence...). ``se_beta`` defaults to the square root of the
    diagonal of ``cov_beta``."""
    names = frame.fixed_names
    se_beta = np.sqrt(np.diag(cov_beta)) if se_beta is None else se_beta
    ngroups, wgt = group_tables(frame, row_weights)
    ranef, ranef_sd = random_effect_tables(frame, *modes)
    return MixResult(
        formula=formula,
        coef=pd.Series(beta, index=names, name="coef"),
        SE=pd.Series(se_beta, index=names, name="SE"),
        cov_mat=pd.DataFrame(cov_beta, index=names, columns=names),
        model_cov=pd.DataFrame(model_cov, index=names, columns=names),
        theta=pd.Series(theta, index=variance.names, name="theta"),
        ngroups=ngroups,
        wgtStats=wgt,
        ranef=ranef,
        ranef_sd=ranef_sd,
        options=options,
        frame=frame,
        details=details,
        extra=LegacyExtra(details.legacy_extra()),
        **variance_views(variance),
        **fields,
    )


# -------------------------------------------------------------------------------------------------
# linear models


def linear_result(
    formula: str,
    frame: ModelFrame,
    problem: LinearProblem,
    sol: LinearSolution,
    info: dict,
    options: FitOptions,
    row_weights: WeightTotals | None = None,
    se_beta: np.ndarray | None = None,
) -> MixResult:
    """Assemble the result of a linear fit (:func:`~wemix_nb.estimation.linear.fit_linear`).

    ``row_weights``: the level-1 weight totals when the frame does not hold the rows (Dask fits).
    ``se_beta``: the standard errors of beta when they are not the square roots of the diagonal of
    ``sol.cov_beta`` (a variance beyond floating-point range).
    """
    st = problem.structure
    sigma2 = sol.sigma**2
    # the estimator's standard errors are keyed (level, a, c) with a <= c
    se = [sol.var_se.get((e.level, min(e.row, e.col), max(e.row, e.col)), np.nan) for e in st.entries]
    variance = VarianceComponents.build(
        frame.levels,
        st.covariances(sol.theta, sigma2),
        np.array(se, dtype=float),
        sol.var_theta,
        residual=sigma2,
        residual_se=sol.var_se.get(("residual",), np.nan),
        n_obs=frame.n,
    )
    re_total = variance.random_total
    sd = [np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None)) for cov in sol.b_cov]
    return _assemble(
        formula,
        frame,
        options,
        beta=sol.beta,
        cov_beta=sol.cov_beta,
        model_cov=sol.model_cov,
        theta=sol.theta,
        variance=variance,
        modes=(sol.b, sd),
        details=LinearDetails(problem, sol),
        se_beta=se_beta,
        row_weights=row_weights,
        family=None,
        sigma=sol.sigma,
        lnl=sol.lnl,
        ICC=float(re_total / (re_total + sigma2)),
        resid=pd.Series(sol.resid, index=frame.row_index, name="resid"),
        fitted=pd.Series(sol.fitted, index=frame.row_index, name="fitted"),
        converged=info["converged"],
        n_iterations=info["iterations"],
        message=info["message"],
    )


# -------------------------------------------------------------------------------------------------
# GLMMs


def _glmm_parameter_names(frame: ModelFrame) -> list[str]:
    """Names of the GLMM estimator's variance parameters, in its order: per level the variances,
    then the covariances column by column below the diagonal."""
    names = []
    for level in frame.levels:
        q, terms = level.q, level.terms
        names += [parameter_name(level.name, terms, a, a) for a in range(q)]
        names += [parameter_name(level.name, terms, r, c) for c in range(q) for r in range(c + 1, q)]
    return names


def _glmm_variance(frame: ModelFrame, fit: GlmmFit) -> tuple[VarianceComponents, pd.DataFrame]:
    """The variance value of a GLMM fit, and its joint sandwich labelled by the naming rule."""
    p = len(frame.fixed_names)
    var_names = _glmm_parameter_names(frame)
    position = {name: j for j, name in enumerate(var_names)}
    # the estimator's variance parameters in theta's order (the estimator names its theta entries)
    order = np.array([position[name] for name in fit.theta_names], dtype=int)
    variance = VarianceComponents.build(
        frame.levels,
        fit.covariances,
        np.asarray(fit.var_params_se)[order],
        fit.vcov_full[np.ix_(p + order, p + order)],
    )
    names = list(frame.fixed_names) + var_names
    return variance, pd.DataFrame(fit.vcov_full, index=names, columns=names)


def _trials(frame: ModelFrame) -> pd.Series | None:
    """The trials of a ``cbind()`` response's rows (None without them, or without the rows)."""
    if frame.trials is None or len(frame.trials) != frame.n:
        return None
    return pd.Series(frame.trials, index=frame.row_index, name="trials")


def glmm_result(
    formula: str,
    frame: ModelFrame,
    family: Family,
    fit: GlmmFit,
    options: FitOptions,
    row_weights: WeightTotals | None = None,
) -> MixResult:
    """Assemble the result of a GLMM fit (:func:`~wemix_nb.estimation.glmm.fit_glmm`).

    ``row_weights``: the level-1 weight totals when the frame does not hold the rows (Dask fits).
    """
    variance, vcov_full = _glmm_variance(frame, fit)
    re_total = float(variance.random_total)
    latent = _LATENT_RESIDUAL.get(family.link) if family.name == "binomial" else None
    p = len(frame.fixed_names)
    try:
        model_cov = np.linalg.inv(-fit.hessian)[:p, :p]
    except np.linalg.LinAlgError:
        model_cov = np.full((p, p), np.nan)
    return _assemble(
        formula,
        frame,
        options,
        beta=fit.beta,
        cov_beta=fit.cov_beta,
        se_beta=fit.se_beta,
        model_cov=model_cov,
        theta=fit.theta,
        variance=variance,
        modes=([m.b for m in fit.modes], [m.b_sd for m in fit.modes]),
        details=GlmmDetails(fit, vcov_full, float(fit.gradient_norm)),
        row_weights=row_weights,
        family=family,
        sigma=1.0,
        lnl=float(fit.lnl),
        ICC=re_total / (re_total + latent) if latent is not None else None,
        resid=pd.Series(frame.y - fit.mu, index=frame.row_index, name="resid"),
        fitted=pd.Series(fit.mu, index=frame.row_index, name="fitted"),
        linear_predictor=pd.Series(fit.eta, index=frame.row_index, name="linear_predictor"),
        trials=_trials(frame),
        converged=bool(fit.converged),
        n_iterations=int(fit.n_iterations),
        message=str(fit.message),
        nquad=int(fit.nquad),
        is_adaptive=True,
    )
