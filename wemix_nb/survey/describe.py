"""Descriptive statistics of survey weights per level: sizes, spread and Kish's design effect.

Used by ``DataFrame.wemix.describe_weights`` (see :mod:`wemix_nb.accessor`) and by the groups
table of a result's HTML report. Pure numerics: no plotting or HTML here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError
from wemix_nb.model import weights as weight_rules
from wemix_nb.model.levels import factorize, group_columns_of, group_labels
from wemix_nb.options import check_column_names

COLUMNS = ["level", "unit", "weight", "n", "sum", "mean", "min", "max", "cv", "deff", "n_eff"]


def weight_stats(w: np.ndarray) -> dict[str, float]:
    """n, sum, mean, min, max, CV and Kish's design effect of one set of weights.

    ``cv`` is the population coefficient of variation (standard deviation with divisor n, over
    the mean); ``deff = n * sum(w**2) / sum(w)**2 = 1 + cv**2`` is Kish's design effect due to
    unequal weighting, and ``n_eff = n / deff = sum(w)**2 / sum(w**2)`` the effective sample size.
    """
    w = np.asarray(w, dtype=float)
    n = w.size
    if n == 0:
        return dict.fromkeys(["n", "sum", "mean", "min", "max", "cv", "deff", "n_eff"], np.nan) | {"n": 0}
    total = w.sum()
    mean = total / n
    sumsq = float(np.dot(w, w))
    deff = n * sumsq / total**2 if total > 0 else np.nan
    return {
        "n": int(n),
        "sum": float(total),
        "mean": float(mean),
        "min": float(w.min()),
        "max": float(w.max()),
        "cv": float(w.std() / mean) if mean > 0 else np.nan,
        "deff": float(deff),
        "n_eff": float(total**2 / sumsq) if sumsq > 0 else np.nan,
    }


@dataclass(frozen=True)
class WeightSummary:
    """Per-level weight statistics; ``table`` is a DataFrame with one row per level.

    Columns: ``level`` (1 = rows), ``unit`` (``"rows"`` or the grouping factor), ``weight`` (the
    column), ``n`` (rows or groups), ``sum``, ``mean``, ``min``, ``max``, ``cv`` (population
    coefficient of variation), ``deff`` (Kish design effect due to weighting, ``1 + cv**2``) and
    ``n_eff`` (Kish effective sample size, ``n / deff``).
    """

    table: pd.DataFrame
    n_dropped: int = 0

    def to_frame(self) -> pd.DataFrame:
        """A copy of :attr:`table`."""
        return self.table.copy()

    def __getitem__(self, key):
        return self.table[key]

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        note = f"\n({self.n_dropped} row(s) with missing weights or groups dropped)" if self.n_dropped else ""
        return f"Survey weights by level\n{self.table.to_string(index=False)}{note}"

    def to_gt(self):
        """The great_tables ``GT`` table shown in notebooks (restyle or save it)."""
        from wemix_nb.display.html import weights_gt

        return weights_gt(self)

    def _repr_html_(self) -> str:
        """The summary as an HTML table; if it cannot be built, the text form (never raises)."""
        from wemix_nb.results.fallback import html_or_text

        def table() -> str:
            from wemix_nb.display.html import weights_html

            return weights_html(self)

        return html_or_text(table, lambda: str(self), lambda: repr(self))


def describe_weights(
    data: pd.DataFrame, weights: Sequence[str], groups: Sequence[str] | None = None
) -> WeightSummary:
    """Summarise survey weights level by level.

    Parameters
    ----------
    data
        The data, one row per level-1 unit.
    weights
        Weight columns as for :func:`wemix_nb.mix`: level 1 (rows) first, then one per grouping
        level from the lowest to the top.
    groups
        Grouping factors matching ``weights[1:]`` position by position (lowest level first);
        ``"a:b"`` joins columns as in the formula. A level-k weight must be constant within each
        of its groups; it is counted once per group.

    Returns
    -------
    WeightSummary
        One row per level. Rows with a missing weight or group label are left out (counted in
        ``n_dropped``); zero weights are counted.

    Raises
    ------
    ArgumentError
        If ``groups`` does not give one factor per weight above level 1.
    ColumnNotFoundError
        For a weight or group column not in ``data``.
    WeightError
        For a weight column that is not numeric, has negative or infinite values, or (above level
        1) varies within a group (the rules of :mod:`wemix_nb.model.weights`).
    """
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    example = "['w_student', 'w_school'] (level 1 first)"
    weights = [weights] if isinstance(weights, str) else list(check_column_names(weights, "weights", example))
    if groups is None:
        groups = []
    elif isinstance(groups, str):
        groups = [groups]
    else:
        groups = list(check_column_names(groups, "groups", "['school'] (level 2 first)"))
    if not weights:
        raise ArgumentError("weights must name at least the level-1 (row) weight column.")
    if len(groups) != len(weights) - 1:
        raise ArgumentError(
            f"give one grouping factor per weight above level 1: {len(weights)} weight column(s) "
            f"need {len(weights) - 1} group(s), got {len(groups)} ({groups})."
        )
    needed = weights + [c for g in groups for c in group_columns_of(g)]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise ColumnNotFoundError(f"column(s) {missing} not in the data.")
    weight_rules.check_weight_dtypes(data, weights)
    keep = data[list(dict.fromkeys(needed))].notna().all(axis=1).to_numpy()
    kept = data.loc[keep]
    W = kept[weights].to_numpy(dtype=float)
    weight_rules.check_weight_values(W, weights, kept.index)
    rows = [{"level": 1, "unit": "rows", "weight": weights[0], **weight_stats(W[:, 0])}]
    for k, unit in enumerate(groups, start=1):
        index, labels = factorize(group_labels(kept, unit))
        values = weight_rules.group_weight(
            W[:, k], index, labels, level=k + 1, column=weights[k], factor=unit
        )
        rows.append({"level": k + 1, "unit": unit, "weight": weights[k], **weight_stats(values)})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return WeightSummary(table=table, n_dropped=int((~keep).sum()))
