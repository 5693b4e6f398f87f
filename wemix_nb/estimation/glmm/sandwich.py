"""Robust (sandwich) covariance of a GLMM fit in WeMix's parameterisation ``(beta, vars)``.

``vars`` are, per level, the variances then the covariances (column-major lower triangle) of the
random effects. With ``s_h`` the score vector of top-level group ``h``'s log-likelihood and ``H``
the Hessian of the total log-likelihood, both in ``(beta, vars)`` at the estimate:
``J = G/(G-1) sum_h s_h s_h'`` (or its design-based form,
:func:`~wemix_nb.estimation.meat.score_meat`) and ``V = H^{-1} J H^{-1}``. Both are obtained from their
``(beta, theta)`` versions by the chain rule through the map ``theta -> vars``.

WeMix evaluates the Hessian for the sandwich at ``vars + 0.0002 k`` when a variance is below 1
(``k`` = the indices of the small variances, recycled). Here the Hessian is taken at the estimate.
On the reference fixtures the SEs differ by at most 1.1e-3 relative (G3, variance 0.15, where the
shift matters most).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from wemix_nb.errors import NumericalWarning
from wemix_nb.estimation.glmm.optimize import _Objective
from wemix_nb.estimation.meat import score_meat
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.sampling import SamplingDesign

# warnings point at the caller of fit_glmm: fit_glmm -> _robust_covariance -> helper
_STACKLEVEL = 4


class _VarMap:
    """``theta`` (lme4 layout) <-> ``vars`` (per level: variances, then covariances).

    Parameters
    ----------
    structure
        The random-effect covariance structure (layout of ``theta``).
    level_names
        Grouping factors, level 2 first (for the names of ``vars``).
    """

    def __init__(self, structure: CovarianceStructure, level_names: list[str]):
        self.structure = structure
        self.k = structure.size
        pairs, names = [], []
        for lev, (o, q, terms) in enumerate(
            zip(structure.offsets, structure.q, structure.terms, strict=True)
        ):
            name = level_names[lev]
            for a in range(q):
                pairs.append((o + a, o + a))
                names.append(f"{name}:{terms[a]}")
            for c in range(q):
                for r in range(c + 1, q):
                    pairs.append((o + r, o + c))
                    names.append(f"{name}:{terms[c]}:{terms[r]}")
        self.pairs = np.array(pairs, dtype=int).reshape(-1, 2)
        self.names = names

    def vars(self, theta: np.ndarray) -> np.ndarray:
        """The (co)variances ``Sigma = Lambda Lambda'`` at ``theta``, in ``vars`` order."""
        lam = self.structure.stacked(theta)
        sig = lam @ lam.T
        return sig[self.pairs[:, 0], self.pairs[:, 1]]

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``d vars / d theta``: linear in theta, ``second() @ theta`` (exact at any scale; unit
        differences of the quadratic map lose an SD of 1e-18 to rounding)."""
        return np.einsum("mab,b->ma", self.second(), theta)

    def second(self) -> np.ndarray:
        """``d^2 vars_m / d theta_a d theta_b`` (constant), shape ``(m, k, k)``."""
        k = self.k
        z = np.zeros(k)
        out = np.empty((len(self.pairs), k, k))
        for a in range(k):
            for b in range(k):
                ea, eb = np.zeros(k), np.zeros(k)
                ea[a] += 1.0
                eb[b] += 1.0
                out[:, a, b] = (
                    self.vars(z + ea + eb)
                    - self.vars(z + ea - eb)
                    - self.vars(z - ea + eb)
                    + self.vars(z - ea - eb)
                ) / 4.0
        return out


@dataclass
class _Sandwich:
    """The estimate's variance parameters and robust covariance in ``(beta, vars)``."""

    var_params: np.ndarray  # (k,) vars
    var_names: list[str]
    hessian: np.ndarray  # (p+k, p+k) Hessian of lnl in (beta, vars)
    scores: np.ndarray  # (G_top, p+k) per-top-group scores in (beta, vars)
    vcov: np.ndarray  # (p+k, p+k) sandwich covariance
    se: np.ndarray  # (p+k,) its square-root diagonal


def _top_group_scores(
    obj: _Objective, score_obj: _Objective, x: np.ndarray, ev: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Per-top-group gradients ``(G_top, p+k)`` in ``(beta, theta)`` and log-likelihood
    contributions at ``x``.

    ``score_obj`` is ``obj`` itself, or the exact-weight objective when ``obj`` uses WeMix's
    rounded Laplace weights (WeMix, too, takes the scores with exact weights); ``ev`` is
    ``obj``'s evaluation at ``x``.
    """
    S_x = score_obj.group_jacobian(x)
    lnl_by_group = ev["by_group"] if score_obj is obj else score_obj.by_group(x)
    return S_x, lnl_by_group


def _robust_covariance(
    structure: CovarianceStructure,
    level_names: list[str],
    theta: np.ndarray,
    hessian: np.ndarray,
    gradient: np.ndarray,
    scores: np.ndarray,
    design: SamplingDesign | None = None,
) -> _Sandwich:
    """The sandwich covariance of ``(beta, vars)`` from derivatives in ``(beta, theta)``.

    Parameters
    ----------
    structure, level_names
        The covariance structure and the grouping factors (level 2 first).
    theta
        ``(k,)`` canonical theta at the estimate.
    hessian
        ``(p+k, p+k)`` Hessian of lnl in ``(beta, theta)``.
    gradient
        ``(p+k,)`` gradient of lnl in ``(beta, theta)`` (not exactly zero: it enters the
        second-order term of the change of variables).
    scores
        ``(G_top, p+k)`` per-top-group gradients in ``(beta, theta)``.
    design
        The sampling design of the top-level groups (see
        :func:`~wemix_nb.estimation.meat.score_meat`); ``None``: clustered on the top level.
    """
    vmap = _VarMap(structure, level_names)
    p, k = len(gradient) - structure.size, structure.size
    Jinv = _inverse_vars_jacobian(vmap, theta, p)
    g_y = Jinv.T @ gradient
    second = np.zeros((p + k, p + k, p + k))
    second[p:, p:, p:] = vmap.second()
    H_y = Jinv.T @ (hessian - np.einsum("m,mab->ab", g_y, second)) @ Jinv
    scores_y = scores @ Jinv
    meat = score_meat(scores_y, design)
    Hinv = _inverse_hessian(H_y)
    V = Hinv @ meat @ Hinv
    V = 0.5 * (V + V.T)
    se = np.sqrt(np.maximum(np.diag(V), 0.0))
    return _Sandwich(vmap.vars(theta), vmap.names, H_y, scores_y, V, se)


def _inverse_vars_jacobian(vmap: _VarMap, theta: np.ndarray, p: int) -> np.ndarray:
    """Inverse of ``d (beta, vars) / d (beta, theta)``; a pseudo-inverse (with a warning) where
    a variance is zero and the map is singular."""
    k = vmap.k
    Jfull = np.eye(p + k)
    Jv = vmap.jacobian(theta)
    Jfull[p:, p:] = Jv
    if np.linalg.cond(Jv) > 1e12:
        warnings.warn(
            "A random-effect variance is (close to) zero, so the variance parameterisation is "
            "singular there; its standard errors are unreliable.",
            NumericalWarning,
            stacklevel=_STACKLEVEL,
        )
        return np.linalg.pinv(Jfull)
    return np.linalg.inv(Jfull)


def _inverse_hessian(H: np.ndarray) -> np.ndarray:
    """``H^{-1}``, or a pseudo-inverse (with a warning) when ``H`` is singular."""
    try:
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        warnings.warn(
            "The Hessian is singular; standard errors use a pseudo-inverse.",
            NumericalWarning,
            stacklevel=_STACKLEVEL,
        )
        return np.linalg.pinv(H)
