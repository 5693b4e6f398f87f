"""Refitting a GLMM with other weights from the full-sample estimate (replicate weights).

A replicate fit needs the estimates only: it starts at the full-sample ``(beta, theta)`` with the
full-sample modes as the warm start of the quadrature and the full-sample Hessian as the first
curvature, runs the quasi-Newton phase of :func:`~wemix_nb.estimation.glmm.fit_glmm` to the same
tolerance, and skips the Laplace pre-fit, the Newton polish, the sandwich and the modes' report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm.fit import _make_model
from wemix_nb.estimation.glmm.optimize import _gradient_tolerance, _Objective, _quasi_newton
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame


@dataclass(frozen=True)
class GlmmStart:
    """Where every replicate fit starts: the full-sample estimate, its modes and curvature.

    Attributes
    ----------
    x
        ``(p + k,)`` the full-sample ``(beta, theta)`` (theta on the absolute scale).
    modes
        The quadrature model's saved modes at ``x`` (its warm start).
    Hneg
        ``(p + k, p + k)`` negative Hessian of the full-sample log-likelihood at ``x``.
    """

    x: np.ndarray
    modes: object
    Hneg: np.ndarray


@dataclass(frozen=True)
class GlmmRefit:
    """The estimates of one refit: ``beta``, canonical ``theta``, ``lnl``, whether it converged
    and the quasi-Newton iterations used."""

    beta: np.ndarray
    theta: np.ndarray
    lnl: float
    converged: bool
    iterations: int


def glmm_start(
    frame: ModelFrame, family: Family, nquad: int, beta: np.ndarray, theta: np.ndarray, laplace_rounding: bool
) -> GlmmStart:
    """The :class:`GlmmStart` of the full-sample fit of ``frame`` at ``(beta, theta)``."""
    model = _make_model(frame, family, nquad, laplace_rounding)
    obj = _Objective(model, len(beta))
    x = np.r_[beta, theta]
    _, g = obj.value_grad(x)
    Hneg = -obj.hessian(x, g0=None)
    model.evaluate(x[: len(beta)], x[len(beta) :])  # leave the modes at x
    return GlmmStart(x, model.save_modes(), Hneg)


def refit_glmm(
    frame: ModelFrame,
    family: Family,
    nquad: int,
    start: GlmmStart,
    max_iteration: int = 100,
    laplace_rounding: bool = False,
) -> GlmmRefit:
    """Maximise the likelihood of ``frame`` (the full sample's rows with a replicate's weights)
    from ``start``.

    Parameters
    ----------
    frame
        The model frame with the replicate's weights.
    family, nquad, laplace_rounding
        As in the full-sample fit.
    start
        The full-sample estimate (:func:`glmm_start`).
    max_iteration
        Maximum quasi-Newton iterations.
    """
    model = _make_model(frame, family, nquad, laplace_rounding)
    model.restore_modes(start.modes)
    p = frame.X.shape[1]
    obj = _Objective(model, p)
    result = _quasi_newton(
        obj, start.x.copy(), start.Hneg, max_iteration, False, "replicate", _gradient_tolerance(model)
    )
    structure = CovarianceStructure(frame.levels)
    theta = structure.canonical(result.x[p:])
    return GlmmRefit(
        result.x[:p].copy(), theta, float(result.value), bool(result.converged), result.iterations
    )
