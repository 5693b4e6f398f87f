"""Residuals of a fit, conditional on the random effects' modes: response, Pearson, deviance and
working residuals, as R's ``residuals.glm`` and WeMix's ``residuals`` define them (without prior
weights: survey weights are not precision weights)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["RESIDUAL_TYPES", "residuals"]

#: the kinds of residual :func:`residuals` computes
RESIDUAL_TYPES = ("response", "pearson", "deviance", "working")


def residuals(result: MixResult, type: str = "response") -> pd.Series:
    """Residuals of the fitting rows; see :meth:`MixResult.residuals <wemix_nb.MixResult.residuals>`.

    For a Dask fit (:func:`~wemix_nb.mix_dask`, whose ``resid`` and ``fitted`` are Dask Series) a
    Dask Series, computed partition by partition.
    """
    if type not in RESIDUAL_TYPES:
        raise ArgumentError(f"type must be one of {', '.join(map(repr, RESIDUAL_TYPES))}; got {type!r}.")
    name = f"{type}_resid"
    # a proportion of n trials: the trials are R's prior (precision) weights
    trials = result.trials if type in ("pearson", "deviance") else None
    if not isinstance(result.resid, pd.Series):  # a Dask fit: the rows stay in the partitions
        return result.resid.map_partitions(
            _residual_series,
            result.fitted,
            result.linear_predictor,
            result.family,
            result.sigma,
            type,
            trials,
            meta=pd.Series(dtype=float, name=name),
            align_dataframes=False,
        )
    return _residual_series(
        result.resid, result.fitted, result.linear_predictor, result.family, result.sigma, type, trials
    )


def _residual_series(
    resid: pd.Series, fitted: pd.Series, linear_predictor, family, sigma, type: str, trials=None
) -> pd.Series:
    """The residuals of rows with response residuals ``resid`` (``y - mu``, exactly as stored),
    fitted values ``fitted`` and, for GLMMs, the linear predictor (else the link of ``mu``);
    multiplied by the square roots of ``trials`` if given."""
    response = resid.to_numpy(dtype=float)
    name = f"{type}_resid"
    if family is None:
        values = response / sigma if type == "pearson" else response
        return pd.Series(values, index=resid.index, name=name)
    mu = fitted.to_numpy(dtype=float)
    if type == "response":
        values = response
    elif type == "pearson":
        values = response / np.sqrt(family.variance(mu))
    elif type == "working":
        eta = family.linkfun(mu) if linear_predictor is None else linear_predictor.to_numpy(dtype=float)
        values = response / family.mu_eta(eta)
    else:
        y = mu + response
        values = np.sign(response) * np.sqrt(family.unit_deviance(y, mu))
    if trials is not None:
        values = values * np.sqrt(trials.to_numpy(dtype=float))
    return pd.Series(values, index=resid.index, name=name)
