"""Mixed models of data too large for one pandas DataFrame: :func:`mix_dask`.

Partitions of a Dask DataFrame hold whole top-level groups; each turns its rows into a model frame
on its own worker, and only small per-group results travel.

Linear models
    A weighted linear mixed model depends on the rows only through per-level-2-group weighted
    cross-products of ``[Z, X, r0]`` (see :mod:`wemix_nb.estimation.linear`), computed in one pass.
    They are moved to a common ``r0 = y - X beta0`` (``beta0``: the weighted least-squares fit,
    from the summed ``X'WX`` and ``X'Wy``), concatenated (the groups of different partitions are
    disjoint), put in the order a pandas fit uses, and handed to the same optimiser as
    :func:`~wemix_nb.mix`.
GLMMs (two levels)
    The likelihood is a sum over groups, so each partition keeps its rows and its groups'
    warm-start modes on its worker and returns its share of the likelihood and gradient at the
    parameters the driver sends; the driver runs the same optimiser as a pandas fit (see
    :mod:`wemix_nb.distributed.dask_glmm`).

Both give the estimates of ``mix`` on the whole data. ``resid`` and ``fitted`` are Dask Series,
computed from the partitions when asked for (:mod:`wemix_nb.distributed.dask_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from wemix_nb.distributed.dask_glmm import fit_glmm_dask
from wemix_nb.distributed.dask_partitions import (
    FrameSpec,
    check_nonconstant_response,
    check_same_design,
    combine_levels,
    partition_summary,
    report_partition_warnings,
    row_weight_totals,
    whole_frame,
)
from wemix_nb.distributed.dask_rows import with_row_series
from wemix_nb.errors import ArgumentError, ColumnNotFoundError, DataError, RankDeficiencyError
from wemix_nb.estimation.linear import CrossProducts, LinearProblem, cross_products
from wemix_nb.model.formula import parse_formula
from wemix_nb.model.identification import check_top_level_groups
from wemix_nb.model.levels import group_columns_of
from wemix_nb.options import FitOptions
from wemix_nb.results.assemble import linear_result


def _partition_statistics(pdf, spec: FrameSpec) -> dict | None:
    """Summary and sufficient statistics of one partition (``None`` if it has no usable rows)."""
    frame, caught = spec.build(pdf)
    if frame is None:
        return None
    statistics = cross_products(frame)
    X, y, w1 = frame.X, frame.y_less_offset, frame.weight1
    XtW = (X * w1[:, None]).T
    return {
        **partition_summary(frame, caught),
        "T": statistics.T,
        "beta0": statistics.beta0,
        "XtWX": XtW @ X,
        "XtWy": XtW @ y,
        "n_weighted_top": statistics.n_weighted_top,
        "cond_weight_sums": statistics.cond_weight_sums,
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


def _combine(parts: list[dict]) -> dict:
    """The whole data's cross-products, levels and top-level weighted counts."""
    check_same_design(parts)
    names = parts[0]["fixed_names"]
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
    levels, orders = combine_levels(parts)
    T = np.concatenate(Ts)[orders[0]]
    sums = np.concatenate([part["cond_weight_sums"] for part in parts])[orders[0]]
    n_weighted_top = np.concatenate([part["n_weighted_top"] for part in parts])[orders[-1]]
    return {
        "beta0": beta0,
        "T": T,
        "levels": levels,
        "n_weighted_top": n_weighted_top,
        "cond_weight_sums": sums,
    }


def level_order(ddf, formula: str, compute_kwargs: Mapping | None) -> list[str]:
    """The grouping factors ordered by their numbers of groups in the whole data (most first), as
    a pandas fit orders its levels (a partition alone cannot tell)."""
    import dask

    factors = list(dict.fromkeys(bar.group for bar in parse_formula(formula).bars))
    missing = [c for factor in factors for c in group_columns_of(factor) if c not in ddf.columns]
    if missing:
        raise ColumnNotFoundError(f"Grouping column(s) {', '.join(map(repr, missing))} not in the data.")
    if len(factors) == 1:  # nothing to order: no pass over the data
        return factors
    # a tree reduction of the partitions' distinct groups (a shuffle costs more than the fit's
    # first steps); split_out=1: one result partition
    counts = dask.compute(
        *[ddf[group_columns_of(factor)].drop_duplicates(split_out=1).shape[0] for factor in factors],
        **dict(compute_kwargs or {}),
    )
    return [factor for _, factor in sorted(zip(counts, factors, strict=True), key=lambda t: -t[0])]


def mix_dask(
    formula: str,
    ddf,
    weights: Sequence[str] | None = None,
    *,
    family: str | None = None,
    link: str | None = None,
    nquad: int = 13,
    cweights: bool = False,
    center_group: Mapping[str, str] | None = None,
    start: Sequence[float] | None = None,
    max_iteration: int = 100,
    laplace_rounding: bool = False,
    progress: bool | None = None,
    client=None,
    compute_kwargs: Mapping | None = None,
):
    """Fit a weighted mixed model to a Dask DataFrame, partition by partition.

    Parameters
    ----------
    formula, weights, family, link, nquad, cweights, center_group, start, max_iteration
        As for :func:`~wemix_nb.mix`: linear models (no ``family``) with any number of levels,
        GLMMs (``family="binomial"`` or ``"poisson"``) with two levels. ``center_grand`` and
        ``scale_weights`` are not available: centre and scale the columns beforehand.
    laplace_rounding, progress
        As for :func:`~wemix_nb.mix` (GLMMs).
    ddf
        A ``dask.dataframe.DataFrame`` in which every top-level group lies in one partition
        (e.g. ``ddf.shuffle(on="school")``). Categorical columns must have the same categories in
        every partition (``ddf.categorize()``), and each partition must hold enough rows and
        groups for a full-rank fixed-effect design (linear models).
    client
        GLMMs: the ``distributed.Client`` whose workers keep the partitions during the fit
        (default: the active client). Without one, the partitions are computed and kept in this
        process.
    compute_kwargs
        Passed to ``dask.compute`` (e.g. ``scheduler=...``); with an active
        ``distributed.Client`` the partitions are processed on its workers.

    Returns
    -------
    MixResult
        The same estimates as ``mix`` on the whole data. ``resid`` and ``fitted`` (and, for GLMMs,
        ``linear_predictor``) are Dask Series, computed from the partitions with the fitted
        parameters when asked for; use ``ddf.map_partitions(result.predict)`` for predictions.

    Raises
    ------
    FormulaError
        A GLMM with more than two levels.
    """
    options = FitOptions.from_arguments(
        weights,
        family=family,
        link=link,
        nquad=nquad,
        cweights=cweights,
        center_group=center_group,
        start=start,
        max_iteration=max_iteration,
        laplace_rounding=laplace_rounding,
        progress=progress,
    )
    if not hasattr(ddf, "to_delayed"):
        raise ArgumentError(f"ddf must be a Dask DataFrame, got {type(ddf).__name__}; for pandas use mix().")
    spec = FrameSpec(
        formula,
        None if weights is None else list(weights),
        cweights,
        options.center_group,
        level_order(ddf, formula, compute_kwargs),
        binomial_response=options.binomial_response,
    )
    if options.family is not None:
        result = fit_glmm_dask(ddf, spec, options, client, compute_kwargs)
    else:
        result = _fit_linear_dask(ddf, spec, options, compute_kwargs)
    return with_row_series(result, ddf, spec)


def _fit_linear_dask(ddf, spec: FrameSpec, options: FitOptions, compute_kwargs: Mapping | None):
    import dask

    tasks = [dask.delayed(_partition_statistics)(part, spec) for part in ddf.to_delayed()]
    parts = [p for p in dask.compute(*tasks, **dict(compute_kwargs or {})) if p is not None]
    if not parts:
        raise DataError("No rows are left after removing rows with missing values or zero weights.")
    dropped = report_partition_warnings(parts)
    check_nonconstant_response(parts)
    stats = _combine(parts)
    frame = whole_frame(parts, stats["levels"], dropped)
    check_top_level_groups(frame)
    if np.all(frame.levels[0].n_rows == 1):
        raise DataError(
            f"Every group of {frame.levels[0].name!r} (level 2) has a single row, so its random-effect "
            "variance cannot be separated from the residual variance."
        )
    problem = LinearProblem(
        frame,
        CrossProducts(
            T=stats["T"],
            beta0=stats["beta0"],
            n_weighted=float(sum(part["w1"][0] for part in parts)),
            n_weighted_top=stats["n_weighted_top"],
            cond_weight_sums=stats["cond_weight_sums"],
        ),
    )
    start = None
    if options.start is not None:
        start = np.asarray(options.start)
        if start.shape != (problem.structure.size,):
            raise ArgumentError(
                f"start is theta, {problem.structure.size} value(s) in the order "
                f"{problem.structure.names}; got {start.size}."
            )
    theta, info = problem.optimize(start)
    solution = problem.solution(theta)
    return linear_result(
        spec.formula, frame, problem, solution, info, options, row_weights=row_weight_totals(parts)
    )


__all__ = ["mix_dask"]
