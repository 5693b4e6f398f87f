"""Grouping factors: their labels, their order from level 2 up, and how their groups nest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, NestingError


def group_columns_of(factor: str) -> list[str]:
    """The data columns of a grouping factor: ``"school:class"`` -> ``["school", "class"]``."""
    return [part.strip().strip("`") for part in factor.split(":")]


def _label_key(value) -> str:
    """One label as text; a whole number reads the same whatever its type (``3``, ``3.0``)."""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def label_keys(values: pd.Series) -> pd.Series:
    """Group labels as comparable text: numbers by value, so ``3``, ``3.0``, ``"3"`` and a category
    ``3`` are the same label; missing labels stay missing.

    Labels of a fit and of new data are matched through these keys, and composite factors
    (``a:b``) join them, so that labels do not depend on whether a column was stored as integers,
    as floats (e.g. after once holding a missing value), as text or as a categorical.
    """
    # one key per distinct label, not per row: a grouping column has few distinct values
    codes, uniques = pd.factorize(values)
    keys = np.full(len(values), np.nan, dtype=object)
    if len(uniques):
        unique_keys = np.array([_label_key(v) for v in uniques], dtype=object)
        present = codes >= 0
        keys[present] = unique_keys[codes[present]]
    return pd.Series(keys, index=values.index, name=values.name, dtype=str)


def match_labels(fitted: pd.Index, labels: pd.Series) -> np.ndarray:
    """Position of each of ``labels`` among the ``fitted`` group labels (-1: not a fitted group).

    Labels match by value (:func:`label_keys`): new data may hold the integers ``3`` where the fit
    had the text ``"3"``, floats, or a categorical. Where the fit itself has two labels with the
    same key (``3`` and ``"3"`` in one object column) only an exact match counts.
    """
    try:
        exact = pd.Index(fitted).get_indexer(labels.to_numpy())
    except TypeError:  # labels of types that do not compare
        exact = np.full(len(labels), -1)
    fitted_keys = label_keys(pd.Series(fitted))
    unique = ~fitted_keys.duplicated(keep=False).to_numpy()
    by_key = pd.Index(fitted_keys[unique]).get_indexer(label_keys(labels).to_numpy())
    positions = np.append(np.flatnonzero(unique), -1)  # by_key == -1 picks the final -1
    return np.where(exact >= 0, exact, positions[by_key])


def group_labels(data: pd.DataFrame, factor: str) -> pd.Series:
    """Labels of a grouping factor; ``a:b`` joins the columns' values as ``"<a>:<b>"``.

    Parameters
    ----------
    data
        The data holding the factor's columns.
    factor
        A grouping factor as written in the formula (``"school"``, ``"school:class"``).

    Returns
    -------
    pandas.Series
        One label per row of ``data`` (the column itself for a single-column factor).
    """
    columns = group_columns_of(factor)
    if len(columns) == 1:
        return data[columns[0]]
    joined = label_keys(data[columns[0]])
    for column in columns[1:]:
        joined = joined + ":" + label_keys(data[column])
    return joined.rename(factor)


def factorize(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Group index and labels in R's factor order (categories order, else sorted)."""
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), pd.Index(uniques, name=labels.name)


@dataclass(frozen=True)
class LevelIndex:
    """The groups of one grouping factor on the rows of a model.

    Attributes
    ----------
    factor
        The grouping factor, e.g. ``"school"`` or ``"school:class"``.
    index
        ``(n,)`` group of each row, in ``0..n_groups-1``.
    labels
        ``(n_groups,)`` group labels, in index order.
    """

    factor: str
    index: np.ndarray
    labels: pd.Index

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return len(self.labels)


def order_levels(rows: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """Order grouping factors from most to fewest groups, level 2 first.

    Raises
    ------
    NestingError
        If two factors have the same number of groups (they cannot be strictly nested).
    """
    counts = {factor: group_labels(rows, factor).nunique() for factor in factors}
    ordered = sorted(factors, key=lambda factor: -counts[factor])
    for lower, upper in zip(ordered, ordered[1:], strict=False):
        if counts[lower] == counts[upper]:
            raise _same_count(rows, lower, upper, counts[lower])
    return ordered


def _same_count(rows: pd.DataFrame, lower: str, upper: str, count: int) -> NestingError:
    """The error for two grouping factors with as many groups: the same groups under two names,
    or factors that are not nested."""
    a, b = (LevelIndex(f, *factorize(group_labels(rows, f).rename(f))) for f in (lower, upper))
    pairs = pd.MultiIndex.from_arrays([a.index, b.index]).nunique()
    if pairs == count:
        return NestingError(
            f"Grouping factors {lower!r} and {upper!r} define the same {count} groups (under two "
            "names): a second random term on the same groups is not identified. Remove one of them."
        )
    error = not_nested(a, b)
    return NestingError(f"Grouping factors {lower!r} and {upper!r} both have {count} groups. {error}")


def index_levels(
    rows: pd.DataFrame, factors: Sequence[str], level_order: Sequence[str] | None = None
) -> list[LevelIndex]:
    """The groups of every grouping factor on ``rows``, level 2 first.

    Parameters
    ----------
    rows
        The rows of the model.
    factors
        The grouping factors, in any order.
    level_order
        The factors from level 2 up when decided elsewhere (a partition of the data may hold too
        few groups to tell the levels apart); by default ordered by :func:`order_levels`.
    """
    if level_order is None:
        ordered = order_levels(rows, factors)
    elif sorted(level_order) == sorted(factors):
        ordered = list(level_order)
    else:
        raise ArgumentError(f"level_order {list(level_order)} does not list the grouping factors {factors}.")
    levels = []
    for factor in ordered:
        index, labels = factorize(group_labels(rows, factor).rename(factor))
        levels.append(LevelIndex(factor, index, labels))
    return levels


def not_nested(lower: LevelIndex, upper: LevelIndex) -> NestingError:
    """The error for two grouping factors whose groups are not nested, saying which case it is.

    * Every combination of the two factors holds a single row (each subject measured once on each
      day): the factors are crossed, and a composite factor would only label rows. Crossed random
      effects are outside multilevel pseudo-likelihood.
    * Otherwise the data cannot tell crossed factors from lower-level labels that restart within
      the groups of the other factor (class 1, 2, 3 in every school): both are described, with
      the composite factor that handles the second.
    """
    low, up = lower.factor, upper.factor
    n_rows = len(lower.index)
    cells = pd.MultiIndex.from_arrays([lower.index, upper.index]).unique()
    spans = np.bincount(cells.get_level_values(0), minlength=lower.n_groups)
    bad = np.flatnonzero(spans > 1)
    inside = sorted({str(upper.labels[u]) for u in upper.index[lower.index == bad[0]]})
    found = (
        f"{len(bad)} of the {lower.n_groups} groups of {low!r} lie in more than one group of {up!r} "
        f"(e.g. {str(lower.labels[bad[0]])!r} in {', '.join(map(repr, inside[:5]))}"
        f"{', ...' if len(inside) > 5 else ''})"
    )
    crossed = (
        "crossed random effects (groups of each factor meeting several groups of the other) are "
        "outside multilevel pseudo-likelihood, which needs every group within one group of the "
        "level above"
    )
    composite = (
        f"make them unique with a composite factor: '(1 | {up}/{low})' if {low!r} lies within "
        f"{up!r}, or '(1 | {low}/{up})' if {up!r} lies within {low!r}"
    )
    if len(cells) == n_rows:
        return NestingError(
            f"{low!r} and {up!r} are crossed, not nested: {found}, and each of the {n_rows} rows is "
            f"its own combination of the two. Crossed random effects (groups of each factor meeting "
            f"several groups of the other) are outside multilevel pseudo-likelihood, which needs "
            f"every group within one group of the level above; include one of them as fixed effects "
            f"(e.g. 'C({up})') instead of a random term."
        )
    if 2 * len(bad) < lower.n_groups:
        return NestingError(
            f"The grouping factors {low!r} and {up!r} are not nested: {found}. If the data are "
            f"nested, the labels of those groups are probably wrong. If the labels of one factor "
            f"restart within the groups of the other, {composite}."
        )
    return NestingError(
        f"The grouping factors {low!r} and {up!r} are not nested: {found}. If the labels of one "
        f"restart within the groups of the other (e.g. class 1, 2, 3 in every school), {composite}. "
        f"If instead the factors are crossed by design, the model cannot be fitted here: {crossed}."
    )


def _parent_index(lower: LevelIndex, upper: LevelIndex) -> np.ndarray:
    """Each group of ``lower``'s group of ``upper``, checking that each lies in only one."""
    parent = np.full(lower.n_groups, -1, dtype=np.int64)
    parent[lower.index] = upper.index  # any row's upper group; then check that all rows agree
    if np.any(parent[lower.index] != upper.index):
        raise not_nested(lower, upper)
    return parent


def parent_indices(levels: Sequence[LevelIndex]) -> list[np.ndarray | None]:
    """For each level, the index of each group's enclosing group one level up (``None`` at the top).

    Raises
    ------
    NestingError
        If a group lies in more than one group of the level above.
    """
    parents: list[np.ndarray | None] = [
        _parent_index(lo, hi) for lo, hi in zip(levels, levels[1:], strict=False)
    ]
    return [*parents, None]


def unit_parents(levels: Sequence[LevelIndex], parents: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """``up``: for the units of each level below the top (rows first), their group one level up.

    ``up[0]`` is the rows' level-2 group index; ``up[k]`` (``k >= 1``) the level-``k + 2`` parent of
    each level-``k + 1`` group. This is the layout :mod:`wemix_nb.model.weights` works on.
    """
    if not levels:
        return []
    return [levels[0].index, *parents[:-1]]  # type: ignore[list-item]
