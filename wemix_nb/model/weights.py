"""The rules for survey weights, shared by the model frame, weight scaling and weight summaries.

Weights are held level by level: level 1 is the rows, level ``k >= 2`` the groups of the
``(k-1)``-th grouping factor (level 2 = the factor with the most groups). Functions that relate
levels take ``up``: ``up[k]`` maps each unit of level ``k + 1`` to its group one level higher
(``up[0]`` is the rows' level-2 group index, ``up[1]`` the level-2 groups' level-3 parents...).

Unconditional weights ``w`` are inverse overall selection probabilities; the conditional weight
of a unit is its weight given its parent was selected, ``w_{i|j} = w_ij / w_j``. The top level's
two weights coincide.

Scaling (Pfeffermann et al. 1998; Asparouhov 2006; Carle 2009) multiplies the conditional weights
of the units of each parent group by one factor per parent:

``"cluster"`` (Pfeffermann's method A, "size")
    ``w*_{i|j} = w_{i|j} n_j / sum_i w_{i|j}`` -- the scaled weights of group ``j`` (``n_j``
    units) sum to ``n_j``.
``"effective"`` (method B)
    ``w*_{i|j} = w_{i|j} sum_i w_{i|j} / sum_i w_{i|j}^2`` -- they sum to the effective sample
    size ``(sum_i w_{i|j})^2 / sum_i w_{i|j}^2``.
``"none"``
    The weights as given (WeMix's behaviour).

Every level below the top is scaled within its parent groups; the top-level weights never change.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, WeightError, WeightWarning, user_stacklevel

SCALING_METHODS = ("none", "cluster", "effective")

# A group weight is "constant" when its spread within the group is below this fraction of the
# group's own value: relative, so the verdict does not depend on the unit the weights are in.
CONSTANT_RTOL = 1e-8


def check_scaling_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`SCALING_METHODS`.

    Raises
    ------
    ArgumentError
        For any other value.
    """
    if method not in SCALING_METHODS:
        raise ArgumentError(
            f"scale_weights must be one of {', '.join(map(repr, SCALING_METHODS))}; got {method!r}."
        )
    return method


def check_weight_dtypes(data: pd.DataFrame, columns: Sequence[str]) -> None:
    """Refuse weight columns that are not real numbers (text, booleans, complex numbers, ...).

    Nullable and pyarrow numbers are numbers.

    Raises
    ------
    WeightError
        Naming the first such column and its dtype.
    """
    for column in columns:
        dtype = data[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise WeightError(f"Weight column {column!r} must be numeric, but has dtype {dtype}.")
        if pd.api.types.is_complex_dtype(dtype):
            raise WeightError(
                f"Weight column {column!r} holds complex numbers (dtype {dtype}); weights must be real."
            )


def check_weight_values(values: np.ndarray, columns: Sequence[str], rows: pd.Index) -> None:
    """Refuse infinite and negative weights; missing (NaN) and zero weights pass.

    Missing and zero weights mark rows to leave out; an infinite or negative weight is a data
    error.

    Parameters
    ----------
    values
        ``(n, len(columns))`` weights, one column per level, level 1 first.
    columns
        The weight column names, for the message.
    rows
        The ``n`` row labels, for the message.

    Raises
    ------
    WeightError
        Naming the column, its level and the first offending row.
    """
    for j, column in enumerate(columns):
        for bad, what in ((np.isinf(values[:, j]), "infinite"), (values[:, j] < 0, "negative")):
            if bad.any():
                row = rows[np.flatnonzero(bad)[0]]
                raise WeightError(
                    f"Weight column {column!r} (level {j + 1}) has {what} values (first at row {row!r})."
                )


def group_constant(values: np.ndarray, index: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group value of a row-wise weight, and which groups it varies in.

    The value of a group is its first row's. A group's weight varies when its rows differ from
    that value by more than :data:`CONSTANT_RTOL` times it, so ``values`` and ``c * values``
    (any ``c > 0``) get the same verdict.

    Parameters
    ----------
    values
        ``(n,)`` weights of the rows.
    index
        ``(n,)`` group of each row, in ``0..n_groups-1``.
    n_groups
        Number of groups.

    Returns
    -------
    first : numpy.ndarray
        ``(n_groups,)`` the first row's value in each group.
    varies : numpy.ndarray
        ``(n_groups,)`` boolean mask of the groups in which the weight is not constant.
    """
    first = np.zeros(n_groups)
    first[index[::-1]] = values[::-1]  # the first row of each group is assigned last, so it wins
    spread = np.zeros(n_groups)
    np.maximum.at(spread, index, np.abs(values - first[index]))
    return first, spread > CONSTANT_RTOL * np.abs(first)


def group_weight(
    values: np.ndarray, index: np.ndarray, labels: pd.Index, *, level: int, column: str, factor: str
) -> np.ndarray:
    """The weight of each group, from a row-wise column that must be constant within groups.

    Parameters
    ----------
    values
        ``(n,)`` the column's values on the rows.
    index
        ``(n,)`` group of each row, in ``0..len(labels)-1``.
    labels
        The group labels, in index order (for the message).
    level, column, factor
        The level number, weight column and grouping factor (for the message).

    Returns
    -------
    numpy.ndarray
        ``(len(labels),)`` the weight of each group.

    Raises
    ------
    WeightError
        If the column varies within a group (see :func:`group_constant`).
    """
    per_group, varies = group_constant(values, index, len(labels))
    if varies.any():
        bad = labels[np.flatnonzero(varies)[:5]]
        raise WeightError(
            f"Level-{level} weight column {column!r} varies within {int(varies.sum())} group(s) of "
            f"{factor!r} (e.g. {', '.join(map(repr, map(str, bad)))}); a level-{level} weight must be "
            "constant within each group."
        )
    return per_group


def warn_conditional_below_one(
    unconditional: Sequence[np.ndarray], up: Sequence[np.ndarray], columns: Sequence[str]
) -> None:
    """Warn (:class:`~wemix_nb.errors.WeightWarning`) when unconditional weights fall below their
    parent's weight: the implied conditional weight ``w_k / w_{k+1}`` is below 1, i.e. a selection
    probability above 1, which suggests conditional weights or columns in the wrong order."""
    for k in range(len(unconditional) - 1):
        parent = unconditional[k + 1][up[k]]
        below = int(np.sum(unconditional[k] < parent * (1 - 1e-12)))
        if below:
            units = "row(s)" if k == 0 else f"level-{k + 1} group(s)"
            warnings.warn(
                f"{below} {units} have a level-{k + 1} weight {columns[k]!r} below the level-{k + 2} "
                f"weight {columns[k + 1]!r} of their group: as unconditional weights that means a "
                "conditional weight below 1. If the columns hold conditional weights, pass "
                "cweights=True; otherwise check their order (level 1 first).",
                WeightWarning,
                stacklevel=user_stacklevel(),
            )


def replicate_group_factors(
    factors: np.ndarray,
    index: np.ndarray,
    labels: pd.Index,
    *,
    level: int,
    factor: str,
    replicates: Sequence[str],
    weight: str,
) -> np.ndarray:
    """Per group, the replicate factor of each replicate; it must be constant within groups.

    A replicate column holds level-1 unconditional weights; the replicate weight of a group of a
    higher level is its weight times the factor ``replicate / full-sample weight`` of its rows,
    which therefore must be the same on all its rows.

    Parameters
    ----------
    factors
        ``(n, R)`` factors of the rows.
    index
        ``(n,)`` group of each row, in ``0..len(labels)-1``.
    labels
        The group labels (for the message).
    level, factor
        The level number and its grouping factor (for the message).
    replicates, weight
        The ``R`` replicate columns and the level-1 weight column (for the message).

    Returns
    -------
    numpy.ndarray
        ``(len(labels), R)`` the factor of each group in each replicate.

    Raises
    ------
    WeightError
        Naming a group and a replicate in which the factor varies.
    """
    n_groups = len(labels)
    first = np.zeros((n_groups, factors.shape[1]))
    first[index[::-1]] = factors[::-1]  # the first row of each group is assigned last, so it wins
    spread = np.zeros_like(first)
    np.maximum.at(spread, index, np.abs(factors - first[index]))
    # factors are ratios near 1 (or 0 for a deleted unit): an absolute tolerance at their scale
    varies = spread > CONSTANT_RTOL * np.maximum(np.abs(first), 1.0)
    if varies.any():
        groups, reps = np.nonzero(varies)
        raise WeightError(
            f"The replicate factor {replicates[reps[0]]!r} / {weight!r} varies within group "
            f"{str(labels[groups[0]])!r} of {factor!r} (level {level}; {len(np.unique(groups))} group(s), "
            f"{len(np.unique(reps))} replicate(s)), so the level-{level} replicate weight cannot be "
            f"derived from the rows. Give the level's replicate columns explicitly: "
            f"replicate_weights={{1: <row columns>, {level}: <level-{level} columns>}}."
        )
    return first


def to_conditional(unconditional: Sequence[np.ndarray], up: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Conditional weights ``w_k / w_{k+1}[parent]`` from unconditional ones, level by level.

    ``unconditional[k]`` holds the weights of the units of level ``k + 1``; ``up`` is described in
    the module docstring. The top level's weights are returned as they are.
    """
    top = len(unconditional) - 1
    return [unconditional[k] / unconditional[k + 1][up[k]] for k in range(top)] + [unconditional[top]]


def to_unconditional(conditional: Sequence[np.ndarray], up: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Unconditional weights ``c_k * w_{k+1}[parent]`` from conditional ones, top down."""
    unconditional = list(conditional)
    for k in range(len(conditional) - 2, -1, -1):
        unconditional[k] = conditional[k] * unconditional[k + 1][up[k]]
    return unconditional


def scaling_factors(values: np.ndarray, parent: np.ndarray, n_parents: int, method: str) -> np.ndarray:
    """Per-parent multiplier of the conditional weights ``values`` of the parent's units.

    Parameters
    ----------
    values
        Conditional weights of the units (rows, or groups of one level).
    parent
        Parent group of each unit, in ``0..n_parents-1``; every parent has at least one unit.
    n_parents
        Number of parent groups.
    method
        ``"cluster"`` (``n_j / sum w``) or ``"effective"`` (``sum w / sum w^2``).

    Returns
    -------
    numpy.ndarray
        ``(n_parents,)`` factors.
    """
    s1 = np.bincount(parent, values, minlength=n_parents)
    if method == "cluster":
        return np.bincount(parent, minlength=n_parents) / s1
    return s1 / np.bincount(parent, values**2, minlength=n_parents)


def scale_conditional(
    conditional: Sequence[np.ndarray], up: Sequence[np.ndarray], method: str
) -> list[np.ndarray]:
    """Conditional weights of every level below the top, scaled within their parent groups.

    Each level's factors come from its own given weights (scaling one level does not change the
    factors of another). ``method="none"`` returns the weights unchanged.
    """
    check_scaling_method(method)
    scaled = list(conditional)
    if method == "none":
        return scaled
    for k in range(len(conditional) - 1):
        factors = scaling_factors(conditional[k], up[k], len(conditional[k + 1]), method)
        scaled[k] = conditional[k] * factors[up[k]]
    return scaled


def level_weights(
    given: Sequence[np.ndarray], up: Sequence[np.ndarray], *, conditional: bool, scaling: str = "none"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unconditional and conditional weights of every level, optionally scaled.

    Parameters
    ----------
    given
        The weights of each level's units as given (``given[0]``: rows), level 1 first.
    up
        Parent maps, see the module docstring.
    conditional
        True if ``given`` holds conditional weights, False if unconditional.
    scaling
        One of :data:`SCALING_METHODS`, applied to the conditional weights.

    Returns
    -------
    unconditional, conditional : list of numpy.ndarray
        Both conventions, level 1 first.
    """
    if scaling != "none":
        # scale in the conditional convention, then go back to the given one, from which the
        # other convention is derived as for unscaled weights
        scaled = scale_conditional(list(given) if conditional else to_conditional(given, up), up, scaling)
        given = scaled if conditional else to_unconditional(scaled, up)
    if conditional:
        return to_unconditional(given, up), list(given)
    return list(given), to_conditional(given, up)
