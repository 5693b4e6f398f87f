"""Random effects of a linear model at fixed parameters, with other conditional weights.

The pseudo-likelihood conditional modes and their conditional covariances depend on the weights
only through each group's conditional weights: the level-1 cross-products ``T_j`` of a level-2
group are sums of ``c1 * [Z, X, -r0]' [Z, X, -r0]``, so multiplying the conditional weights of
group ``j``'s rows by ``f_j`` multiplies ``T_j`` by ``f_j``; higher levels aggregate their children
with the children's conditional weights. :func:`random_effects_at` re-runs the random-effects
step of the solution (:func:`~wemix_nb.estimation.linear.solution._random_effects`) on rescaled
cross-products at a fixed ``(theta, beta, sigma)``: nothing is re-estimated and the rows are not
needed (so it also works for a fit whose rows stayed in Dask partitions).
"""

from __future__ import annotations

import numpy as np

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.linear.problem import CrossProducts, LinearProblem
from wemix_nb.estimation.linear.solution import _random_effects
from wemix_nb.model.frame import ModelFrame

__all__ = ["random_effects_at"]


def _row_factors(problem: LinearProblem, frame: ModelFrame) -> np.ndarray:
    """``(G2,)`` multiplier of each level-2 group's conditional row weights, from the problem's
    weights to ``frame``'s."""
    sums = problem.cond_weight_sums
    if sums is None:
        raise ArgumentError("These cross-products do not carry the groups' sums of conditional weights.")
    level2 = frame.levels[0]
    if frame.n:
        new = np.bincount(level2.group_index, frame.cond_weight1, minlength=level2.n_groups)
    elif frame.weight_scaling == "cluster":
        new = level2.n_rows  # cluster scaling: each group's weights sum to its number of rows
    else:
        raise ArgumentError(
            f"Without the rows, only 'cluster' scaling can be applied (got {frame.weight_scaling!r})."
        )
    return new / sums


def random_effects_at(
    problem: LinearProblem,
    theta: np.ndarray,
    beta: np.ndarray,
    sigma: float,
    frame: ModelFrame | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Conditional modes and covariances of the random effects at fixed parameters.

    Parameters
    ----------
    problem
        The fitted model's :class:`~wemix_nb.estimation.linear.LinearProblem`.
    theta, beta, sigma
        The parameters (``theta`` relative to ``sigma``, lme4 order).
    frame
        The problem's frame with other weights (e.g.
        :func:`~wemix_nb.model.rescaled.with_scaled_weights`); same rows and groups. ``None``: the
        problem's own weights.

    Returns
    -------
    b, b_cov
        Per level (level 2 first), ``(n_groups, q)`` modes and ``(n_groups, q, q)`` conditional
        covariances given the data, ``beta`` fixed (including the uncertainty of the ancestors'
        effects).
    """
    if frame is not None:
        factors = _row_factors(problem, frame)
        statistics = CrossProducts(
            T=problem.T * factors[:, None, None],
            beta0=problem.beta0,
            n_weighted=problem.n_weighted,
            n_weighted_top=problem.n_weighted_top,
            cond_weight_sums=problem.cond_weight_sums * factors,
        )
        problem = LinearProblem(frame, statistics)
    theta = np.asarray(theta, dtype=float)
    ev = problem.evaluate(theta)
    ext = np.append(np.asarray(beta, dtype=float) - problem.beta0, 1.0)
    _, b, b_cov = _random_effects(problem, theta, ev, ext, float(sigma) ** 2)
    return b, b_cov
