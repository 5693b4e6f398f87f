"""Everything at the estimated theta: beta, sigma, the random effects with their conditional
covariances, fitted values, and the model-based and robust covariances of beta."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wemix_nb.estimation.linear.batched import _swap
from wemix_nb.estimation.linear.sandwich import _variance_sandwich
from wemix_nb.estimation.meat import score_meat

if TYPE_CHECKING:
    from wemix_nb.estimation.linear.problem import LinearProblem, _Evaluation


@dataclass
class LinearSolution:
    """A weighted linear mixed model at its estimate (what :meth:`LinearProblem.solution` returns).

    Attributes
    ----------
    theta
        ``(k,)`` relative Cholesky entries (lme4 order), canonical.
    beta
        ``(p,)`` fixed effects.
    sigma
        Residual standard deviation.
    lnl
        Weighted pseudo-log-likelihood at the estimate.
    model_cov
        ``(p, p)`` model-based covariance of beta: ``sigma^2`` times the inverse of the weighted
        GLS system.
    cov_beta
        ``(p, p)`` robust (sandwich) covariance of beta: clustered on the top level with
        ``G/(G-1)``, or design-based with the frame's sampling design (see
        :func:`~wemix_nb.estimation.meat.score_meat`).
    u, b
        Per level (level 2 first), ``(n_groups, q)`` spherical modes and random effects
        ``b = Lambda u`` on the data scale.
    b_cov
        Per level, ``(n_groups, q, q)`` conditional covariances of ``b`` given the data (beta
        fixed), including the uncertainty of the ancestors' effects.
    fitted, fitted_fixed, resid
        ``(n,)`` fitted values with and without the random effects, and residuals
        ``y - fitted``.
    phi_cov
        Per level index, the robust covariance of that level's theta entries and sigma.
    var_theta
        ``(k, k)`` robust covariance of the ``Sigma`` entries at the positions of theta.
    var_se
        Robust standard errors of ``Sigma_l[a, c]`` keyed ``(level, a, c)`` and of
        ``sigma^2`` keyed ``("residual",)``.
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    lnl: float
    model_cov: np.ndarray
    cov_beta: np.ndarray
    u: list[np.ndarray]
    b: list[np.ndarray]
    b_cov: list[np.ndarray]
    fitted: np.ndarray
    fitted_fixed: np.ndarray
    resid: np.ndarray
    phi_cov: dict
    var_theta: np.ndarray
    var_se: dict


def _solution(problem: LinearProblem, theta: np.ndarray) -> LinearSolution:
    """beta, sigma, random effects and all SEs at ``theta``."""
    ev = problem.evaluate(theta, tangents=True)
    total, ext, sigma2 = problem.gls(ev)
    p = problem.p
    A = total[:p, :p]
    beta = problem.beta0 + ext[:p]
    u, b, b_cov = _random_effects(problem, theta, ev, ext, sigma2)
    frame = problem.frame
    fitted_fixed = frame.X @ beta
    if frame.offset is not None:  # the offset is part of the fitted mean
        fitted_fixed = fitted_fixed + frame.offset
    fitted = fitted_fixed.copy()
    for level, bk in zip(frame.levels, b, strict=True):
        fitted += np.einsum("nq,nq->n", level.Z, bk[level.group_index])

    # robust covariance of beta: per-top-group scores from the envelope of each group's r2
    scores_beta = -(problem.top_weight[:, None] / sigma2) * ev.top_linear(ext, p)
    model_cov = sigma2 * np.linalg.inv(A)
    J_beta = score_meat(scores_beta, problem.frame.sampling)
    cov_beta = model_cov @ J_beta @ model_cov

    var_cov, var_theta, var_se = _variance_sandwich(problem, theta, ev, ext, sigma2)
    return LinearSolution(
        theta=theta,
        beta=beta,
        sigma=float(np.sqrt(sigma2)),
        lnl=float(problem.profiled_lnl(ev, sigma2)),
        model_cov=model_cov,
        cov_beta=cov_beta,
        u=u,
        b=b,
        b_cov=b_cov,
        fitted=fitted,
        fitted_fixed=fitted_fixed,
        resid=frame.y - fitted,
        phi_cov=var_cov,
        var_theta=var_theta,
        var_se=var_se,
    )


def _random_effects(
    problem: LinearProblem, theta: np.ndarray, ev: _Evaluation, ext: np.ndarray, sigma2: float
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per level: spherical modes ``u``, ``b = Lambda u`` and the conditional covariances of ``b``,
    by back-substitution from the top level down."""
    levels = problem.frame.levels
    lambdas = problem.structure.factors(theta)
    u = [None] * len(levels)
    rest = np.broadcast_to(ext, (problem.n_top, problem.p + 1))
    cond_cov = [None] * len(levels)
    ancestor_cov = np.zeros((problem.n_top, 0, 0))
    for k in range(len(levels) - 1, -1, -1):
        solve = ev.solves[k]
        if k < len(levels) - 1:
            parent = levels[k].parent_index
            rest = rest[parent]
            ancestor_cov = ancestor_cov[parent]
        u[k] = -np.einsum("gqr,gr->gq", solve.K, rest)
        # conditional covariance of (u_k, ancestors) given the data, beta fixed
        n_anc = ancestor_cov.shape[-1]
        K_anc = solve.K[:, :, :n_anc]
        own = sigma2 * solve.M_inv + K_anc @ ancestor_cov @ _swap(K_anc)
        cross = -K_anc @ ancestor_cov
        cond_cov[k] = own
        ancestor_cov = np.concatenate(
            [np.concatenate([own, cross], axis=2), np.concatenate([_swap(cross), ancestor_cov], axis=2)],
            axis=1,
        )
        rest = np.concatenate([u[k], rest], axis=1)
    b = [uk @ lam.T for uk, lam in zip(u, lambdas, strict=True)]
    b_cov = [lam @ cov @ lam.T for cov, lam in zip(cond_cov, lambdas, strict=True)]
    return u, b, b_cov
