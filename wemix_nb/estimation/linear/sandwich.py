"""Robust covariance of the variance components of a linear mixed model.

Follows WeMix's construction, each level separately with beta held fixed: per-top-group scores
of ``(theta, sigma)`` and their sampling covariance (:func:`~wemix_nb.estimation.meat.score_meat`),
the Hessian of the total likelihood, the sandwich ``A^-1 J A^-1``, and the
delta method to ``Sigma_l = sigma^2 Lambda_l Lambda_l'``. Both derivatives are exact here (the
Hessian by differences of the exact scores; WeMix uses finite differences of the likelihood).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from wemix_nb.errors import NumericalWarning
from wemix_nb.estimation.linear.optimize import _jacobian
from wemix_nb.estimation.meat import score_meat

if TYPE_CHECKING:
    from wemix_nb.estimation.linear.problem import LinearProblem, _Evaluation


def _phi_scores(
    problem: LinearProblem, theta: np.ndarray, ext: np.ndarray, sigma: float, ev: _Evaluation | None = None
) -> np.ndarray:
    """Per-top-group scores of (theta, sigma), beta fixed: shape (G_top, k + 1)."""
    if ev is None:
        ev = problem.evaluate(theta, tangents=True)
    _, d_theta, r2_h = problem.group_lnl(ev, ext, sigma**2)
    d_sigma = -problem.n_weighted_top / sigma + r2_h / sigma**3
    return np.column_stack([d_theta.T, d_sigma])


def _variance_sandwich(
    problem: LinearProblem, theta: np.ndarray, ev: _Evaluation, ext: np.ndarray, sigma2: float
) -> tuple[dict, np.ndarray, dict]:
    """Robust covariance of (theta, sigma) per level and of the (co)variance estimates.

    Returns ``phi_cov`` (per level index, the covariance of the level's theta entries and
    sigma), ``var_theta`` (``(k, k)``, covariance of the ``Sigma`` entries at the positions of
    theta) and ``var_se`` (standard errors of every ``Sigma_l[a, c]``, ``a <= c``, keyed
    ``(level, a, c)``, and of ``sigma^2`` keyed ``("residual",)``).
    """
    st = problem.structure
    sigma = np.sqrt(sigma2)
    phi = np.append(theta, sigma)
    scores = _phi_scores(problem, theta, ext, sigma, ev)
    J = score_meat(scores, problem.frame.sampling)

    def total_gradient(x):
        return _phi_scores(problem, x[:-1], ext, x[-1]).sum(axis=0)

    H = _jacobian(total_gradient, phi)
    H = -0.5 * (H + H.T)
    k = st.size
    n_levels = len(st.q)
    phi_cov = {}
    var_theta = np.zeros((k, k))
    var_se: dict[tuple, float] = {}
    lambdas = st.factors(theta)
    for level in range(n_levels):
        idx = np.append(np.flatnonzero(st.entry_level == level), k)
        A = H[np.ix_(idx, idx)]
        A = _positive_definite(A, f"level {level + 2}")
        A_inv = np.linalg.inv(A)
        V = A_inv @ J[np.ix_(idx, idx)] @ A_inv
        phi_cov[level] = V
        entries = [st.entries[j] for j in idx[:-1]]
        grads = _sigma_gradients(entries, lambdas[level], st.q[level], sigma, sigma2)
        for (a, c), g in grads.items():
            var_se[(level, a, c)] = float(np.sqrt(max(g @ V @ g, 0.0)))
        # var_theta: rows in the order of the level's theta entries (the free Sigma entries)
        rows = [grads[(min(e.row, e.col), max(e.row, e.col))] for e in entries]
        Dl = np.array(rows)
        pos = idx[:-1]
        var_theta[np.ix_(pos, pos)] = Dl @ V @ Dl.T
        if level == 0:
            var_se[("residual",)] = float(2.0 * sigma * np.sqrt(V[-1, -1]))
    return phi_cov, var_theta, var_se


def _sigma_gradients(
    entries: list, lam: np.ndarray, q: int, sigma: float, sigma2: float
) -> dict[tuple[int, int], np.ndarray]:
    """Gradients of every ``Sigma[a, c] = sigma^2 (Lambda Lambda')[a, c]`` (``a <= c``) of one
    level with respect to (the level's free entries of ``Lambda``, sigma)."""
    grads = {}
    for a in range(q):
        for c in range(a, q):
            g = np.zeros(len(entries) + 1)
            for pos, e in enumerate(entries):
                g[pos] = sigma2 * ((e.row == a) * lam[c, e.col] + (e.row == c) * lam[a, e.col])
            g[-1] = 2.0 * sigma * (lam[a] @ lam[c])
            grads[(a, c)] = g
    return grads


def _positive_definite(A: np.ndarray, where: str) -> np.ndarray:
    """``A`` if well conditioned; otherwise (with a warning) its eigenvalues floored."""
    eig, vec = np.linalg.eigh(A)
    if eig.min() > 0 and eig.max() / eig.min() < np.finfo(float).eps ** -0.25:
        return A
    warnings.warn(
        f"The information matrix of the variance parameters at {where} is not well conditioned "
        f"(eigenvalues {eig.min():.3g} to {eig.max():.3g}); their standard errors are approximate.",
        NumericalWarning,
        stacklevel=5,  # fit_linear (-> LinearProblem.solution -> _solution -> _variance_sandwich)
    )
    floor = max(abs(eig.max()), 1.0) * 400 * np.sqrt(np.finfo(float).eps)
    return (vec * np.maximum(eig, floor)) @ vec.T
