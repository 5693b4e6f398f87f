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
        The quadrature model's saved modes at ``x`` (its warm start), or ``None`` for a frame with
        other groups.
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
    if start.modes is not None:  # None: the frame's groups are not the full sample's
        model.restore_modes(start.modes)
    p = frame.X.shape[1]
    obj = _Objective(model, p)
    result = _quasi_newton(
        obj, start.x.copy(), start.Hneg, max_iteration, False, "replicate", _gradient_tolerance(model)
    )
    x, value, steps = _chord_polish(obj, result.x, result.value, result.grad, result.Hneg)
    structure = CovarianceStructure(frame.levels)
    theta = structure.canonical(x[p:])
    return GlmmRefit(x[:p].copy(), theta, float(value), bool(result.converged), result.iterations + steps)


def _chord_polish(
    obj: _Objective, x: np.ndarray, value: float, grad: np.ndarray, Hneg: np.ndarray, max_steps: int = 10
) -> tuple[np.ndarray, float, int]:
    """Newton steps with a fixed matrix (the quasi-Newton phase's approximation of the negative
    Hessian): one gradient per step, down to a relative step of 1e-10. The quasi-Newton phase
    stops on its decrement, which for a large log-likelihood allows a gradient well above what the
    full fit's Newton polish reaches; these steps close that gap without a new Hessian."""
    solve = np.linalg.inv(Hneg)
    steps = 0
    for steps in range(1, max_steps + 1):
        d = solve @ grad
        if not np.all(np.isfinite(d)):
            return x, value, steps - 1
        new_value, new_grad = obj.value_grad(x + d)
        if not np.isfinite(new_value) or new_value < value - 1e-12 * abs(value):
            return x, value, steps
        x, value, grad = x + d, new_value, new_grad
        if np.max(np.abs(d) / (1.0 + np.abs(x))) < 1e-10:
            break
    return x, value, steps
