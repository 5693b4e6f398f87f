"""A model frame with other weights: the same rows and groups, each level's conditional weights
scaled within their parent groups (for the random-effect predictions of
:mod:`wemix_nb.results.ranef`)."""

from __future__ import annotations

from dataclasses import replace

from wemix_nb.model import weights as weight_rules
from wemix_nb.model.frame import ModelFrame

__all__ = ["with_scaled_weights"]


def with_scaled_weights(frame: ModelFrame, method: str = "cluster") -> ModelFrame:
    """The frame with the conditional weights of every level below the top scaled within their
    parent groups, as ``build_model_frame(..., scale_weights=method)`` scales them.

    With ``"cluster"`` each group's units' conditional weights are rescaled to sum to its number of
    units (Pfeffermann et al. 1998; Stata's ``pwscale(size)``). The top level's weights do not
    change. A frame that holds no rows (a Dask fit's) keeps its (empty) row weights; its groups'
    weights are scaled.

    Parameters
    ----------
    frame
        A model frame.
    method
        One of :data:`~wemix_nb.model.weights.SCALING_METHODS`.

    Returns
    -------
    ModelFrame
        A copy whose ``weight_scaling`` is ``method``.
    """
    levels = frame.levels
    with_rows = frame.n > 0
    conditional = [lv.cond_weight for lv in levels]
    up = [lv.parent_index for lv in levels[:-1]]
    if with_rows:
        conditional = [frame.cond_weight1, *conditional]
        up = [levels[0].group_index, *up]
    scaled = weight_rules.scale_conditional(conditional, up, method)
    unconditional = weight_rules.to_unconditional(scaled, up)
    offset = 1 if with_rows else 0
    new_levels = [
        replace(lv, weight=unconditional[k + offset], cond_weight=scaled[k + offset])
        for k, lv in enumerate(levels)
    ]
    rows = {"weight1": unconditional[0], "cond_weight1": scaled[0]} if with_rows else {}
    return replace(frame, levels=new_levels, weight_scaling=method, **rows)
