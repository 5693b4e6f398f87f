"""The problem the estimators solve, scaled to numbers of order one, and their estimates mapped back.

The estimators run in floating point with tolerances, step sizes and starting values made for
quantities of order one. A model whose covariate is in units that make it ``1e-160`` (or
``1e155``) squares it to an underflow (overflow), weights that sum to ``1e-20`` make the
pseudo-log-likelihood too flat for its optimiser, and a GLMM's quasi-Newton steps in beta go astray
when a covariate is ``1e4`` times too large; none of this changes the model. Before estimation,
:func:`condition` therefore

* divides each fixed-effect column whose largest absolute value is outside ``[2**-10, 2**10]`` by
  a power of two ``c_j`` that brings it to [1, 2): a reparametrisation ``beta'_j = c_j beta_j``;
* divides each random-effect column (of each level's ``Z``) whose largest absolute value is outside
  that range by a power of two ``d_a``: the random effects become ``b'_a = d_a b_a``, so their
  covariance ``Sigma' = D Sigma D`` and its factor ``Lambda' = D Lambda`` (rows scaled; the
  optimisers start from identity factors and judge variances near 0 in absolute terms, which
  assumes columns of order one);
* divides the weights by a power of two ``m`` when the mean top-level weight is outside that range
  (unconditional weights of every level, and the top level's own weight; conditional weights below
  the top do not change): the pseudo-log-likelihood, its scores and Hessian become ``1/m`` times
  theirs, every estimate and robust covariance is unchanged.

Powers of two scale floating-point numbers exactly, so the scaled problem is the model itself
written in other units, and :class:`Conditioning` maps the estimates back exactly: ``beta = beta'
/ c``, covariances of beta by ``1 / (c c')``, ``lnl = m lnl'``, the model-based covariance by
``1/m``, ``theta`` by ``1 / d_row``, a (co)variance ``Sigma[a, c]`` and its standard error by
``1 / (d_a d_c)``, the random effects by ``1 / d_a``. Columns and weights of order one are left as
they are, so most models are fitted exactly as given. :meth:`Conditioning.likelihood` gives
:func:`wemix_nb.likelihood` the same scaled function, so that it returns a fit's ``lnl`` at its
estimate exactly; :meth:`Conditioning.problem` gives the result's details the problem of the model
as given.

``laplace_rounding`` (WeMix's binomial Laplace objective) rounds the level-1 weights, which does
not commute with rescaling them: its weights are left as given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from wemix_nb.errors import NumericalWarning
from wemix_nb.estimation.glmm import GlmmFit
from wemix_nb.estimation.likelihood import LINEAR, PROFILED, LogLikelihood
from wemix_nb.estimation.linear import LinearProblem, LinearSolution
from wemix_nb.model.covariance import CovarianceStructure
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
    z_scale
        Per level (level 2 first), ``(q,)`` the divisor ``d_a`` of each random-effect column.
    theta_entries
        Per level, the rows and the columns of its theta entries, in lme4's order.
    """

    x_scale: np.ndarray
    weight_scale: float
    z_scale: tuple[np.ndarray, ...] = ()
    theta_entries: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def active(self) -> bool:
        """Whether anything is scaled (else the estimator sees the model frame as it is)."""
        return bool(np.any(self.x_scale != 1.0) or self.weight_scale != 1.0 or self.z_active)

    @property
    def z_active(self) -> bool:
        """Whether a random-effect column is scaled."""
        return any(bool(np.any(d != 1.0)) for d in self.z_scale)

    @property
    def theta_scale(self) -> np.ndarray:
        """``(k,)`` per entry of theta (lme4's order) the divisor ``d_row`` of its row: ``theta' =
        d_row theta``."""
        return np.concatenate(
            [np.empty(0), *(d[rows] for d, (rows, _) in zip(self.z_scale, self._entries, strict=True))]
        )

    @property
    def entry_scale(self) -> np.ndarray:
        """``(k,)`` per entry of theta ``d_row d_col``: ``Sigma'[row, col] = d_row d_col Sigma[row, col]``."""
        return np.concatenate(
            [
                np.empty(0),
                *(d[rows] * d[cols] for d, (rows, cols) in zip(self.z_scale, self._entries, strict=True)),
            ]
        )

    @property
    def _entries(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [
            (np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)) for rows, cols in self.theta_entries
        ]

    def _glmm_parameter_scale(self) -> np.ndarray:
        """``d_a d_c`` of the GLMM estimator's variance parameters, in its order (per level the
        variances, then the covariances column by column below the diagonal)."""
        factors = []
        for d in self.z_scale:
            q = len(d)
            factors += [d[a] * d[a] for a in range(q)]
            factors += [d[r] * d[c] for c in range(q) for r in range(c + 1, q)]
        return np.array(factors, dtype=float)

    # -- into the estimator -------------------------------------------------------------------

    def frame(self, frame: ModelFrame) -> ModelFrame:
        """``frame`` with its fixed-effect columns and weights divided by the scales (``frame``
        itself when nothing is scaled)."""
        if not self.active:
            return frame
        m = self.weight_scale
        top = len(frame.levels) - 1
        levels = [
            replace(
                level,
                Z=level.Z / self.z_scale[k] if self.z_active else level.Z,
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
        p = len(self.x_scale)
        return start * self._parameter_scale(p, len(start) > p, False)[: len(start)]

    def linear_start(self, start: np.ndarray | None) -> np.ndarray | None:
        """A linear model's theta start in the scaled parametrisation."""
        return None if start is None else np.asarray(start, dtype=float) * self.theta_scale

    def _parameter_scale(self, p: int, theta: bool, sigma: bool) -> np.ndarray:
        """The factors ``t`` of a parameter vector ``(beta[:p], theta?, sigma?)``: ``x' = t x``."""
        parts = [self.x_scale[:p]]
        if theta:
            parts.append(self.theta_scale)
        if sigma:
            parts.append(np.ones(1))
        return np.concatenate(parts)

    def likelihood(self, inner: LogLikelihood) -> LogLikelihood:
        """The model's likelihood function from that of the scaled frame (``inner``): the scaled
        function at the scaled parameters, times ``m``. At a fit's estimate it is the fit's
        ``lnl`` exactly (the same evaluation, and powers of two scale exactly)."""
        m = self.weight_scale
        p = 0 if inner.kind == PROFILED else len(self.x_scale)
        t = self._parameter_scale(p, True, inner.kind == LINEAR)

        def scaled(x: np.ndarray) -> np.ndarray:
            return np.asarray(x, dtype=float) * t

        return LogLikelihood(
            inner.names,
            np.asarray(inner.start, dtype=float) / t,
            inner.kind,
            lambda x: inner(scaled(x)) * m,
            lambda x: inner.by_group(scaled(x)) * m,
            inner.family,
        )

    # -- out of the estimator -----------------------------------------------------------------

    def problem(self, frame: ModelFrame, solved: LinearProblem) -> LinearProblem:
        """The linear problem of the model as given, for the result's details (which callers use
        with the result's own frame, e.g. to refit replicates); the scaled problem ``solved`` when
        nothing was scaled, or when the model's own cross-products are beyond floating-point range."""
        if not self.active:
            return solved
        with np.errstate(all="ignore"):
            try:
                problem = LinearProblem(frame)
            except (np.linalg.LinAlgError, ValueError):
                return solved
        return problem if np.all(np.isfinite(problem.T)) and np.all(np.isfinite(problem.beta0)) else solved

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
        solution = replace(
            solution,
            beta=self._beta(solution.beta),
            cov_beta=self._beta_covariance(solution.cov_beta, names),
            model_cov=self._beta_covariance(solution.model_cov) / m,
            lnl=float(solution.lnl * m),
        )
        return self._linear_random(solution) if self.z_active else solution

    def _linear_random(self, solution: LinearSolution) -> LinearSolution:
        """The random part of a linear solution in the model's own units (the spherical modes
        ``u``, the residual variance and the fitted values do not change)."""
        entry = self.entry_scale
        phi_cov = {}
        for k, V in solution.phi_cov.items():
            t = np.append(self.z_scale[k][self._entries[k][0]], 1.0)  # (the level's theta, sigma)
            phi_cov[k] = V / t[:, None] / t[None, :]
        var_se = {
            key: value
            if key == ("residual",)
            else value / (self.z_scale[key[0]][key[1]] * self.z_scale[key[0]][key[2]])
            for key, value in solution.var_se.items()
        }
        with np.errstate(over="ignore"):
            return replace(
                solution,
                theta=solution.theta / self.theta_scale,
                b=[b / d for b, d in zip(solution.b, self.z_scale, strict=True)],
                b_cov=[
                    c / d[:, None] / d[None, :] for c, d in zip(solution.b_cov, self.z_scale, strict=True)
                ],
                phi_cov=phi_cov,
                var_theta=solution.var_theta / entry[:, None] / entry[None, :],
                var_se=var_se,
            )

    def glmm(self, fit: GlmmFit) -> GlmmFit:
        """A GLMM fit in the model's own units (its gradient norm stays the scaled problem's)."""
        m = self.weight_scale
        p = len(self.x_scale)
        t = np.ones(fit.hessian.shape[0])  # (beta, variance parameters)' = t * (beta, ...)
        t[:p] = self.x_scale
        if self.z_active:
            t[p:] = self._glmm_parameter_scale()
        with np.errstate(over="ignore"):
            vcov_full = fit.vcov_full / t[:, None] / t[None, :]
            hessian = fit.hessian * t[:, None] * t[None, :] * m
        fit = replace(
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
        return self._glmm_random(fit, t[p:]) if self.z_active else fit

    def _glmm_random(self, fit: GlmmFit, var_scale: np.ndarray) -> GlmmFit:
        """The random part of a GLMM fit in the model's own units (``var_scale``: the factors of
        its variance parameters; the spherical modes and the fitted values do not change)."""
        modes = [
            replace(level, b=level.b / d, b_sd=level.b_sd / d)
            for level, d in zip(fit.modes, self.z_scale, strict=True)
        ]
        with np.errstate(over="ignore"):
            return replace(
                fit,
                theta=fit.theta / self.theta_scale,
                var_params=fit.var_params / var_scale,
                var_params_se=fit.var_params_se / var_scale,
                covariances=[
                    c / d[:, None] / d[None, :] for c, d in zip(fit.covariances, self.z_scale, strict=True)
                ],
                modes=modes,
            )


#: fixed-effect columns whose largest absolute value, and weights whose top-level mean, are within
#: [2**-BAND, 2**BAND] are left as they are (the estimators are reliable over that range)
BAND = 10


def _power_of_two(size: np.ndarray) -> np.ndarray:
    """``2**k`` bringing positive finite ``size`` to [1, 2) when it is outside the band, else 1."""
    size = np.asarray(size, dtype=float)
    usable = np.isfinite(size) & (size > 0)
    exponent = np.floor(np.log2(np.where(usable, size, 1.0)))
    outside = usable & (np.abs(exponent) > BAND)
    return np.where(outside, np.ldexp(1.0, exponent.astype(int)), 1.0)


def condition(frame: ModelFrame, *, weights: bool = True) -> Conditioning:
    """The scales of a model frame (see the module docstring).

    Parameters
    ----------
    frame
        The model frame.
    weights
        False to leave the weights as they are (WeMix's rounded Laplace weights).
    """
    x_scale = _power_of_two(np.max(np.abs(frame.X), axis=0, initial=0.0))
    top = frame.levels[-1].weight if frame.levels else frame.weight1
    m = float(_power_of_two(np.mean(top))) if weights else 1.0
    z_scale = tuple(_power_of_two(np.max(np.abs(level.Z), axis=0, initial=0.0)) for level in frame.levels)
    structure = CovarianceStructure(frame.levels)
    entries = tuple(
        (
            tuple(e.row for e in structure.entries if e.level == k),
            tuple(e.col for e in structure.entries if e.level == k),
        )
        for k in range(len(frame.levels))
    )
    return Conditioning(x_scale=x_scale, weight_scale=m, z_scale=z_scale, theta_entries=entries)
