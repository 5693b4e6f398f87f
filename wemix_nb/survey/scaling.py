"""Scaling of the lower-level survey weights within their clusters.

With informative designs the pseudo-ML estimates of the variance components depend on how the
level-1 weights are scaled inside each cluster (Pfeffermann et al. 1998; Asparouhov 2006; Carle
2009). Two scalings are standard; both multiply the *conditional* level-1 weights ``w_{i|j}`` of
cluster ``j`` (``n_j`` rows) by one factor per cluster:

``"cluster"`` (Pfeffermann's method A, "size")
    ``w*_{i|j} = w_{i|j} * n_j / sum_i w_{i|j}`` -- the scaled weights sum to ``n_j``.
``"effective"`` (method B)
    ``w*_{i|j} = w_{i|j} * sum_i w_{i|j} / sum_i w_{i|j}^2`` -- the scaled weights sum to the
    cluster's effective sample size ``(sum_i w_{i|j})^2 / sum_i w_{i|j}^2``.

``"none"`` leaves the weights as given (WeMix's behaviour). In models with more than two levels,
every level below the top is scaled the same way within its parent groups (the conditional
weights of the level-2 groups of a level-3 group sum to their number, etc.); the top-level weights
are never changed. Unconditional weights are converted to conditional ones, scaled, and converted
back, so the result is in the convention the weights were given in.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, WeightError
from wemix_nb.model.frame import group_labels

METHODS = ("none", "cluster", "effective")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ArgumentError(f"scale_weights must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    return method


def _factor(values: np.ndarray, parent: np.ndarray, n_parents: int, method: str) -> np.ndarray:
    """Per-parent multiplier of the children's conditional weights ``values``."""
    s1 = np.bincount(parent, values, minlength=n_parents)
    if method == "cluster":
        count = np.bincount(parent, minlength=n_parents)
        return count / s1
    s2 = np.bincount(parent, values**2, minlength=n_parents)
    return s1 / s2


def scale_weights(
    data: pd.DataFrame,
    weights: Sequence[str],
    groups: str | Sequence[str],
    method: str = "cluster",
    cweights: bool = False,
) -> pd.DataFrame:
    """Rescale survey weights within clusters (Pfeffermann et al. 1998; Asparouhov 2006).

    For cluster ``j`` with ``n_j`` rows and conditional level-1 weights ``w_{i|j}``:

    * ``method="cluster"``: ``w*_{i|j} = w_{i|j} n_j / sum_i w_{i|j}``, so ``sum_i w*_{i|j} = n_j``;
    * ``method="effective"``: ``w*_{i|j} = w_{i|j} sum_i w_{i|j} / sum_i w_{i|j}^2``, so
      ``sum_i w*_{i|j} = (sum_i w_{i|j})^2 / sum_i w_{i|j}^2`` (the effective cluster size);
    * ``method="none"``: unchanged.

    With unconditional weights (``cweights=False``, ``w_ij = w_{i|j} w_j``) the conditional
    weights ``w_ij / w_j`` are scaled and multiplied back by ``w_j``; the same factor per
    cluster therefore applies to ``w_ij``. With more than two levels (``groups`` lists several
    factors), each level below the top is scaled within its parent groups in the same way.

    Parameters
    ----------
    data
        The data (not modified).
    weights
        Weight column names, level 1 (rows) first, then one per grouping level up to the top.
    groups
        Grouping factor(s), level 2 first (``"school"``, or ``["school:class", "school"]``);
        ``len(groups) == len(weights) - 1``.
    method
        ``"cluster"``, ``"effective"`` or ``"none"``.
    cweights
        True if the weight columns are conditional weights.

    Returns
    -------
    pandas.DataFrame
        The rescaled weight columns (same names, same index as ``data``). Rows with a missing or
        non-positive weight or a missing group label are returned unchanged (a model fit drops
        them).

    Examples
    --------
    >>> scaled = scale_weights(data, ["w_fstuwt", "w_fschwt"], "schoolid", "cluster")
    >>> data[["w_fstuwt", "w_fschwt"]] = scaled
    """
    _check_method(method)
    if isinstance(weights, str):
        raise ArgumentError("weights must be a list of column names, level 1 first.")
    weights = list(weights)
    groups = [groups] if isinstance(groups, str) else list(groups)
    if len(weights) != len(groups) + 1:
        raise WeightError(
            f"{len(groups)} grouping factor(s) need {len(groups) + 1} weight columns (level 1 first); "
            f"got {len(weights)}: {weights}."
        )
    needed = [*weights, *{c.strip() for g in groups for c in g.split(":")}]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise ColumnNotFoundError(f"Column(s) {', '.join(map(repr, missing))} are not in the data.")
    out = data[weights].astype(float)
    if method == "none":
        return out
    W = out.to_numpy()
    labels = [group_labels(data, g) for g in groups]
    valid = np.isfinite(W).all(axis=1) & (W > 0).all(axis=1)
    for lab in labels:
        valid &= lab.notna().to_numpy()
    if not valid.any():
        return out
    W = W[valid]
    index = [pd.factorize(lab[valid], sort=False)[0] for lab in labels]
    L = len(weights)
    # conditional weights, row-wise
    C = W.copy()
    if not cweights:
        C[:, :-1] = W[:, :-1] / W[:, 1:]
    for k in range(L - 1):
        parent = index[k]
        n_parents = int(parent.max()) + 1
        if k == 0:
            values, parent_of_unit = C[:, 0], parent
        else:
            child = index[k - 1]
            _, first = np.unique(child, return_index=True)
            values, parent_of_unit = C[first, k], parent[first]
            if pd.Series(parent).groupby(child).nunique().max() > 1:
                raise WeightError(f"Groups of {groups[k - 1]!r} are not nested in groups of {groups[k]!r}.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            factor = _factor(values, parent_of_unit, n_parents, method)
        C[:, k] = C[:, k] * factor[parent]
    if cweights:
        scaled = C
    else:
        scaled = C.copy()
        for k in range(L - 2, -1, -1):
            scaled[:, k] = C[:, k] * scaled[:, k + 1]
    values = out.to_numpy().copy()
    values[valid] = scaled
    return pd.DataFrame(values, index=data.index, columns=weights)


def scaled_data(
    formula: str,
    data: pd.DataFrame,
    weights: Sequence[str] | None,
    method: str,
    *,
    cweights: bool = False,
    **frame_options,
) -> pd.DataFrame:
    """``data`` with its weight columns rescaled on the rows a fit of ``formula`` uses.

    The model frame is built once (silently) to learn which rows the fit keeps and its grouping
    factors; the weights of those rows are rescaled with :func:`scale_weights` so that the
    cluster sizes ``n_j`` count the rows actually used.
    """
    _check_method(method)
    if method == "none" or weights is None:
        return data
    from wemix_nb.model.frame import build_model_frame

    positional = data.reset_index(drop=True)  # the data's own index may have duplicate labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = build_model_frame(formula, positional, weights, cweights=cweights, **frame_options)
    rows = frame.row_index.to_numpy()
    used = positional.iloc[rows]
    scaled = scale_weights(used, list(weights), [lv.name for lv in frame.levels], method, cweights=cweights)
    out = data.copy()
    for column in weights:
        values = out[column].to_numpy(dtype=float).copy()
        values[rows] = scaled[column].to_numpy()
        out[column] = values
    return out
