"""Random-effect predictions that reflect what was sampled.

With survey weights the pseudo-likelihood treats each group's units as if their conditional
weights counted observations: a school of 34 sampled students whose conditional weights sum to
427 gets the conditional SD of a school of 427 measured students, and its caterpillar bar is
about ``sqrt(427 / 34)`` times too narrow. :func:`random_effect_predictions` computes the
conditional modes and SDs at the fitted parameters with each group's conditional weights rescaled
to sum to its number of sampled units (Pfeffermann et al. 1998, "method A"; Stata's
``pwscale(size)``), at every level below the top within its parent. Nothing is re-estimated: only
the random-effects step is re-run. A fit that already used ``scale_weights=`` keeps its own
modes, and ``raw=True`` returns the fit's modes as they are (WeMix's ``ranef``).

In simulated informative two-stage samples (175 PPS-sampled groups of 15-40 units, informative
unit weights) the rescaled "95%" intervals cover about 92% of the true group effects, the raw ones
about 34% (``benchmarks/ranef_coverage.py``; 93% for a probit GLMM). The rescaling makes each
group's weights count as many observations as were sampled; it does not account for the variation
of the weights within a group (Kish's design effect), so with strongly informative unit weights
(design effects near 2) the intervals are still somewhat narrow (about 78% coverage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wemix_nb.estimation.glmm.modes import modes_at
from wemix_nb.estimation.linear.modes import random_effects_at
from wemix_nb.model.rescaled import with_scaled_weights

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["RandomEffectPredictions", "random_effect_predictions"]

#: how the weights were treated, for subtitles and notes
RESCALED = "weights rescaled within each group to its number of sampled units"
RAW = "pseudo-likelihood: weights as fitted, not rescaled"
UNWEIGHTED = "unweighted"


@dataclass(frozen=True)
class RandomEffectPredictions:
    """Conditional modes of the random effects and their conditional SDs.

    Attributes
    ----------
    modes
        Per grouping factor, a DataFrame indexed by group label, one column per term.
    sd
        The conditional standard deviations, same layout.
    rescaled
        True if they were computed here with each group's weights rescaled to its sample size
        (False: the fit's own modes).
    weights
        How the weights were treated, in words (for subtitles and notes).
    """

    modes: dict[str, pd.DataFrame]
    sd: dict[str, pd.DataFrame]
    rescaled: bool
    weights: str


def _tables(result: MixResult, b: list[np.ndarray], sd: list[np.ndarray]):
    modes, sds = {}, {}
    for (factor, own), values, spread in zip(result.ranef.items(), b, sd, strict=True):
        modes[factor] = pd.DataFrame(values, index=own.index, columns=own.columns)
        sds[factor] = pd.DataFrame(spread, index=own.index, columns=own.columns)
    return modes, sds


def _rescaled(result: MixResult) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Modes and SDs at the fitted parameters with cluster-scaled weights."""
    frame = with_scaled_weights(result.frame, "cluster")
    details = result.details
    if result.family is None:
        sol = details.solution
        b, b_cov = random_effects_at(details.problem, sol.theta, sol.beta, sol.sigma, frame)
        sd = [np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None)) for cov in b_cov]
        return b, sd
    modes = modes_at(frame, result.family, details.fit.beta, details.fit.theta)
    return [m.b for m in modes], [m.b_sd for m in modes]


def _fit_weights(result: MixResult) -> str:
    frame = result.frame
    if frame is None or not frame.weight_columns:
        return UNWEIGHTED
    if frame.weight_scaling != "none":
        return f"weights as fitted (scale_weights={frame.weight_scaling!r})"
    return RAW


def _why_not_rescaled(result: MixResult) -> str | None:
    """Why the random-effects step cannot be re-run for this result (``None``: it can)."""
    details = result.details
    if details is None or result.frame is None:
        return "the result holds no estimator state"
    if result.family is not None and result.frame.n == 0:  # GLMM modes are solved on the rows
        return "the rows of a GLMM fitted on Dask partitions stayed on the workers"
    if result.family is None and details.problem.frame is not result.frame:
        return "the model's own cross-products are beyond floating-point range"
    return None


def random_effect_predictions(result: MixResult, raw: bool = False) -> RandomEffectPredictions:
    """The conditional modes and SDs that ``random_effects()`` and ``plot_ranef()`` show.

    Parameters
    ----------
    result
        A fitted model.
    raw
        Return the fit's own modes (``result.ranef``, ``result.ranef_sd``: the pseudo-likelihood
        ones, WeMix's) instead of rescaling.

    Returns
    -------
    RandomEffectPredictions
        Rescaled (see the module documentation) when the fit used unscaled survey weights and
        ``raw`` is False; otherwise the fit's own.
    """
    cache = result.__dict__.setdefault("_predictions", {})  # computed once per result and kind
    if raw not in cache:
        own = _fit_weights(result)
        why = _why_not_rescaled(result) if own == RAW and not raw else None
        if raw or own != RAW or why is not None:
            weights = own if why is None else f"{own} (not rescaled: {why})"
            cache[raw] = RandomEffectPredictions(
                dict(result.ranef), dict(result.ranef_sd or {}), False, weights
            )
        else:
            cache[raw] = RandomEffectPredictions(*_tables(result, *_rescaled(result)), True, RESCALED)
    return cache[raw]
