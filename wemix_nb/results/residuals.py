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
    """Residuals of the fitting rows; see :meth:`MixResult.residuals <wemix_nb.MixResult.residuals>`."""
    if type not in RESIDUAL_TYPES:
        raise ArgumentError(f"type must be one of {', '.join(map(repr, RESIDUAL_TYPES))}; got {type!r}.")
    response = result.resid.to_numpy(dtype=float)  # y - mu, exactly as stored
    if result.family is None:
        values = response / result.sigma if type == "pearson" else response
        return pd.Series(values, index=result.resid.index, name=f"{type}_resid")
    family = result.family
    mu = result.fitted.to_numpy(dtype=float)
    if type == "response":
        values = response
    elif type == "pearson":
        values = response / np.sqrt(family.variance(mu))
    elif type == "working":
        eta = _linear_predictor(result, mu)
        values = response / family.mu_eta(eta)
    else:
        y = mu + response
        values = np.sign(response) * np.sqrt(family.unit_deviance(y, mu))
    trials = None if result.frame is None else result.frame.trials
    if trials is not None and type in ("pearson", "deviance"):
        # a proportion of n trials: the trials are R's prior (precision) weights
        values = values * np.sqrt(trials)
    return pd.Series(values, index=result.resid.index, name=f"{type}_resid")


def _linear_predictor(result: MixResult, mu: np.ndarray) -> np.ndarray:
    """``eta`` at the modes: the stored one, else the link of ``mu``."""
    if result.linear_predictor is not None:
        return result.linear_predictor.to_numpy(dtype=float)
    return result.family.linkfun(mu)
