"""Scaling of the lower-level survey weights within their clusters, on a DataFrame.

With informative designs the pseudo-ML estimates of the variance components depend on how the
level-1 weights are scaled inside each cluster (Pfeffermann et al. 1998; Asparouhov 2006; Carle
2009). The rules ("cluster", "effective") live in :mod:`wemix_nb.model.weights`; a fit applies
them itself with ``mix(..., scale_weights=...)``, on the rows it keeps. :func:`scale_weights`
returns the same scaled weights as data columns, to inspect them or to fit with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, WeightError
from wemix_nb.model import weights as weight_rules
from wemix_nb.model.levels import LevelIndex, group_columns_of, index_levels, parent_indices, unit_parents
from wemix_nb.options import check_column_names, check_flag


def _check_arguments(data: pd.DataFrame, weights: Sequence[str], groups: list[str]) -> list[str]:
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    weights = list(check_column_names(weights, "weights", "['w_student', 'w_school'] (level 1 first)"))
    if len(weights) != len(groups) + 1:
        raise WeightError(
            f"{len(groups)} grouping factor(s) need {len(groups) + 1} weight columns (level 1 first); "
            f"got {len(weights)}: {weights}."
        )
    needed = [*weights, *{c for g in groups for c in group_columns_of(g)}]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise ColumnNotFoundError(f"Column(s) {', '.join(map(repr, missing))} are not in the data.")
    weight_rules.check_weight_dtypes(data, weights)
    return weights


def _scaled_rows(
    W: np.ndarray, weights: list[str], levels: list[LevelIndex], method: str, cweights: bool
) -> np.ndarray:
    """Scaled weights of rows that all have positive weights and group labels (columns of ``W``)."""
    given = [W[:, 0]] + [
        weight_rules.group_weight(
            W[:, k], level.index, level.labels, level=k + 1, column=weights[k], factor=level.factor
        )
        for k, level in enumerate(levels, start=1)
    ]
    up = unit_parents(levels, parent_indices(levels))
    unconditional, conditional = weight_rules.level_weights(given, up, conditional=cweights, scaling=method)
    scaled = conditional if cweights else unconditional
    out = W.copy()  # the top level keeps its values
    out[:, 0] = scaled[0]
    for k, level in enumerate(levels[:-1], start=1):
        out[:, k] = scaled[k][level.index]
    return out


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
    factors), each level below the top is scaled within its parent groups in the same way; the
    top-level weights are never changed. ``mix(..., scale_weights=method)`` gives the same fit
    as ``mix`` on the data with these columns, when all rows are used.

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
        zero weight or a missing group label are returned unchanged and do not count in the
        cluster sizes (a model fit drops them).

    Raises
    ------
    ArgumentError
        For an unknown ``method`` or ``weights`` given as one string.
    ColumnNotFoundError
        For a weight or group column not in ``data``.
    WeightError
        For a weight column that is not numeric, has negative or infinite values, or (above level
        1) varies within a group; or a number of weight columns that does not match ``groups``.
    NestingError
        If the groups of a level lie in several groups of the level above.

    Examples
    --------
    >>> scaled = scale_weights(data, ["w_fstuwt", "w_fschwt"], "schoolid", "cluster")
    >>> data[["w_fstuwt", "w_fschwt"]] = scaled
    """
    weight_rules.check_scaling_method(method)
    check_flag(cweights, "cweights")
    groups = [groups] if isinstance(groups, str) else list(check_column_names(groups, "groups", "'school'"))
    weights = _check_arguments(data, weights, groups)
    out = data[weights].astype(float)
    W = out.to_numpy()
    weight_rules.check_weight_values(W, weights, data.index)
    if method == "none":
        return out
    valid = (W > 0).all(axis=1)  # NaN compares False: missing weights are left out too
    for group in groups:
        valid &= data[group_columns_of(group)].notna().all(axis=1).to_numpy()
    if not valid.any():
        return out
    levels = index_levels(data.loc[valid], groups, level_order=groups)
    values = W.copy()
    values[valid] = _scaled_rows(W[valid], weights, levels, method, bool(cweights))
    return pd.DataFrame(values, index=data.index, columns=weights)
