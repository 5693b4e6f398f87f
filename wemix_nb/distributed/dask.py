"""Linear mixed models of data too large for one pandas DataFrame: :func:`mix_dask`.

A weighted linear mixed model depends on the rows only through per-level-2-group weighted
cross-products of ``[Z, X, r0]`` (see :mod:`wemix_nb._linear`). With a Dask DataFrame whose
partitions hold whole top-level groups, each partition is turned into a model frame and those
statistics on its own worker, in one pass; only the small per-group statistics travel back.
They are moved to a common ``r0 = y - X beta0`` (``beta0``: the weighted least-squares fit, from
the summed ``X'WX`` and ``X'Wy``), concatenated (the groups of different partitions are
disjoint), put in the order a pandas fit uses, and handed to the same optimiser as
:func:`~wemix_nb.mix`. The estimates equal those of ``mix`` on the whole data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from wemix_nb.errors import (
    ArgumentError,
    ColumnNotFoundError,
    DataError,
    DroppedRowsWarning,
    FormulaError,
    NestingError,
    RankDeficiencyError,
)
from wemix_nb.estimation.linear import CrossProducts, LinearProblem, cross_products
from wemix_nb.model.formula import parse_formula
from wemix_nb.model.frame import build_model_frame, check_top_level_groups
from wemix_nb.model.levels import group_columns_of
from wemix_nb.options import FitOptions
from wemix_nb.results.assemble import WeightTotals, linear_result


def _partition_statistics(
    pdf: pd.DataFrame, formula, weights, cweights, center_group, level_order
) -> dict | None:
    """Sufficient statistics of one partition (``None`` if it has no usable rows)."""
    if len(pdf) == 0:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = build_model_frame(
                formula,
                pdf,
                weights,
                cweights=cweights,
                center_group=center_group,
                check_response=False,
                check_rank=False,
                drop_unused_categories=False,
                level_order=level_order,
            )
        except DataError as exc:
            if "No rows are left" in str(exc):
                return None
            raise
    statistics = cross_products(frame)
    X, y, w1 = frame.X, frame.y_less_offset, frame.weight1
    XtW = (X * w1[:, None]).T
    levels = [
        {
            "name": lv.name,
            "labels": lv.labels,
            "parent_index": lv.parent_index,
            "weight": lv.weight,
            "cond_weight": lv.cond_weight,
            "n_rows": lv.n_rows,
            "terms": list(lv.terms),
            "q": lv.q,
        }
        for lv in frame.levels
    ]
    empty_levels = [
        replace(lv, group_index=np.empty(0, dtype=np.int64), Z=np.empty((0, lv.q))) for lv in frame.levels
    ]
    skeleton = replace(
        frame,
        y=np.empty(0),
        X=np.empty((0, X.shape[1])),
        levels=empty_levels,
        weight1=np.empty(0),
        cond_weight1=np.empty(0),
        row_index=pd.RangeIndex(0),
        offset=None if frame.offset is None else np.empty(0),
    )
    return {
        "T": statistics.T,
        "beta0": statistics.beta0,
        "XtWX": XtW @ X,
        "XtWy": XtW @ y,
        "n": frame.n,
        "w1": (float(w1.sum()), float(w1.min()), float(w1.max())),
        "n_weighted_top": statistics.n_weighted_top,
        "y_range": (float(y.min()), float(y.max())),
        "levels": levels,
        "fixed_names": list(frame.fixed_names),
        "skeleton": skeleton,
        "dropped": (frame.n_dropped_missing, frame.n_dropped_zero_weight),
        "warnings": [(w.category, str(w.message)) for w in caught if w.category is not DroppedRowsWarning],
    }


def _check_rank_crossproduct(XtWX: np.ndarray, names: list[str]) -> None:
    """Rank check of the whole fixed-effect design from ``X'WX`` (pivoted Cholesky, scaled).

    A pivot below ``1e-7`` of the largest (on the scale of ``X``, i.e. a condition number of
    ``X`` above 1e7) counts as collinear: ``X'WX`` squares the condition number.
    """
    scale = np.sqrt(np.diag(XtWX))
    scale[scale == 0] = 1.0
    A = XtWX / np.outer(scale, scale)
    p = len(names)
    remaining = list(range(p))
    dropped = []
    A = A.copy()
    first = None
    for _ in range(p):
        diag = np.array([A[j, j] for j in remaining])
        j = remaining[int(np.argmax(diag))]
        pivot = A[j, j]
        first = pivot if first is None else first
        if pivot <= 1e-14 * first:
            dropped = remaining
            break
        remaining.remove(j)
        col = A[:, j] / np.sqrt(pivot)
        A = A - np.outer(col, col)
    if dropped:
        columns = ", ".join(repr(names[k]) for k in sorted(dropped))
        raise RankDeficiencyError(
            f"The fixed-effect design is rank deficient: column(s) {columns} "
            "are linear combinations of the others (collinear or constant). Remove them from the formula or "
            "merge categories."
        )


def _order(labels: pd.Index) -> np.ndarray:
    """Positions that sort the labels like the model frame's factorisation (fallback: as is)."""
    try:
        _, uniques = pd.factorize(labels, sort=True)
        return pd.Index(labels).get_indexer(uniques)
    except TypeError:
        return np.arange(len(labels))


def _combine(parts: list[dict]) -> dict:
    first = parts[0]
    names = first["fixed_names"]
    for k, part in enumerate(parts[1:], start=2):
        if part["fixed_names"] != names:
            raise FormulaError(
                f"Partition {k} gives fixed-effect columns {part['fixed_names']}, partition 1 gives {names}. "
                "Make categorical columns pandas Categoricals with the same categories in every partition "
                "(e.g. ddf.categorize()) so that each partition builds the same design."
            )
        for a, b in zip(part["levels"], first["levels"], strict=True):
            if a["terms"] != b["terms"]:
                raise FormulaError(f"Partitions give different random-effect terms for {a['name']!r}.")
    p = len(names)
    XtWX = sum(part["XtWX"] for part in parts)
    XtWy = sum(part["XtWy"] for part in parts)
    _check_rank_crossproduct(XtWX, names)
    beta0 = np.linalg.lstsq(XtWX, XtWy, rcond=None)[0]
    # move every partition's cross-products to the common r0 = y - X beta0:
    # -r0 = -r0_p - X (beta0_p - beta0), i.e. the last column picks up X times -(beta0_p - beta0)
    Ts = []
    for part in parts:
        T = part["T"]
        m = T.shape[-1]
        E = np.eye(m)
        E[m - 1 - p : m - 1, m - 1] = -(part["beta0"] - beta0)
        Ts.append(E.T @ T @ E)
    n_levels = len(first["levels"])
    # concatenate the levels; parent indices shift by the parent level's groups before the partition
    offsets = [
        np.cumsum([0] + [len(part["levels"][k]["labels"]) for part in parts])[:-1] for k in range(n_levels)
    ]
    levels = []
    for k in range(n_levels):
        pieces = [part["levels"][k] for part in parts]
        labels = pieces[0]["labels"].append([pc["labels"] for pc in pieces[1:]])
        labels = labels.rename(first["levels"][k]["name"])
        if labels.has_duplicates:
            dup = labels[labels.duplicated()][:5]
            raise NestingError(
                f"Group(s) {', '.join(map(repr, map(str, dup)))} of {labels.name!r} appear in more than one "
                "partition. mix_dask needs every top-level group inside one partition: e.g. "
                "ddf.shuffle(on=<top-level group column>) or set_index on it."
            )
        parent = None
        if k < n_levels - 1:
            parent = np.concatenate([pc["parent_index"] + offsets[k + 1][j] for j, pc in enumerate(pieces)])
        levels.append(
            {
                "labels": labels,
                "parent": parent,
                "weight": np.concatenate([pc["weight"] for pc in pieces]),
                "cond_weight": np.concatenate([pc["cond_weight"] for pc in pieces]),
                "n_rows": np.concatenate([pc["n_rows"] for pc in pieces]),
            }
        )
    # the pandas fit's group order: sorted labels
    orders = [_order(lv["labels"]) for lv in levels]
    inverse = []
    for order in orders:
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        inverse.append(inv)
    for k, (lv, order) in enumerate(zip(levels, orders, strict=True)):
        for key in ("weight", "cond_weight", "n_rows"):
            lv[key] = lv[key][order]
        lv["labels"] = lv["labels"][order]
        if lv["parent"] is not None:
            lv["parent"] = inverse[k + 1][lv["parent"][order]]
    T = np.concatenate(Ts)[orders[0]]
    n_weighted_top = np.concatenate([part["n_weighted_top"] for part in parts])[orders[-1]]
    return {"beta0": beta0, "T": T, "levels": levels, "n_weighted_top": n_weighted_top}


def mix_dask(
    formula: str,
    ddf,
    weights: Sequence[str] | None = None,
    *,
    cweights: bool = False,
    center_group: Mapping[str, str] | None = None,
    start: Sequence[float] | None = None,
    compute_kwargs: Mapping | None = None,
):
    """Fit a weighted linear mixed model to a Dask DataFrame, partition by partition.

    Parameters
    ----------
    formula, weights, cweights, center_group, start
        As for :func:`~wemix_nb.mix` (linear models only; ``center_grand`` is not available:
        centre the columns beforehand).
    ddf
        A ``dask.dataframe.DataFrame`` in which every top-level group lies in one partition
        (e.g. ``ddf.shuffle(on="school")``). Categorical columns must have the same categories in
        every partition (``ddf.categorize()``), and each partition must hold enough rows and
        groups for a full-rank fixed-effect design.
    compute_kwargs
        Passed to ``dask.compute`` (e.g. ``scheduler=...``); with an active
        ``distributed.Client`` the partitions are processed on its workers.

    Returns
    -------
    MixResult
        The same estimates as ``mix`` on the whole data. ``resid`` and ``fitted`` are empty (the
        rows stay in the cluster): use ``ddf.map_partitions(result.predict)`` for predictions.
    """
    import dask

    options = FitOptions.from_arguments(weights, cweights=cweights, center_group=center_group, start=start)
    if not hasattr(ddf, "to_delayed"):
        raise ArgumentError(f"ddf must be a Dask DataFrame, got {type(ddf).__name__}; for pandas use mix().")
    # the levels are ordered by their numbers of groups in the whole data, not per partition
    factors = list(dict.fromkeys(bar.group for bar in parse_formula(formula).bars))
    missing = [c for factor in factors for c in group_columns_of(factor) if c not in ddf.columns]
    if missing:
        raise ColumnNotFoundError(f"Grouping column(s) {', '.join(map(repr, missing))} not in the data.")
    counts = dask.compute(
        *[ddf[group_columns_of(factor)].drop_duplicates().shape[0] for factor in factors],
        **dict(compute_kwargs or {}),
    )
    level_order = [factor for _, factor in sorted(zip(counts, factors, strict=True), key=lambda t: -t[0])]
    tasks = [
        dask.delayed(_partition_statistics)(
            part,
            formula,
            None if weights is None else list(weights),
            cweights,
            options.center_group,
            level_order,
        )
        for part in ddf.to_delayed()
    ]
    parts = [p for p in dask.compute(*tasks, **dict(compute_kwargs or {})) if p is not None]
    if not parts:
        raise DataError("No rows are left after removing rows with missing values or zero weights.")
    seen = set()
    for part in parts:
        for category, message in part["warnings"]:
            if (category, message) not in seen:
                seen.add((category, message))
                warnings.warn(message, category, stacklevel=2)
    dropped_missing = sum(part["dropped"][0] for part in parts)
    dropped_zero = sum(part["dropped"][1] for part in parts)
    if dropped_missing:
        warnings.warn(
            f"{dropped_missing} row(s) with missing values in the model's columns were removed.",
            DroppedRowsWarning,
            stacklevel=2,
        )
    if dropped_zero:
        warnings.warn(
            f"{dropped_zero} row(s) with a zero weight were removed.", DroppedRowsWarning, stacklevel=2
        )
    y_low = min(part["y_range"][0] for part in parts)
    y_high = max(part["y_range"][1] for part in parts)
    skeleton = parts[0]["skeleton"]
    if y_low == y_high:
        raise DataError(
            f"The response {skeleton.parsed.response!r} is constant ({y_low!r}); nothing to model."
        )

    stats = _combine(parts)
    levels = []
    for lv, info in zip(skeleton.levels, stats["levels"], strict=True):
        levels.append(
            replace(
                lv,
                labels=info["labels"],
                parent_index=info["parent"],
                weight=info["weight"],
                cond_weight=info["cond_weight"],
                n_rows=info["n_rows"],
            )
        )
    if np.all(levels[0].n_rows == 1):
        raise DataError(
            f"Every group of {levels[0].name!r} (level 2) has a single row, so its random-effect variance "
            "cannot be separated from the residual variance."
        )
    centering = skeleton.centering
    if centering.group:
        merged = {
            factor: {
                var: pd.concat([part["skeleton"].centering.group[factor][var] for part in parts])
                for var in means
            }
            for factor, means in centering.group.items()
        }
        centering = replace(centering, group=merged)
    n = sum(part["n"] for part in parts)
    frame = replace(
        skeleton,
        levels=levels,
        centering=centering,
        n_dropped_missing=dropped_missing,
        n_dropped_zero_weight=dropped_zero,
    )
    check_top_level_groups(frame)

    problem = LinearProblem(
        frame,
        CrossProducts(
            T=stats["T"],
            beta0=stats["beta0"],
            n_weighted=float(sum(part["w1"][0] for part in parts)),
            n_weighted_top=stats["n_weighted_top"],
        ),
    )
    if start is not None:
        start = np.asarray(options.start)
        if start.shape != (problem.structure.size,):
            raise ArgumentError(
                f"start is theta, {problem.structure.size} value(s) in the order "
                f"{problem.structure.names}; got {start.size}."
            )
    theta, info = problem.optimize(start)
    solution = problem.solution(theta)
    rows = WeightTotals(
        n=n,
        sum=float(sum(part["w1"][0] for part in parts)),
        min=min(part["w1"][1] for part in parts),
        max=max(part["w1"][2] for part in parts),
    )
    return linear_result(formula, frame, problem, solution, info, options, row_weights=rows)
