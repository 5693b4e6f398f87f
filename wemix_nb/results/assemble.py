"""The one path from an estimator's solution to a :class:`~wemix_nb.results.MixResult`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemix_nb.estimation.linear import LinearProblem, LinearSolution
from wemix_nb.model.frame import ModelFrame
from wemix_nb.options import FitOptions
from wemix_nb.results.result import VARDF_COLUMNS, MixResult

# variance of the latent residual on the link scale (logistic: pi^2/3, standard normal: 1)
_LATENT_RESIDUAL = {"logit": np.pi**2 / 3, "probit": 1.0}


def _variance_layout(frame: ModelFrame) -> list[tuple[int, int, int]]:
    """(level, a, c) of each variance parameter, in the GLMM order: per level the variances, then
    the covariances column by column below the diagonal."""
    layout = []
    for k, level in enumerate(frame.levels):
        layout += [(k, a, a) for a in range(level.q)]
        layout += [(k, r, c) for c in range(level.q) for r in range(c + 1, level.q)]
    return layout


def glmm_result(formula: str, frame: ModelFrame, family, fit, options: FitOptions) -> MixResult:
    """Assemble the result of a GLMM fit."""
    names = frame.fixed_names
    layout = _variance_layout(frame)
    position = {entry: j for j, entry in enumerate(layout)}
    p = len(names)

    vars_, rows = {}, []
    for k, level in enumerate(frame.levels):
        cov = fit.covariances[k]
        for a, term in enumerate(level.terms):
            vars_[f"{level.name}.{term}"] = cov[a, a]
        for a in range(level.q):
            for c in range(a, level.q):
                j = position[(k, max(a, c), min(a, c))]
                rows.append(
                    (
                        level.name,
                        level.terms[a],
                        None if a == c else level.terms[c],
                        cov[a, c],
                        level.n_groups,
                        level.number,
                        fit.var_params_se[j],
                        f"{level.name}.{level.terms[a]}",
                    )
                )
    rows.sort(key=lambda row: (row[5], row[2] is not None))
    varDF = pd.DataFrame(rows, columns=VARDF_COLUMNS)

    # covariance of the (co)variance estimates, laid out like theta (as for linear models)
    from wemix_nb.model.covariance import CovarianceStructure

    structure = CovarianceStructure(frame.levels)
    order = [p + position[(e.level, e.row, e.col)] for e in structure.entries]
    var_theta = fit.vcov_full[np.ix_(order, order)]

    re_total = float(sum(np.trace(c) for c in fit.covariances))
    latent = _LATENT_RESIDUAL.get(family.link) if family.name == "binomial" else None
    icc = re_total / (re_total + latent) if latent is not None else None

    try:
        model_cov = np.linalg.inv(-fit.hessian)[:p, :p]
    except np.linalg.LinAlgError:
        model_cov = np.full((p, p), np.nan)
    ngroups, wgt = group_tables(frame)
    ranef, ranef_sd = random_effect_tables(frame, [m.b for m in fit.modes], [m.b_sd for m in fit.modes])
    var_names = [
        f"{frame.levels[k].name}.{frame.levels[k].terms[a]}"
        if a == c
        else f"{frame.levels[k].name}.{frame.levels[k].terms[a]}.{frame.levels[k].terms[c]}"
        for k, a, c in layout
    ]
    return MixResult(
        formula=formula,
        family=family,
        coef=pd.Series(fit.beta, index=names, name="coef"),
        SE=pd.Series(fit.se_beta, index=names, name="SE"),
        cov_mat=pd.DataFrame(fit.cov_beta, index=names, columns=names),
        model_cov=pd.DataFrame(model_cov, index=names, columns=names),
        theta=pd.Series(fit.theta, index=structure.names, name="theta"),
        vars=pd.Series(vars_, name="vars"),
        sigma=1.0,
        lnl=float(fit.lnl),
        ICC=icc,
        ngroups=ngroups,
        wgtStats=wgt,
        var_theta=pd.DataFrame(var_theta, index=structure.names, columns=structure.names),
        varDF=varDF,
        ranef=ranef,
        ranef_sd=ranef_sd,
        resid=pd.Series(frame.y - fit.mu, index=frame.row_index, name="resid"),
        fitted=pd.Series(fit.mu, index=frame.row_index, name="fitted"),
        linear_predictor=pd.Series(fit.eta, index=frame.row_index, name="linear_predictor"),
        converged=bool(fit.converged),
        n_iterations=int(fit.n_iterations),
        message=str(fit.message),
        nquad=int(fit.nquad),
        is_adaptive=True,
        options=options,
        frame=frame,
        extra={
            "glmm_fit": fit,
            "vcov_full": pd.DataFrame(fit.vcov_full, index=names + var_names, columns=names + var_names),
            "var_param_names": var_names,
            "gradient_norm": float(fit.gradient_norm),
        },
    )


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


def random_effect_tables(frame: ModelFrame, b: list[np.ndarray], sd: list[np.ndarray]):
    """Per grouping factor: DataFrames of the modes and of their conditional SDs (``(G, q)`` arrays)."""
    ranef, ranef_sd = {}, {}
    for level, modes, sds in zip(frame.levels, b, sd, strict=True):
        index = pd.Index(level.labels, name=level.name)
        ranef[level.name] = pd.DataFrame(modes, index=index, columns=level.terms)
        ranef_sd[level.name] = pd.DataFrame(sds, index=index, columns=level.terms)
    return ranef, ranef_sd


def linear_result(
    formula: str,
    frame: ModelFrame,
    problem: LinearProblem,
    sol: LinearSolution,
    info: dict,
    options: FitOptions,
    row_weights: WeightTotals | None = None,
) -> MixResult:
    st = problem.structure
    names = frame.fixed_names
    sigma2 = sol.sigma**2
    covs = st.covariances(sol.theta, sigma2)
    var_rows, vars_ = [], {}
    for k, level in enumerate(frame.levels):
        for a, term in enumerate(level.terms):
            vars_[f"{level.name}.{term}"] = covs[k][a, a]
            var_rows.append(
                (
                    level.name,
                    term,
                    None,
                    covs[k][a, a],
                    level.n_groups,
                    level.number,
                    sol.var_se.get((k, a, a)),
                    f"{level.name}.{term}",
                )
            )
        in_block = {(a, c) for block in level.blocks for a in block for c in block if a < c}
        for a, c in sorted(in_block):
            var_rows.append(
                (
                    level.name,
                    level.terms[a],
                    level.terms[c],
                    covs[k][a, c],
                    level.n_groups,
                    level.number,
                    sol.var_se.get((k, a, c)),
                    f"{level.name}.{level.terms[a]}",
                )
            )
    vars_["Residual"] = sigma2
    var_rows.sort(key=lambda row: row[5])
    var_rows.append(("Residual", None, None, sigma2, frame.n, 1, sol.var_se.get(("residual",)), "Residual"))
    varDF = pd.DataFrame(var_rows, columns=VARDF_COLUMNS)
    re_total = sum(np.trace(c) for c in covs)
    ngroups, wgt = group_tables(frame, row_weights)
    sd = [np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None)) for cov in sol.b_cov]
    ranef, ranef_sd = random_effect_tables(frame, sol.b, sd)
    theta_names = st.names
    return MixResult(
        formula=formula,
        family=None,
        coef=pd.Series(sol.beta, index=names, name="coef"),
        SE=pd.Series(np.sqrt(np.diag(sol.cov_beta)), index=names, name="SE"),
        cov_mat=pd.DataFrame(sol.cov_beta, index=names, columns=names),
        model_cov=pd.DataFrame(sol.model_cov, index=names, columns=names),
        theta=pd.Series(sol.theta, index=theta_names, name="theta"),
        vars=pd.Series(vars_, name="vars"),
        sigma=sol.sigma,
        lnl=sol.lnl,
        ICC=float(re_total / (re_total + sigma2)),
        ngroups=ngroups,
        wgtStats=wgt,
        var_theta=pd.DataFrame(sol.var_theta, index=theta_names, columns=theta_names),
        varDF=varDF,
        ranef=ranef,
        ranef_sd=ranef_sd,
        resid=pd.Series(sol.resid, index=frame.row_index, name="resid"),
        fitted=pd.Series(sol.fitted, index=frame.row_index, name="fitted"),
        converged=info["converged"],
        n_iterations=info["iterations"],
        message=info["message"],
        options=options,
        frame=frame,
        extra={"problem": problem, "solution": sol},
    )
