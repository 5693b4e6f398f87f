"""Residuals and fitted values of a Dask fit, as Dask Series computed from the partitions.

The rows never come to the driver: every partition rebuilds its model frame and evaluates
``eta = X beta + sum_l Z_l b_l`` with the fitted fixed effects and the random effects of its
groups (looked up by label), as the pandas fit computes its ``fitted`` (linear models) or
``linear_predictor`` (GLMMs, with ``fitted = mu`` the inverse link of ``eta``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from wemix_nb.distributed.dask_partitions import FrameSpec
from wemix_nb.results.result import MixResult

_COLUMNS = ("resid", "fitted", "linear_predictor", "trials")


def _meta(index=None) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=float) for name in _COLUMNS}, index=index)


def partition_rows(pdf: pd.DataFrame, spec: FrameSpec, beta: np.ndarray, ranef: list, family) -> pd.DataFrame:
    """``resid``, ``fitted``, ``linear_predictor`` and ``trials`` (1 without a ``cbind()``
    response) of one partition's rows (those the fit used).

    ``ranef``: per level ``(labels, b)``, the fit's group labels and ``(G, q)`` random effects.
    """
    frame, _ = spec.build(pdf)
    if frame is None:
        return _meta(pdf.index[:0])
    eta = frame.X @ beta
    if frame.offset is not None:  # part of the linear predictor, as in the pandas fit
        eta = eta + frame.offset
    for level, (labels, b) in zip(frame.levels, ranef, strict=True):
        rows = b[pd.Index(labels).get_indexer(level.labels)][level.group_index]
        eta += np.einsum("nq,nq->n", level.Z, rows)
    fitted = eta if family is None else family.linkinv(eta)
    trials = np.ones(frame.n) if frame.trials is None else frame.trials
    return pd.DataFrame(
        {"resid": frame.y - fitted, "fitted": fitted, "linear_predictor": eta, "trials": trials},
        index=frame.row_index,
    )


def with_row_series(result: MixResult, ddf, spec: FrameSpec) -> MixResult:
    """``result`` with ``resid``, ``fitted`` (and, for GLMMs, ``linear_predictor``, and for a
    ``cbind()`` response ``trials``) as lazy Dask Series over ``ddf``'s partitions."""
    ranef = [
        (result.ranef[level.name].index, result.ranef[level.name].to_numpy()) for level in result.frame.levels
    ]
    rows = ddf.map_partitions(
        partition_rows, spec, result.coef.to_numpy(), ranef, result.family, meta=_meta(ddf._meta.index[:0])
    )
    return replace(
        result,
        resid=rows["resid"],
        fitted=rows["fitted"],
        linear_predictor=None if result.family is None else rows["linear_predictor"],
        trials=None if result.frame.trials is None else rows["trials"],
    )
