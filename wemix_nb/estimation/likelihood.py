"""A model's weighted log pseudo-likelihood as a function of its parameters (WeMix's ``run=FALSE``).

:class:`LogLikelihood` wraps the estimators' own likelihoods -- the linear
:class:`~wemix_nb.estimation.linear.LinearProblem` and the GLMM quadrature model of
:func:`~wemix_nb.estimation.glmm.glmm_likelihood` -- so the function evaluated here is the one the
fit maximises, and at the estimate it returns the fit's ``lnl``.

Parameters, in this order:

* linear models: ``(beta, theta, sigma)``, the full likelihood; ``theta`` are the entries of the
  factors ``Lambda_l`` *relative to sigma* (lme4's convention, ``Sigma_l = sigma^2 Lambda_l
  Lambda_l'``, the fit's ``theta``). With ``profiled=True`` the parameters are ``theta`` alone and
  beta and sigma take their maximising values given theta (the function the linear optimiser
  minimises, and WeMix's linear ``lnlf``).
* GLMMs: ``(beta, theta)`` with ``theta`` the absolute factors (``Sigma_l = Lambda_l Lambda_l'``,
  the fit's ``theta``). WeMix's GLMM ``lnlf`` takes ``(beta, vars)`` instead; the factors need no
  positive-definiteness constraint, which is what profiling and teaching want.

``theta`` is in lme4's order (levels from 2 up, inside a level the lower triangle column by
column) and named like the fit's ``theta``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm import glmm_likelihood
from wemix_nb.estimation.linear import LinearProblem
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame

__all__ = ["SIGMA", "LogLikelihood", "log_likelihood"]

#: the name of a linear model's residual standard deviation among the parameters
SIGMA = "sigma"
LINEAR, PROFILED = "linear", "linear, profiled"


class LogLikelihood:
    """A model's weighted log pseudo-likelihood, callable on a parameter vector.

    Made by :func:`wemix_nb.likelihood`. ``loglik(params)`` returns the log pseudo-likelihood;
    ``loglik.by_group(params)`` its top-level groups' contributions (which sum to it).

    Attributes
    ----------
    names
        The parameters' names, in the order the function takes them: the fixed effects' names,
        the names of ``theta`` (as in a fit's ``theta``) and, for a full linear likelihood,
        ``"sigma"``.
    start
        A start vector: the fixed effects of a weighted (G)LM, identity factors (``theta`` 1 on
        the diagonal, 0 below) and, for a linear model, that regression's residual SD.
    kind
        ``"linear"``, ``"linear, profiled"``, or the GLMM family and link
        (``"binomial (logit), nquad 13"``).
    family
        The GLMM's :class:`~wemix_nb.estimation.families.Family` (``None`` for a linear model).

    Notes
    -----
    Evaluations outside the parameter space (``sigma <= 0``) return ``-inf``. A GLMM evaluation
    solves the conditional modes, warm-started at the previous evaluation's (the value does not
    depend on the start beyond the modes' convergence tolerance).
    """

    def __init__(
        self,
        names: Sequence[str],
        start: np.ndarray,
        kind: str,
        value,
        by_group,
        family: Family | None = None,
    ):
        self.family = family
        self.names = tuple(str(n) for n in names)
        self.start = np.asarray(start, dtype=float)
        self.start.setflags(write=False)
        self.kind = kind
        self._value = value
        self._by_group = by_group

    def __repr__(self) -> str:
        return f"<LogLikelihood {self.kind}: {len(self.names)} parameters {list(self.names)}>"

    def __len__(self) -> int:
        return len(self.names)

    def __call__(self, params: Sequence[float] | Mapping[str, float] | pd.Series) -> float:
        """The log pseudo-likelihood at ``params``.

        Parameters
        ----------
        params
            The parameters in :attr:`names`' order, or a mapping/Series keyed by those names.

        Returns
        -------
        float
            The weighted log pseudo-likelihood (``-inf`` outside the parameter space).

        Raises
        ------
        ArgumentError
            The wrong number of values, names that are not :attr:`names`, or a value that is not
            a finite real number (text, a complex number, NaN or infinity).
        """
        return float(self._value(self._vector(params)))

    def by_group(self, params: Sequence[float] | Mapping[str, float] | pd.Series) -> np.ndarray:
        """The top-level groups' contributions to the log pseudo-likelihood at ``params``.

        Parameters
        ----------
        params
            As for calling the function.

        Returns
        -------
        numpy.ndarray
            One value per top-level group, in the model frame's group order; they sum to the
            log pseudo-likelihood (to rounding).
        """
        return np.asarray(self._by_group(self._vector(params)), dtype=float)

    def params_of(self, fit: Any) -> pd.Series:
        """The parameters of a fit of this model, in this function's order.

        Parameters
        ----------
        fit
            A :class:`~wemix_nb.MixResult` of the same model (formula, data, options).

        Returns
        -------
        pandas.Series
            Indexed by :attr:`names`: ``loglik(loglik.params_of(fit))`` is ``fit.lnl``.

        Raises
        ------
        ArgumentError
            The fit's parameters or family are not this likelihood's.
        """
        coef, theta = list(fit.coef.items()), list(fit.theta.items())
        if self.kind == PROFILED:
            pairs = theta
        elif self.kind == LINEAR:
            pairs = [*coef, *theta, (SIGMA, fit.sigma)]
        else:
            pairs = [*coef, *theta]
        names = tuple(str(name) for name, _ in pairs)
        if names != self.names or fit.family != self.family:
            raise ArgumentError(
                f"The fit's parameters {list(names)} ({fit.family or 'linear'}) are not this "
                f"likelihood's {list(self.names)} ({self.family or 'linear'}): is it a fit of the same model?"
            )
        values = [float(value) for _, value in pairs]
        return pd.Series(values, index=list(self.names), name="params")

    def _vector(self, params) -> np.ndarray:
        if isinstance(params, pd.Series | Mapping):
            mapping = dict(params)
            missing = [n for n in self.names if n not in mapping]
            extra = [str(k) for k in mapping if k not in self.names]
            if missing or extra:
                raise ArgumentError(
                    f"params by name must hold exactly {list(self.names)}; missing {missing}, "
                    f"unknown {extra}."
                )
            params = [mapping[n] for n in self.names]
        values = np.asarray(params, dtype=object).ravel()
        if values.size != len(self.names):
            raise ArgumentError(
                f"params must hold {len(self.names)} values, in the order {list(self.names)}; "
                f"got {values.size}."
            )
        return np.array([_real(value, name) for value, name in zip(values, self.names, strict=True)])


def _real(value: Any, name: str) -> float:
    """``value`` as a finite float, or an :class:`ArgumentError` naming the parameter."""
    if isinstance(value, complex | np.complexfloating):
        problem = "a complex number"
    elif isinstance(value, str | bytes):
        problem = "text"
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            problem = f"of type {type(value).__name__}"
        else:
            if np.isfinite(number):
                return number
            problem = "not finite"
    raise ArgumentError(f"The parameter {name!r} must be a finite real number; got {value!r} ({problem}).")


def log_likelihood(
    frame: ModelFrame,
    family: Family | None = None,
    nquad: int = 13,
    laplace_rounding: bool = False,
    profiled: bool = False,
) -> LogLikelihood:
    """The :class:`LogLikelihood` of a model frame: linear (``family=None``) or a GLMM.

    Parameters
    ----------
    frame
        The model frame.
    family
        ``None`` for the linear model, else the GLMM's family.
    nquad, laplace_rounding
        GLMMs: the quadrature (as in the fit).
    profiled
        Linear models: a function of ``theta`` alone, beta and sigma profiled out.
    """
    if family is None:
        return _linear(frame, profiled)
    if profiled:
        raise ArgumentError(
            "profiled=True is for linear models (beta and sigma have closed forms given theta); a "
            "GLMM's likelihood is a function of (beta, theta)."
        )
    return _glmm(frame, family, nquad, laplace_rounding)


def _linear(frame: ModelFrame, profiled: bool) -> LogLikelihood:
    problem = LinearProblem(frame)
    structure = problem.structure
    p = problem.p
    theta_names = list(structure.names)

    def profiled_value(theta: np.ndarray) -> float:
        ev = problem.evaluate(theta)
        return problem.profiled_lnl(ev, problem.gls(ev)[2])

    def profiled_groups(theta: np.ndarray) -> np.ndarray:
        ev = problem.evaluate(theta)
        _, ext, sigma2 = problem.gls(ev)
        return problem.group_lnl(ev, ext, sigma2)[0]

    if profiled:
        return LogLikelihood(theta_names, structure.start(), PROFILED, profiled_value, profiled_groups)

    def full_groups(x: np.ndarray) -> np.ndarray:
        theta, sigma = x[p:-1], x[-1]
        if not sigma > 0:
            return np.full(problem.n_top, -np.inf)
        ext = np.append(x[:p] - problem.beta0, 1.0)
        return problem.group_lnl(problem.evaluate(theta), ext, sigma**2)[0]

    # start: the weighted least-squares fit the problem centres on, and its residual SD
    residual = frame.y_less_offset - frame.X @ problem.beta0
    sigma0 = float(np.sqrt(np.sum(frame.weight1 * residual**2) / frame.weight1.sum()))
    start = np.r_[problem.beta0, structure.start(), sigma0]
    names = [*frame.fixed_names, *theta_names, SIGMA]
    return LogLikelihood(names, start, LINEAR, lambda x: full_groups(x).sum(), full_groups)


def _glmm(frame: ModelFrame, family: Family, nquad: int, laplace_rounding: bool) -> LogLikelihood:
    model, start = glmm_likelihood(frame, family, nquad, laplace_rounding)
    p = len(frame.fixed_names)
    names = [*frame.fixed_names, *CovarianceStructure(frame.levels).names]
    kind = f"{_family_text(family)}, nquad {model.nquad}"

    # the model leaves out the terms free of parameters (see QuadratureModel.constant_by_group)
    constant = model.constant_by_group

    def value(x: np.ndarray) -> float:
        return model.evaluate(x[:p], x[p:])["value"] + float(np.sum(constant))

    def groups(x: np.ndarray) -> np.ndarray:
        return model.evaluate(x[:p], x[p:])["by_group"] + constant

    return LogLikelihood(names, start, kind, value, groups, family)


def _family_text(family: Family) -> str:
    """``"binomial (logit)"``."""
    return f"{family.name} ({family.link})"
