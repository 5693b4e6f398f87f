"""Weighted generalised linear mixed models by adaptive Gauss-Hermite quadrature (2 and 3 levels).

The weighted pseudo-log-likelihood is

    2 levels:  l = sum_g w2_g log  int phi(u) prod_{i in g} f(y_i | eta_i(u))^{c1_i} du
    3 levels:  l = sum_h w3_h log  int phi(v) prod_{g in h} [ int phi(u) prod_{i in g}
                                        f(y_i | eta_i(u, v))^{c1_i} du ]^{c2_g} dv

with ``eta_i = x_i beta + z_i Lambda u`` (spherical random effects ``u``, ``Sigma = Lambda Lambda'``
on the absolute scale), unconditional weights ``w`` and conditional weights ``c``.

Integrals are approximated by adaptive Gauss-Hermite quadrature (AGHQ) with ``nquad`` points per
dimension on a product grid, centred at the conditional mode and scaled by the Cholesky factor of
the curvature there (Fisher information, which is the observed information for the canonical
logit and log links). ``nquad = 1`` is the Laplace approximation.

Modules
-------
``quadrature``
    The Gauss-Hermite rule, chunking of whole groups, log-sum-exp, batched Cholesky helpers.
``protocol``
    :class:`QuadratureModel`, what the optimiser needs from a likelihood; the modes' result type.
``two_level``, ``three_level``
    The two likelihoods (modes, quadrature, exact gradients); the 3-level nested quadrature pass
    and its gradient are in ``three_level_quadrature`` and ``three_level_gradient``.
``optimize``
    Objective wrapper, quasi-Newton phases, Newton polish.
``sandwich``
    The ``(beta, vars)`` parameterisation and the robust covariance.
``fit``
    :func:`fit_glmm` and :class:`GlmmFit`; :func:`glmm_likelihood`, the likelihood it maximises.

Differences from WeMix (deliberate)
-----------------------------------
* The Hessian for the sandwich is taken at the estimate, not at WeMix's shifted point for small
  variances (see ``sandwich``).
* Three levels: the nested formula above with ``c1 = w1 / w2``, ``c2 = w2 / w3`` and the true
  nesting; WeMix's weights and positional nesting there are bugs (see ``three_level``).
* With ``nquad = 1`` WeMix's binomial objective rounds the level-1 weights (``round(w1) log f``).
  Exact weights are the default here; ``laplace_rounding=True`` reproduces WeMix
  (objective and reported lnl use rounded weights, the per-group scores for the SEs exact ones,
  as in WeMix).
* Start values come from a weighted GLM, the optimiser runs to a tight optimum, and
  ``keep_adapting`` has no effect (see ``fit``).
"""

from wemix_nb.estimation.glmm.fit import GlmmFit, fit_glmm, glmm_likelihood
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes

__all__ = ["GlmmFit", "GlmmLevelModes", "fit_glmm", "glmm_likelihood"]
