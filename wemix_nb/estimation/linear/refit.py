"""Refitting a linear mixed model with other weights, fast: replicate weights and plausible values.

A replicate fit is the same model with other weights. It reuses the full-sample fit's
:class:`~wemix_nb.estimation.linear.LinearProblem` as far as the weights allow:

* when the replicate leaves every conditional weight below the top level unchanged (the factor
  of each replicate is constant within the groups, the usual case), the per-group cross-products
  are the full sample's and only the top-level weights change (:func:`reweighted_problem`);
* otherwise the cross-products of all replicates are computed in one batched pass over the rows
  (:func:`replicate_cross_products`).

It starts from the full-sample estimate and runs quasi-Newton steps on the exact gradient with
the full-sample Hessian as the first curvature (:func:`refit_linear`), and computes only the
estimates -- beta, sigma, theta, the log-likelihood -- never the sandwich or the random effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from wemix_nb.estimation.linear.optimize import _jacobian
from wemix_nb.estimation.linear.problem import LOG_2PI, CrossProducts, LinearProblem
from wemix_nb.model.frame import ModelFrame


@dataclass(frozen=True)
class LinearRefit:
    """The estimates of one refit.

    Attributes
    ----------
    theta
        ``(k,)`` canonical relative Cholesky entries.
    beta
        ``(p,)`` fixed effects.
    sigma2
        Residual variance.
    lnl
        Weighted log-likelihood.
    converged
        Whether the quasi-Newton steps met the criterion (else the general optimiser was used).
    evaluations
        Likelihood evaluations used.
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma2: float
    lnl: float
    converged: bool
    evaluations: int


def deviance_hessian(problem: LinearProblem, theta: np.ndarray) -> np.ndarray:
    """Hessian of the profiled deviance at ``theta`` (central differences of the exact gradient):
    the first curvature of every replicate's quasi-Newton steps."""
    H = _jacobian(lambda t: problem.deviance(t, gradient=True)[1], np.asarray(theta, dtype=float))
    return 0.5 * (H + H.T)


def reweighted_problem(
    problem: LinearProblem,
    frame: ModelFrame,
    statistics: CrossProducts | None = None,
) -> LinearProblem:
    """The likelihood of ``problem``'s model with the weights of ``frame`` (the same rows and
    designs), reusing ``problem``'s cross-products unless ``statistics`` are given.

    Reusing them is right when ``frame`` has the same level-1 conditional weights; the top-level
    weight totals are recomputed from ``frame``'s level-1 weights.
    """
    if statistics is None:
        top_of_row = problem.top_of[0][frame.levels[0].group_index]
        n_top = frame.levels[-1].n_groups
        statistics = CrossProducts(
            problem.T,
            problem.beta0,
            float(frame.weight1.sum()),
            np.bincount(top_of_row, frame.weight1, minlength=n_top),
        )
    return LinearProblem(frame, statistics)


def replicate_cross_products(
    frame: ModelFrame, beta0: np.ndarray, cond_rows: np.ndarray, block: int = 8
) -> np.ndarray:
    """Per-level-2-group cross-products of ``[Z, X, -r0]`` for many sets of level-1 conditional
    weights at once.

    Parameters
    ----------
    frame
        The model frame (its rows and level-2 groups).
    beta0
        The ``beta0`` of the full-sample problem (``r0 = y - X beta0``).
    cond_rows
        ``(n, R)`` level-1 conditional weights of ``R`` replicates.
    block
        Replicates per pass (bounds the temporary ``(n, pairs, block)`` array).

    Returns
    -------
    numpy.ndarray
        ``(R, G2, m, m)``: replicate ``r``'s ``T`` of :class:`CrossProducts`.
    """
    columns = np.column_stack([frame.Z, frame.X, -(frame.y - frame.X @ beta0)])
    n, m = columns.shape
    a, b = np.triu_indices(m)
    products = columns[:, a] * columns[:, b]  # (n, pairs)
    level2 = frame.levels[0]
    G = level2.n_groups
    indicator = scipy.sparse.csr_matrix((np.ones(n), (level2.group_index, np.arange(n))), shape=(G, n))
    R = cond_rows.shape[1]
    T = np.empty((R, G, m, m))
    for start in range(0, R, block):
        c = cond_rows[:, start : start + block]  # (n, B)
        sums = indicator @ (products[:, :, None] * c[:, None, :]).reshape(n, -1)  # (G, pairs * B)
        sums = np.asarray(sums).reshape(G, len(a), c.shape[1])
        T[start : start + c.shape[1], :, a, b] = np.moveaxis(sums, 2, 0)
        T[start : start + c.shape[1], :, b, a] = np.moveaxis(sums, 2, 0)
    return T


def _estimates(problem: LinearProblem, theta: np.ndarray) -> tuple[np.ndarray, float, float]:
    """beta, sigma^2 and the log-likelihood at ``theta`` (beta and sigma at their optimum)."""
    ev = problem.evaluate(theta)
    total = problem.top_system(ev)
    p = problem.p
    delta = np.linalg.solve(total[:p, :p], -total[:p, p])
    r2 = float(total[p, p] + total[:p, p] @ delta)
    sigma2 = r2 / problem.n_weighted
    lnl = -ev.D_top.sum() - 0.5 * problem.n_weighted * (LOG_2PI + np.log(sigma2) + 1.0)
    return problem.beta0 + delta, sigma2, float(lnl)


def _quasi_newton(
    problem: LinearProblem, x: np.ndarray, H_inv: np.ndarray, max_steps: int
) -> tuple[np.ndarray, bool, int]:
    """BFGS steps (inverse update) from ``x`` with backtracking on the deviance; converged when
    the step is below 1e-10 relative. Returns the point, whether it converged, and the number of
    evaluations; gives up (not converged) if a diagonal entry of theta crosses 0."""
    diagonal = problem.structure.diagonal
    dev, g = problem.deviance(x, gradient=True)
    evaluations = 1
    for _ in range(max_steps):
        step = -H_inv @ g
        t = 1.0
        for _ in range(20):
            candidate = x + t * step
            new_dev, new_g = problem.deviance(candidate, gradient=True)
            evaluations += 1
            if np.isfinite(new_dev) and new_dev <= dev + 1e-12 * abs(dev):
                break
            t *= 0.5
        else:
            return x, False, evaluations
        if np.any(candidate[diagonal] <= 0):  # at or across the boundary: the general optimiser
            return candidate, False, evaluations
        s, y = candidate - x, new_g - g
        x, dev, g = candidate, new_dev, new_g
        if np.max(np.abs(s)) < 1e-10 * (1.0 + np.max(np.abs(x))):
            return x, True, evaluations
        sy = float(s @ y)
        if sy > 1e-14 * np.linalg.norm(s) * np.linalg.norm(y):
            rho = 1.0 / sy
            V = np.eye(len(x)) - rho * np.outer(s, y)
            H_inv = V @ H_inv @ V.T + rho * np.outer(s, s)
    return x, False, evaluations


def refit_linear(
    problem: LinearProblem, start: np.ndarray, hessian: np.ndarray, max_steps: int = 40
) -> LinearRefit:
    """The estimates of ``problem`` from a nearby start (a replicate or another plausible value).

    Parameters
    ----------
    problem
        The likelihood to maximise (e.g. from :func:`reweighted_problem`).
    start
        ``(k,)`` theta to start from: the full-sample estimate.
    hessian
        ``(k, k)`` Hessian of the deviance near the optimum (:func:`deviance_hessian` of the full
        sample): the first curvature of the quasi-Newton steps.
    max_steps
        Quasi-Newton steps before falling back to the general optimiser.

    Returns
    -------
    LinearRefit
        The general optimiser (:meth:`LinearProblem.optimize`) is used when the steps do not
        converge or a variance reaches 0; ``converged`` then reports its verdict.
    """
    start = np.asarray(start, dtype=float)
    try:
        H_inv = np.linalg.inv(hessian)
        ok = np.all(np.linalg.eigvalsh(0.5 * (H_inv + H_inv.T)) > 0)
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        x, converged, evaluations = _quasi_newton(problem, start, H_inv, max_steps)
    else:
        converged, evaluations = False, 0
    if not converged:
        x, info = problem.optimize(start)
        converged, evaluations = bool(info["converged"]), evaluations + int(info["evaluations"])
    theta = problem.structure.canonical(x)
    beta, sigma2, lnl = _estimates(problem, theta)
    return LinearRefit(theta, beta, sigma2, lnl, converged, evaluations)
