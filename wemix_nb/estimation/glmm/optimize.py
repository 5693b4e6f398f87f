"""Maximising the GLMM pseudo-log-likelihood over ``x = (beta, theta)``.

Each phase (a Laplace pre-fit, then the AGHQ objective) is maximised by a quasi-Newton
(BFGS-updated Newton) iteration with backtracking, started from a finite-difference Hessian of the
gradient; a final Newton polish with a fresh finite-difference Hessian gives a tight optimum and
the Hessian needed for the standard errors. Gradients are the model's analytic ones (2 and 3
levels), or central finite differences of the likelihood for a model without them.

Stopping rule
    The Newton decrement ``g' H^{-1} g`` (twice the expected gain in log-likelihood) must fall
    below ``tol``, given in units of the mean top-level weight, so that the rule does not change
    when all weights are rescaled; it is invariant to reparametrisation, so a gradient that is
    large only along a direction of huge curvature (an intercept with counts of 1e11) does not
    hold it up. The objective carries no constant terms (see ``QuadratureModel.constant_by_group``),
    so the floor set by its rounding noise, ~1e3 eps |objective|, is not inflated by
    ``log(y!)``-like terms. The final decision is taken at the polished point with a fresh
    finite-difference Hessian: a phase that stops because its steps became tiny has not converged
    by that fact alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wemix_nb.errors import DataError
from wemix_nb.estimation.glmm.protocol import QuadratureModel


def _fd_jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central-difference Jacobian of a vector function (columns = parameters)."""
    cols = []
    for j in range(len(x)):
        h = rel * (1.0 + abs(x[j]))
        e = np.zeros_like(x)
        e[j] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2.0 * h))
    return np.stack(cols, axis=-1)


def _symmetrise(
    J: np.ndarray, noise: np.ndarray | None = None, steps: np.ndarray | None = None
) -> np.ndarray:
    """A symmetric Hessian from a finite-difference Jacobian of the gradient.

    ``J[i, j]`` reads gradient component ``i`` after a step ``steps[j]`` in parameter ``j``, so
    its error is about ``noise[i] / steps[j]``; the two estimates of each cross derivative are
    combined with inverse-variance weights (a plain average when the noises are alike). With
    level-1 weights of 1e11 a slope's gradient carries rounding noise of 1e7 while the
    intercept's carries 1e-4: a plain average would put that noise into the cross derivative and,
    through the sandwich, into the intercept's standard error.
    """
    if noise is None or steps is None:
        return 0.5 * (J + J.T)
    noise = np.maximum(noise, 1e-300 + 1e-12 * np.max(noise))
    w = np.outer(1.0 / noise, steps) ** 2  # w[i, j] = (steps[j] / noise[i])^2
    return (w * J + w.T * J.T) / (w + w.T)


def _make_pd(H: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Symmetric positive-definite version of ``H`` (eigenvalues replaced by their magnitude).

    The eigenvalues are taken after scaling ``H`` to unit diagonal, so that the floor (a fraction
    of the largest) is relative to each parameter's own curvature: with counts of 1e11 a slope's
    curvature is ~1e13 and a variance parameter's ~10, and a floor relative to the largest
    eigenvalue of ``H`` itself would freeze the variance parameter.
    """
    H = 0.5 * (H + H.T)
    d = np.sqrt(np.abs(np.diag(H)))
    d = np.where((d > 0) & np.isfinite(d), d, 1.0)
    vals, vecs = np.linalg.eigh(H / np.outer(d, d))
    scale = max(np.max(np.abs(vals)), 1e-300)
    vals = np.maximum(np.abs(vals), floor * scale)
    return np.outer(d, d) * ((vecs * vals) @ vecs.T)


def _gradient_tolerance(model: QuadratureModel, weight_unit: float = 1.0) -> float:
    """Newton-decrement tolerance in lnl units: finite-difference gradients are noisier than
    analytic ones. ``weight_unit`` (the mean top-level weight) makes it invariant to rescaling the
    weights."""
    return (1e-12 if model.analytic_gradient else 1e-8) * weight_unit


class _Objective:
    """``x = (beta, theta)`` -> value, gradient, per-group pieces; analytic or finite differences.

    Parameters
    ----------
    model
        The likelihood.
    p
        Number of fixed effects (``x[:p]`` is beta).
    """

    def __init__(self, model: QuadratureModel, p: int):
        self.model = model
        self.p = p
        self.analytic = model.analytic_gradient
        self._last: tuple[np.ndarray, dict] | None = None

    def full(self, x: np.ndarray) -> dict:
        """The model's full evaluation at ``x`` (with gradients when analytic), cached."""
        if self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1]
        ev = self.model.evaluate(x[: self.p], x[self.p :], grad=self.analytic)
        self._last = (np.array(x, copy=True), ev)
        return ev

    def value(self, x: np.ndarray) -> float:
        """The log-likelihood at ``x``."""
        return self.model.evaluate(x[: self.p], x[self.p :])["value"]

    def by_group(self, x: np.ndarray) -> np.ndarray:
        """The top-level groups' contributions at ``x``."""
        return self.model.evaluate(x[: self.p], x[self.p :])["by_group"]

    def value_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient at ``x`` (``-inf`` and NaNs where the likelihood is not finite)."""
        if self.analytic:
            ev = self.full(x)
            if not np.isfinite(ev["value"]):
                return -np.inf, np.full(len(x), np.nan)
            return ev["value"], ev["grad"]
        val = self.value(x)
        if not np.isfinite(val):
            return -np.inf, np.full(len(x), np.nan)
        # the differences would leave the warm start at the last perturbed point
        saved = self.model.save_modes()
        g = _fd_jacobian(self.value, x, rel=1e-5)
        self.model.restore_modes(saved)
        return val, g

    def hessian(self, x: np.ndarray, g0: np.ndarray | None = None) -> np.ndarray:
        """Hessian of the value: differences of the analytic gradient, or second differences.

        With the gradient ``g0`` at ``x`` given, forward differences (half the cost, relative
        accuracy ~1e-6, enough for a starting matrix); otherwise central differences (~1e-9).
        """
        if self.analytic:
            return self._hessian_from_gradient(x, g0)
        return self._hessian_from_values(x)

    def _hessian_from_gradient(self, x: np.ndarray, g0: np.ndarray | None) -> np.ndarray:
        if g0 is not None:
            cols = []
            for j in range(len(x)):
                h = 1e-6 * (1.0 + abs(x[j]))
                e = np.zeros_like(x)
                e[j] = h
                cols.append((self.value_grad(x + e)[1] - g0) / h)
            return _symmetrise(np.stack(cols, axis=-1))
        # the gradient's rounding noise scales with the size of its per-group terms
        noise = np.sqrt(np.sum(self.full(x)["grad_by_group"] ** 2, axis=0))
        J = _fd_jacobian(lambda z: self.value_grad(z)[1], x, rel=1e-4)
        return _symmetrise(J, noise, 1e-4 * (1.0 + np.abs(x)))

    def _hessian_from_values(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        h = 1e-4 * (1.0 + np.abs(x))
        f0 = self.value(x)
        H = np.empty((n, n))
        fp, fm = np.empty(n), np.empty(n)
        for j in range(n):
            e = np.zeros(n)
            e[j] = h[j]
            fp[j], fm[j] = self.value(x + e), self.value(x - e)
            H[j, j] = (fp[j] - 2 * f0 + fm[j]) / h[j] ** 2
        for a in range(n):
            for b in range(a + 1, n):
                ea, eb = np.zeros(n), np.zeros(n)
                ea[a], eb[b] = h[a], h[b]
                H[a, b] = H[b, a] = (
                    self.value(x + ea + eb)
                    - self.value(x + ea - eb)
                    - self.value(x - ea + eb)
                    + self.value(x - ea - eb)
                ) / (4 * h[a] * h[b])
        return H

    def group_jacobian(self, x: np.ndarray) -> np.ndarray:
        """``(G_top, P)`` per-top-group gradients."""
        if self.analytic:
            return self.full(x)["grad_by_group"]
        return _fd_jacobian(self.by_group, x, rel=1e-5)


_EPS = np.finfo(float).eps


def _decrement_tolerance(tol: float, value: float, analytic: bool = False) -> float:
    """Where a phase stops: the Newton decrement (expected gain in the objective) cannot fall
    below what the rounding noise of the objective, ~eps |objective|, does to the gradient (the
    objective has no constant terms, so this floor reflects only the size of what is being
    maximised). Finite-difference gradients divide that noise by their step: a wider floor."""
    return max(tol, (10.0 if analytic else 1e3) * _EPS * abs(value))


def _line_search(obj: _Objective, x: np.ndarray, d: np.ndarray, val: float):
    """Backtracking from the full step ``d``: ``(x, value, gradient, t)`` of the first point not
    worse than ``val`` (up to rounding), or None after 40 halvings."""
    t = 1.0
    for _ in range(40):
        xn = x + t * d
        vn, gn = obj.value_grad(xn)
        if np.isfinite(vn) and vn >= val - 1e-12 * abs(val):
            return xn, vn, gn, t
        t *= 0.5
    return None


def _newton_decrement(g: np.ndarray, Hneg: np.ndarray) -> float:
    """``g' Hneg^{-1} g`` with ``Hneg`` made positive definite (``inf`` if it cannot be solved)."""
    try:
        d = np.linalg.solve(_make_pd(Hneg), g)
    except np.linalg.LinAlgError:
        return np.inf
    dec = float(g @ d)
    return dec if np.isfinite(dec) else np.inf


@dataclass
class _QuasiNewtonResult:
    """Where a quasi-Newton phase stopped."""

    x: np.ndarray
    value: float
    grad: np.ndarray
    Hneg: np.ndarray  # the BFGS approximation of the negative Hessian there
    converged: bool
    iterations: int


def _quasi_newton(
    obj: _Objective,
    x: np.ndarray,
    Hneg: np.ndarray | None,
    max_iter: int,
    verbose: bool,
    label: str,
    tol: float = 1e-12,
    bar=None,
) -> _QuasiNewtonResult:
    """Maximise with BFGS-updated Newton steps and backtracking.

    ``Hneg`` approximates the negative Hessian; if None it is built by finite differences.
    Converged when the Newton decrement ``g' Hneg^{-1} g`` (twice the expected gain) is below
    ``tol``; stops without converging when the relative step falls below 1e-11 or the line search
    fails. ``bar`` is a progress bar advanced per iteration.
    """
    val, g = obj.value_grad(x)
    if not np.isfinite(val):
        raise DataError("The log-likelihood is not finite at the start values.")
    if Hneg is None:
        Hneg = -obj.hessian(x, g0=g)
    converged = False
    it = stalled = 0
    for it in range(1, max_iter + 1):
        Hpd = _make_pd(Hneg)
        try:
            d = np.linalg.solve(Hpd, g)
        except np.linalg.LinAlgError:  # a curvature of inf or NaN: no direction to follow
            break
        dec = float(g @ d)
        if not np.isfinite(dec):
            break
        if dec < _decrement_tolerance(tol, val, obj.analytic):
            converged = True
            it -= 1
            break
        found = _line_search(obj, x, d, val)
        if found is None:
            break
        xn, vn, gn, t = found
        # gains lost in the objective's rounding noise, three times running: no more progress
        stalled = stalled + 1 if vn - val < 10.0 * _EPS * abs(val) else 0
        s = xn - x
        yk = -(gn - g)
        sy = float(s @ yk)
        if sy > 1e-14 * np.linalg.norm(s) * np.linalg.norm(yk):
            Hs = Hneg @ s
            Hneg = Hneg - np.outer(Hs, Hs) / float(s @ Hs) + np.outer(yk, yk) / sy
        if verbose:
            print(f"[{label}] iteration {it}: lnl = {vn:.10g}, step = {t:g}, decrement = {dec:.3g}")
        if bar is not None:
            bar.update()
            bar.set_postfix_str(f"{label} lnl={vn:.8g}")
        x, val, g = xn, vn, gn
        if stalled >= 3 or np.max(np.abs(s) / (1.0 + np.abs(x))) < 1e-11:
            break  # no progress; whether this is an optimum is decided after the polish
    return _QuasiNewtonResult(x, val, g, Hneg, converged, it)


@dataclass
class _PolishResult:
    """The optimum after the Newton polish."""

    x: np.ndarray
    value: float
    grad: np.ndarray
    hessian: np.ndarray  # finite-difference Hessian of lnl, fresh unless the last steps were tiny
    stationary: bool  # the Newton decrement there is within 100 x the tolerance
    steps: int
    decrement: float  # the Newton decrement g' (-H)^{-1} g there


def _newton_polish(obj: _Objective, start: _QuasiNewtonResult, max_steps: int, tol: float) -> _PolishResult:
    """Up to ``max_steps`` (at most 5) Newton steps with a finite-difference Hessian.

    The quasi-Newton matrix is only an approximation; true Newton steps reach a tight optimum
    quickly, and the Hessian they use is the one the standard errors need. The Hessian is only
    recomputed after a step large enough to change it.
    """
    x, val, g = start.x, start.value, start.grad
    H = obj.hessian(x)
    steps = 0
    for _polish in range(min(5, max_steps)):
        if not np.all(np.isfinite(H)):
            break
        d = np.linalg.solve(_make_pd(-H), g)
        rel_step = np.max(np.abs(d) / (1 + np.abs(x)))
        if not np.all(np.isfinite(d)) or rel_step < 1e-10:
            break
        t = 1.0
        for _ in range(30):
            vn = obj.value(x + t * d)
            if vn >= val - 1e-12 * abs(val):
                break
            t *= 0.5
        else:
            break
        x = x + t * d
        val, g = obj.value_grad(x)
        steps += 1
        if t * rel_step > 1e-5:  # moved far enough for the Hessian to change
            H = obj.hessian(x)
    dec = _newton_decrement(g, -H) if np.all(np.isfinite(H)) else np.inf
    stationary = bool(dec < 100 * tol)
    return _PolishResult(x, val, g, H, stationary, steps, dec)


def _step_in_standard_errors(g: np.ndarray, H: np.ndarray, scores: np.ndarray) -> float:
    """The largest Newton step ``(-H)^{-1} g`` of a parameter in units of its robust standard
    error (the sandwich of ``H`` and the top-level ``scores``, all in the same parametrisation).

    The Newton decrement measures the distance to the optimum in units of the model-based
    standard errors, which treat the weights as frequencies: with level-1 weights of 1e11 those
    are a million times too small, and the rounding noise of a sum of terms of 1e11 keeps the
    decrement above any tolerance although the estimates sit within 1e-6 robust standard errors
    of the optimum. This criterion measures the remaining step against what is statistically
    known. ``inf`` where it cannot be computed.
    """
    try:
        Hinv = np.linalg.inv(_make_pd(-H))
    except np.linalg.LinAlgError:
        return np.inf
    step = Hinv @ g
    G = scores.shape[0]
    meat = G / max(G - 1, 1) * scores.T @ scores
    se = np.sqrt(np.maximum(np.diag(Hinv @ meat @ Hinv), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(step == 0.0, 0.0, np.abs(step) / se)
    worst = float(np.max(ratio)) if ratio.size else 0.0
    return worst if np.isfinite(worst) else np.inf
