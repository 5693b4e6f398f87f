"""What the estimators leave besides the estimates, kept on a result (``MixResult.details``), and
the deprecated string-keyed view of it (``MixResult.extra``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.estimation.glmm import GlmmFit
    from wemix_nb.estimation.linear import LinearProblem, LinearSolution

__all__ = ["GlmmDetails", "LegacyExtra", "LinearDetails"]


@dataclass(frozen=True, eq=False)
class LinearDetails:
    """What the linear estimator leaves besides the estimates.

    Attributes
    ----------
    problem
        The :class:`~wemix_nb.estimation.linear.LinearProblem` of the model: its cross-products,
        covariance structure and likelihood (e.g. to profile the likelihood in theta). When the
        estimator was given columns or weights rescaled by :mod:`wemix_nb.results.conditioning`,
        this is the model's own problem, unless its cross-products are beyond floating-point
        range (then the rescaled one, ``problem.frame``).
    solution
        The :class:`~wemix_nb.estimation.linear.LinearSolution` at the estimate, in the model's
        own units.
    """

    problem: LinearProblem
    solution: LinearSolution

    def legacy_extra(self) -> dict[str, Any]:
        """The same objects under the keys of the former ``MixResult.extra``."""
        return {"problem": self.problem, "solution": self.solution}


@dataclass(frozen=True, eq=False)
class GlmmDetails:
    """What the GLMM estimator leaves besides the estimates.

    Attributes
    ----------
    fit
        The raw :class:`~wemix_nb.estimation.glmm.GlmmFit`.
    vcov_full
        The joint sandwich covariance of ``(beta, variance parameters)``, labelled by coefficient
        and parameter names; the variance parameters come in the estimator's order (per level the
        variances, then the covariances). Its blocks are ``cov_mat`` and ``var_theta``.
    gradient_norm
        Largest absolute gradient of the log-likelihood at the estimate.
    """

    fit: GlmmFit
    vcov_full: pd.DataFrame
    gradient_norm: float

    @property
    def var_params(self) -> list[str]:
        """Names of the variance parameters, in ``vcov_full``'s order."""
        return [str(n) for n in self.vcov_full.index[len(self.fit.beta) :]]

    def legacy_extra(self) -> dict[str, Any]:
        """The same objects under the keys of the former ``MixResult.extra``."""
        return {
            "glmm_fit": self.fit,
            "vcov_full": self.vcov_full,
            "var_param_names": self.var_params,
            "gradient_norm": self.gradient_norm,
        }


class LegacyExtra(dict):
    """``MixResult.extra`` as it was: estimator internals by string key. Deprecated: reading a key
    warns and names the typed attribute to use instead."""

    _USE = {
        "problem": "details.problem",
        "solution": "details.solution",
        "glmm_fit": "details.fit",
        "vcov_full": "details.vcov_full",
        "var_param_names": "details.var_params",
        "gradient_norm": "details.gradient_norm",
    }

    def __getitem__(self, key: str) -> Any:
        use = self._USE.get(key)
        if use is not None:
            warnings.warn(
                f"result.extra[{key!r}] is deprecated; use result.{use}.", FutureWarning, stacklevel=2
            )
        return super().__getitem__(key)
