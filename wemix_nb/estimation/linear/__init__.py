"""Weighted linear mixed models: the profiled pseudo-log-likelihood, its optimum and robust SEs.

Everything is computed from per-level-2-group weighted cross-products of ``[Z, X, r0]``; one pass
over the rows builds them, and afterwards the likelihood, its exact gradient and the per-group
scores are obtained by nested block elimination without touching the rows again.

Modules
-------
``problem``
    :class:`CrossProducts`, :func:`cross_products` and :class:`LinearProblem`: the profiled
    likelihood by block elimination, with exact derivatives in theta.
``batched``
    Inverses, log-determinants and products of stacks of small matrices.
``optimize``
    Minimising the profiled deviance (L-BFGS-B, restarts off zero variances, Newton polish).
``solution``
    :class:`LinearSolution`: beta, sigma, random effects and the covariances of beta at the
    estimate.
``sandwich``
    The robust covariance of the variance components.
``fit``
    :func:`fit_linear`.
"""

from wemix_nb.estimation.linear.fit import fit_linear
from wemix_nb.estimation.linear.problem import CrossProducts, LinearProblem, cross_products
from wemix_nb.estimation.linear.solution import LinearSolution

__all__ = ["CrossProducts", "LinearProblem", "LinearSolution", "cross_products", "fit_linear"]
