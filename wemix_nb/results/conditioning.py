"""The problem the estimators solve, scaled to numbers of order one, and their estimates mapped back.

The estimators run in floating point with tolerances, step sizes and starting values made for
quantities of order one. A model whose covariate is in units that make it ``1e-160`` (or
``1e155``) squares it to an underflow (overflow), and weights that sum to ``1e-20`` make the
pseudo-log-likelihood too flat for its optimiser; neither changes the model. Before estimation,
:func:`condition` therefore

* divides each fixed-effect column by its largest absolute value ``c_j`` (the intercept and
  dummies keep theirs, 1): a reparametrisation ``beta'_j = c_j beta_j``;
* divides the weights by the mean top-level weight ``m`` (unconditional weights of every level,
  and the top level's own weight; conditional weights below the top do not change): the
  pseudo-log-likelihood, its scores and Hessian become ``1/m`` times theirs, every estimate and
  robust covariance is unchanged.

:class:`Conditioning` maps the estimates back: ``beta = beta' / c``, covariances of beta by
``1 / (c c')``, ``lnl = m lnl'``, the model-based covariance by ``1/m``. The estimates of a model and
of the same model with rescaled covariates or weights are then the same up to rounding.

``laplace_rounding`` (WeMix's binomial Laplace objective) rounds the level-1 weights, which does
not commute with rescaling them: its weights are left as given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from wemix_nb.errors import NumericalWarning
from wemix_nb.estimation.glmm import GlmmFit
from wemix_nb.estimation.linear import LinearSolution
from wemix_nb.model.frame import ModelFrame

__all__ = ["Conditioning", "condition"]


@dataclass(frozen=True)
class Conditioning:
    """How a model frame was scaled for its estimator.

    Attributes
    ----------
    x_scale
        ``(p,)`` the divisor ``c_j`` of each fixed-effect column.
    weight_scale
        The divisor ``m`` of the weights.
    """

    x_scale: np.ndarray
    weight_scale: float

    # -- into the estimator -------------------------------------------------------------------

    def frame(self, frame: ModelFrame) -> ModelFrame:
        """``frame`` with its fixed-effect columns and weights divided by the scales."""
        m = self.weight_scale
        top = len(frame.levels) - 1
        levels = [
            replace(
                level,
                weight=level.weight / m,
                cond_weight=level.cond_weight / m if k == top else level.cond_weight,
            )
            for k, level in enumerate(frame.levels)
        ]
        cond_weight1 = frame.cond_weight1 if frame.levels else frame.cond_weight1 / m
        return replace(
            frame,
            X=frame.X / self.x_scale,
            weight1=frame.weight1 / m,
            cond_weight1=cond_weight1,
            levels=levels,
        )

    def glmm_start(self, start: np.ndarray | None) -> np.ndarray | None:
        """A GLMM's ``(beta[, theta])`` start in the scaled parametrisation."""
        if start is None:
            return None
        start = np.array(start, dtype=float)
        p = min(len(self.x_scale), len(start))
        start[:p] *= self.x_scale[:p]
        return start

    # -- out of the estimator -----------------------------------------------------------------

    def _beta(self, beta: np.ndarray) -> np.ndarray:
        return beta / self.x_scale

    def _beta_covariance(self, cov: np.ndarray, names: list[str] | None = None) -> np.ndarray:
        """``cov / (c c')``, divided one factor at a time (``c c'`` itself may overflow)."""
        with np.errstate(over="ignore"):
            out = cov / self.x_scale[:, None] / self.x_scale[None, :]
        beyond = np.isfinite(cov).all(axis=1) & ~np.isfinite(out).all(axis=1)
        if names is not None and beyond.any():
            columns = ", ".join(repr(names[j]) for j in np.flatnonzero(beyond))
            warnings.warn(
                f"The (co)variances of the fixed effect(s) of {columns} are beyond floating-point "
                "range (the columns' values are tiny): they are inf in cov_mat, so Wald tests of "
                "them cannot be computed; their standard errors are exact. Rescale the column(s).",
                NumericalWarning,
                stacklevel=4,
            )
        return out

    def beta_se(self, cov: np.ndarray) -> np.ndarray:
        """Standard errors of beta from the scaled problem's covariance (finite even where the
        variance itself is beyond floating-point range)."""
        return np.sqrt(np.clip(np.diag(cov), 0, None)) / self.x_scale

    def linear(self, solution: LinearSolution, names: list[str]) -> LinearSolution:
        """A linear solution in the model's own units (``names``: the fixed effects, for the
        warning when a covariance is beyond floating-point range)."""
        m = self.weight_scale
        return replace(
            solution,
            beta=self._beta(solution.beta),
            cov_beta=self._beta_covariance(solution.cov_beta, names),
            model_cov=self._beta_covariance(solution.model_cov) / m,
            lnl=float(solution.lnl * m),
        )

    def glmm(self, fit: GlmmFit) -> GlmmFit:
        """A GLMM fit in the model's own units (its gradient norm stays the scaled problem's)."""
        m = self.weight_scale
        t = np.ones(fit.hessian.shape[0])  # (beta, variance parameters)' = t * (beta, ...)
        t[: len(self.x_scale)] = self.x_scale
        with np.errstate(over="ignore"):
            vcov_full = fit.vcov_full / t[:, None] / t[None, :]
            hessian = fit.hessian * t[:, None] * t[None, :] * m
        return replace(
            fit,
            beta=self._beta(fit.beta),
            cov_beta=self._beta_covariance(fit.cov_beta, list(fit.fixed_names)),
            se_beta=fit.se_beta / self.x_scale,
            vcov_full=vcov_full,
            hessian=hessian,
            scores=fit.scores * t * m,
            lnl=float(fit.lnl * m),
            lnl_by_group=fit.lnl_by_group * m,
        )


def condition(frame: ModelFrame, *, weights: bool = True) -> Conditioning:
    """The scales of a model frame (see the module docstring).

    Parameters
    ----------
    frame
        The model frame.
    weights
        False to leave the weights as they are (WeMix's rounded Laplace weights).
    """
    x_scale = np.max(np.abs(frame.X), axis=0, initial=0.0)
    x_scale[~(np.isfinite(x_scale) & (x_scale > 0))] = 1.0  # an all-zero column stays (refused elsewhere)
    top = frame.levels[-1].weight if frame.levels else frame.weight1
    m = float(np.mean(top)) if weights else 1.0
    if not (np.isfinite(m) and m > 0):
        m = 1.0
    return Conditioning(x_scale=x_scale, weight_scale=m)
