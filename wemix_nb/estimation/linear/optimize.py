"""Minimising the profiled deviance over theta: bounded L-BFGS-B on the exact gradient, restarts
away from zero variances, and a Newton polish of the flat optimum."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import scipy.optimize

from wemix_nb.errors import ConvergenceWarning

if TYPE_CHECKING:
    from wemix_nb.estimation.linear.problem import LinearProblem


def _optimize(problem: LinearProblem, start: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Minimise the profiled deviance over theta (diagonal entries bounded below by 0).

    Returns the canonical theta and the optimiser's report (see :meth:`LinearProblem.optimize`).
    """
    st = problem.structure
    x0 = st.start() if start is None else np.asarray(start, dtype=float)
    res = _bounded_search(problem, x0)
    # a few Newton steps on the exact gradient polish the flat optimum
    x, polished = _newton_polish(problem, res.x)
    converged = polished  # judged by the gradient at the point returned, whatever L-BFGS-B said
    gradient = float(np.max(np.abs(problem.deviance(x, gradient=True)[1]), initial=0.0))
    info = {
        "converged": converged,
        "iterations": int(res.nit),
        "evaluations": int(res.nfev),
        "message": (
            f"profiled deviance minimised; largest gradient entry {gradient:.1e}"
            if converged
            else f"stopped: {res.message}"
        ),
    }
    if not info["converged"]:
        warnings.warn(
            f"The optimiser did not converge after {res.nit} iterations: {res.message}",
            ConvergenceWarning,
            stacklevel=4,  # the caller of fit_linear (or of LinearProblem.optimize)
        )
    return st.canonical(x), info


def _bounded_search(problem: LinearProblem, x0: np.ndarray) -> scipy.optimize.OptimizeResult:
    """L-BFGS-B from ``x0``, restarted away from variances stuck at 0."""
    st = problem.structure
    scale = 1.0 / _deviance_unit(problem, problem.deviance(x0))  # an O(1) objective for the line search

    def objective(x):
        dev, grad = problem.deviance(x, gradient=True)
        return dev * scale, grad * scale

    def run(x):
        return scipy.optimize.minimize(
            objective,
            x,
            jac=True,
            method="L-BFGS-B",
            bounds=st.lower_bounds(),
            options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8, "maxcor": 20},
        )

    res = run(x0)
    # A diagonal entry at its bound of 0 has a zero gradient even when it is a saddle (theta
    # enters as theta^2 there), so the bounded search can stop on it: restart away from 0
    # and keep the restart if it is better.
    for _ in range(3):
        at_zero = st.diagonal & (res.x < 1e-4)
        if not at_zero.any():
            break
        trial = res.x.copy()
        trial[at_zero] = 0.5
        other = run(trial)
        if other.fun >= res.fun - 1e-12 * abs(res.fun):
            break
        res = other
    return res


def _free(problem: LinearProblem, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Parameters not resting on their bound (a diagonal entry at 0 pushed further down)."""
    return ~(problem.structure.diagonal & (x <= 1e-12) & (grad > 0))


def _newton_polish(problem: LinearProblem, x: np.ndarray, steps: int = 6) -> tuple[np.ndarray, bool]:
    """A few Newton steps on the exact gradient; returns the point and whether it is stationary
    (largest free gradient entry below 1e-8 of the deviance's size).

    A step is taken while it lowers the deviance. Near the optimum the deviance changes by less
    than its rounding error (a gradient of 1e-6 moves it by ~1e-12), so comparing deviances stops
    at an arbitrary point of a flat region, and two equivalent problems (weights written another
    way) stop at different points. There the exact gradient decides: a step whose deviance change
    is within rounding is taken if it shrinks the gradient. The Hessian (differences of the
    gradient) is recomputed only after a step large enough to change it: near the optimum the
    steps with the same Hessian still shrink the error by orders of magnitude each.
    """
    bounds = problem.structure.diagonal
    dev, grad = problem.deviance(x, gradient=True)
    H = None
    for _ in range(steps):
        free = _free(problem, x, grad)
        if not free.any():
            break
        if H is None:
            H = _jacobian(lambda t: problem.deviance(t, gradient=True)[1], x)
        step = _newton_step(H, grad, free)
        if step is None:
            break
        candidate = np.where(bounds, np.maximum(x + step, 0.0), x + step)
        new_dev, new_grad = problem.deviance(candidate, gradient=True)
        if not _better(dev, grad[free], new_dev, new_grad[free], _deviance_unit(problem, dev)):
            break
        x, dev, grad = candidate, new_dev, new_grad
        size = np.max(np.abs(step)) / (1 + np.max(np.abs(x)))
        if size < 1e-10:  # the error after a Newton step this small is far below it
            break
        if size > 1e-4:
            H = None
    free = _free(problem, x, grad)
    stationary = not free.any() or np.max(np.abs(grad[free])) < 1e-8 * _deviance_unit(problem, dev)
    return x, bool(stationary)


def _deviance_unit(problem: LinearProblem, dev: float) -> float:
    """The size of the deviance that tolerances are relative to: ``|dev|``, but at least the
    weighted number of rows (the deviance's scale when it nearly cancels), or 1 if that is
    larger. Weights far below 1 (e.g. conditional level-2 weights of 1e-5) make the deviance
    tiny, and a floor of 1 would stop the optimiser early there."""
    return max(abs(dev), min(problem.n_weighted, 1.0))


def _newton_step(H: np.ndarray, grad: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """The Newton step in the free parameters (None where the Hessian is not positive definite)."""
    Hf = 0.5 * (H + H.T)[np.ix_(free, free)]
    try:
        if np.linalg.eigvalsh(Hf).min() <= 0:
            return None
        step = np.zeros_like(grad)
        step[free] = -np.linalg.solve(Hf, grad[free])
    except np.linalg.LinAlgError:
        return None
    return step if np.all(np.isfinite(step)) else None


#: deviance changes within this fraction of the deviance's size are rounding
ROUNDING = 1e-12


def _better(dev: float, grad: np.ndarray, new_dev: float, new_grad: np.ndarray, unit: float) -> bool:
    """Whether a Newton step from ``(dev, grad)`` to ``(new_dev, new_grad)`` is progress: a lower
    deviance beyond rounding (relative to ``unit``, the deviance's size), or a change within
    rounding and a smaller gradient."""
    if not np.isfinite(new_dev):
        return False
    rounding = ROUNDING * unit
    if new_dev < dev - rounding:
        return True
    return abs(new_dev - dev) <= rounding and np.max(np.abs(new_grad), initial=0.0) < np.max(
        np.abs(grad), initial=0.0
    )


def _jacobian(func: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector function (used on exact gradients)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(len(x)):
        h = 1e-5 * (abs(x[j]) + 1e-3)
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        cols.append((func(up) - func(down)) / (2 * h))
    return np.column_stack(cols)
