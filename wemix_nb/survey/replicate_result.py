"""The result of a fit with replicate-weight standard errors: :class:`ReplicateResult`.

Every estimate of the full-sample fit -- the fixed effects, the random-effect (co)variances, the
residual variance and the ICC -- is re-estimated with each replicate's weights, and its sampling
covariance is ``sum_r c_r (theta_r - theta)(theta_r - theta)'`` (see
:func:`~wemix_nb.survey.replicates.replicate_variance` for ``c_r``). The result's ``cov_mat``,
``SE``, ``var_theta`` and ``varDF``'s ``SEvcov`` are these replicate (co)variances, so summaries,
Wald tests and charts use them; the full-sample fit with its sandwich standard errors is kept as
``full_sample``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from wemix_nb.errors import ConvergenceWarning
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.variance import RESIDUAL
from wemix_nb.options import FitOptions
from wemix_nb.results.assemble import variance_views
from wemix_nb.results.result import MixResult
from wemix_nb.survey.replicates import replicate_variance

ICC = "ICC"


@dataclass(eq=False)
class ReplicateResult(MixResult):
    """A fit whose standard errors come from replicate weights.

    A :class:`~wemix_nb.MixResult` with the full-sample estimates and the replicate (co)variances
    (``cov_mat``, ``SE``, ``var_theta``, ``varDF``'s ``SEvcov``).

    Attributes
    ----------
    replicates
        The replicate estimates as a tidy DataFrame: ``replicate`` (1..R), ``term``, ``kind``
        (``"fixed"``, ``"variance"``, ``"residual"``, ``"ICC"``) and ``estimate``.
    full_sample
        The full-sample fit with its sandwich standard errors.
    ICC_SE
        Replicate standard error of the ICC (``None`` when the model has no ICC).
    replicate_covariance
        The replicate covariance of all the statistics (fixed effects, the variance parameters in
        theta's order, the residual variance, the ICC).
    replicate_converged
        Per replicate, whether its fit converged.
    """

    replicates: pd.DataFrame | None = field(default=None, repr=False)
    full_sample: MixResult | None = field(default=None, repr=False)
    ICC_SE: float | None = None
    replicate_covariance: pd.DataFrame | None = field(default=None, repr=False)
    replicate_converged: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_replicates(self) -> int:
        """The number of replicates ``R``."""
        return int(self.replicates["replicate"].max())

    @property
    def replicate_estimates(self) -> pd.DataFrame:
        """The replicate estimates as a wide table: one row per replicate, one column per term."""
        return self.replicates.pivot(index="replicate", columns="term", values="estimate")[
            list(dict.fromkeys(self.replicates["term"]))
        ]

    @property
    def sandwich_SE(self) -> pd.Series:
        """The full-sample fit's sandwich standard errors of the fixed effects."""
        return self.full_sample.SE

    def __repr__(self) -> str:
        return (
            f"<ReplicateResult {self.formula!r}: {self.options.replicates.describe()}; {self.nobs} rows, "
            f"{', '.join(f'{k} {v}' for k, v in self.ngroups.iloc[1:].items())} groups; lnl={self.lnl:.6g}>"
        )


# -------------------------------------------------------------------------------------------------
# the statistics of a fit


def statistic_names(fit: MixResult) -> tuple[list[str], list[str]]:
    """Names and kinds of the statistics re-estimated per replicate."""
    names = [str(n) for n in fit.coef.index]
    kinds = ["fixed"] * len(names)
    names += fit.variance.names
    kinds += ["variance"] * fit.variance.size
    if fit.family is None:
        names.append(RESIDUAL)
        kinds.append("residual")
    if fit.ICC is not None:
        names.append(ICC)
        kinds.append(ICC)
    return names, kinds


def fit_statistics(fit: MixResult) -> np.ndarray:
    """The full-sample values of :func:`statistic_names`."""
    values = [fit.coef.to_numpy(dtype=float), fit.variance.estimates.to_numpy(dtype=float)]
    if fit.family is None:
        values.append([fit.variance.residual])
    if fit.ICC is not None:
        values.append([fit.ICC])
    return np.concatenate(values)


def refit_statistics(
    structure: CovarianceStructure,
    beta: np.ndarray,
    theta: np.ndarray,
    sigma2: float | None,
    latent: float | None,
) -> np.ndarray:
    """The statistics of a refit: beta, the free entries of each ``Sigma_l`` in theta's order, the
    residual variance (linear models, ``sigma2``) and the ICC (``latent``: the latent residual
    variance of a binomial GLMM; an ICC of a linear model uses ``sigma2``)."""
    covariances = structure.covariances(theta, 1.0 if sigma2 is None else sigma2)
    entries = [covariances[e.level][e.row, e.col] for e in structure.entries]
    random_total = sum(float(np.trace(c)) for c in covariances)
    values = [beta, entries]
    if sigma2 is not None:
        values.append([sigma2, random_total / (random_total + sigma2)])
    elif latent is not None:
        values.append([random_total / (random_total + latent)])
    return np.concatenate([np.asarray(v, dtype=float) for v in values])


def _variance(estimates: np.ndarray, center: np.ndarray, options: FitOptions) -> np.ndarray:
    spec = options.replicates
    return replicate_variance(
        estimates,
        center,
        spec.method,
        fay_k=spec.fay_k if spec.method == "fay" else None,
        scale=spec.scale,
        rscales=None if spec.rscales is None else np.asarray(spec.rscales),
        mse=spec.mse,
    )


def tidy_replicates(estimates: np.ndarray, names: list[str], kinds: list[str]) -> pd.DataFrame:
    """The long table of replicate estimates (``replicate``, ``term``, ``kind``, ``estimate``)."""
    R, S = estimates.shape
    return pd.DataFrame(
        {
            "replicate": np.repeat(np.arange(1, R + 1), S),
            "term": np.tile(names, R),
            "kind": np.tile(kinds, R),
            "estimate": estimates.reshape(-1),
        }
    )


def replicate_result(
    full: MixResult, estimates: np.ndarray, converged: np.ndarray, options: FitOptions, formula: str
) -> ReplicateResult:
    """Assemble a :class:`ReplicateResult` from the full-sample fit and the replicate estimates.

    Parameters
    ----------
    full
        The full-sample fit.
    estimates
        ``(R, S)`` the statistics of each replicate (:func:`refit_statistics`).
    converged
        ``(R,)`` whether each replicate's fit converged.
    options
        The options of the fit (with ``replicates``).
    formula
        The formula to report.
    """
    names, kinds = statistic_names(full)
    center = fit_statistics(full)
    V = _variance(estimates, center, options)
    se = np.sqrt(np.clip(np.diag(V), 0.0, None))
    p, k = len(full.coef), full.variance.size
    variance = full.variance.with_estimates(
        full.variance.estimates.to_numpy(dtype=float),
        se[p : p + k],
        V[p : p + k, p : p + k],
        residual=full.variance.residual,
        residual_se=float(se[p + k]) if full.family is None else float("nan"),
    )
    coef_names = list(full.coef.index)
    not_converged = np.flatnonzero(~np.asarray(converged, dtype=bool)) + 1
    message = f"{full.message}; {options.replicates.describe()}"
    if not_converged.size:
        listed = ", ".join(map(str, not_converged[:10])) + (" ..." if not_converged.size > 10 else "")
        warnings.warn(
            f"The fits of {not_converged.size} replicate(s) did not converge ({listed}); their "
            "estimates enter the replicate variance as they are.",
            ConvergenceWarning,
            stacklevel=4,
        )
        message += f"; replicates not converged: {listed}"
    base = {f.name: getattr(full, f.name) for f in fields(MixResult)}
    base.update(
        formula=formula,
        SE=pd.Series(se[:p], index=full.coef.index, name="SE"),
        cov_mat=pd.DataFrame(V[:p, :p], index=coef_names, columns=coef_names),
        options=options,
        message=message,
        **variance_views(variance),
    )
    return ReplicateResult(
        **base,
        replicates=tidy_replicates(estimates, names, kinds),
        full_sample=full,
        ICC_SE=float(se[-1]) if full.ICC is not None else None,
        replicate_covariance=pd.DataFrame(V, index=names, columns=names),
        replicate_converged=np.asarray(converged, dtype=bool),
    )
