"""Models the data cannot identify, refused before (or right after) estimation with what is wrong.

* :func:`check_random_designs`: a random-effect design whose columns are collinear (``(1 + x + 2x | g)``)
  or constant (``(1 + c | g)`` with ``c`` the same on every row): the variances of those random
  effects cannot be told apart.
* :func:`check_slopes_within_groups`: a random slope on a variable that is constant within every
  group (a group-level variable), next to a random intercept: in each group the slope's random
  effect and the intercept's add the same constant to every row, so their variances are not told
  apart (only through how the groups' total variance changes with the variable's value).
* :func:`check_confounding`: random effects that the fixed part already contains -- the same factor
  in the fixed and the random part, ``y ~ g + (1 | g)``: every group's random intercept is a fixed
  effect, so the variance of the random intercepts is not identified.
* :func:`check_fixed_interpolation` and :func:`check_residual_variance` (linear models): a response
  that the model reproduces exactly, whose residual variance is 0 and likelihood unbounded.
* :func:`check_top_level_groups`: a single top-level group, whose variance is not identified and
  whose robust standard errors are undefined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wemix_nb.errors import DataError, RankDeficiencyError
from wemix_nb.model.design import RANK_TOL, dependent_columns, unit_columns
from wemix_nb.model.formula import variables_of
from wemix_nb.model.levels import group_columns_of

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.model.frame import ModelFrame, RandomLevel

# a residual variance below this fraction of the variance left by the fixed part is numerically 0:
# the linear estimator's cross-products leave rounding noise of about 1e-13 of it
RESIDUAL_TOL = 1e-10


def check_random_designs(frame: ModelFrame) -> None:
    """Refuse a grouping level whose random-effect columns are linearly dependent.

    Raises
    ------
    RankDeficiencyError
        Naming the level and the dependent columns.
    """
    for level in frame.levels:
        dropped = [level.terms[j] for j in dependent_columns(level.Z)]
        if dropped:
            raise RankDeficiencyError(
                f"The random-effect design of {level.name!r} is rank deficient: column(s) "
                f"{', '.join(map(repr, dropped))} are linear combinations of the others "
                f"({', '.join(repr(t) for t in level.terms if t not in dropped)}): collinear, or "
                "constant like the intercept. The variances of their random effects cannot be told "
                "apart; remove them from the random term."
            )


def _constant_within_groups(level: RandomLevel, columns: list[int]) -> np.ndarray:
    """Whether each of the random-effect ``columns`` is constant within every group of several
    rows (relative to the column's size), when there is at least one such group."""
    several = level.n_rows > 1
    if not several.any():
        return np.zeros(len(columns), dtype=bool)
    g = level.group_index
    out = []
    for k in columns:  # a few slope columns; every operation is over the rows at once
        z = level.Z[:, k]
        mean = np.bincount(g, weights=z, minlength=level.n_groups) / np.maximum(level.n_rows, 1)
        spread = np.max(np.abs(z - mean[g]), initial=0.0)
        out.append(spread <= RANK_TOL * np.max(np.abs(z), initial=0.0))
    return np.array(out, dtype=bool)


def check_slopes_within_groups(frame: ModelFrame) -> None:
    """Refuse a random slope on a variable that is constant within every group of its level, when
    the level has a random intercept too.

    Raises
    ------
    DataError
        Naming the slope's column and the grouping factor.
    """
    for level in frame.levels:
        if "Intercept" not in level.terms:
            continue
        columns = [k for k, t in enumerate(level.terms) if t != "Intercept"]
        constant = _constant_within_groups(level, columns)
        slopes = [level.terms[k] for k, c in zip(columns, constant, strict=True) if c]
        if slopes:
            raise DataError(
                f"The random slope of {slopes[0]!r} of {level.name!r} is not identified: "
                f"{slopes[0]!r} is constant within every group of {level.name!r}, so in each group "
                "its random effect adds the same amount to every row, as the random intercept does, "
                "and the variances of the two cannot be told apart. Keep it in the fixed part (a "
                f"group-level effect) and remove it from the '( ... | {level.name})' term."
            )


def _group_columns(level: RandomLevel, k: int) -> np.ndarray:
    """``(n, G)``: the random-effect column ``k`` of each group, zero outside it."""
    out = np.zeros((len(level.group_index), level.n_groups))
    out[np.arange(len(level.group_index)), level.group_index] = level.Z[:, k]
    return out


def _in_span(Q: np.ndarray, E: np.ndarray) -> bool:
    """Whether every column of ``E`` lies in the span of the orthonormal columns ``Q``."""
    E = unit_columns(E)
    residual = E - Q @ (Q.T @ E)
    return bool(np.all(np.sqrt((residual**2).sum(axis=0)) <= RANK_TOL))


def check_confounding(frame: ModelFrame) -> None:
    """Refuse random effects whose columns, group by group, are all fixed-effect columns too.

    Only a level with at most as many groups as fixed effects can be confounded so (its groups'
    columns are linearly independent), so the check is cheap.

    Raises
    ------
    DataError
        Naming the level, the random term and the fixed-part variables of its grouping factor.
    """
    candidates = [level for level in frame.levels if level.n_groups <= frame.X.shape[1]]
    if not candidates:
        return
    Q, _ = np.linalg.qr(unit_columns(frame.X))
    for level in candidates:
        for k, term in enumerate(level.terms):
            if _in_span(Q, _group_columns(level, k)):
                _raise_confounded(frame, level, term)


def _raise_confounded(frame: ModelFrame, level: RandomLevel, term: str) -> None:
    shared = [c for c in group_columns_of(level.name) if c in variables_of(frame.parsed.fixed)]
    where = (
        f"the fixed part has {', '.join(map(repr, shared))}, whose columns"
        if shared
        else "the fixed-effect columns"
    )
    effect = "intercept" if term == "Intercept" else f"slope of {term!r}"
    raise DataError(
        f"The random {effect} of {level.name!r} is not identified: {where} already give every one "
        f"of its {level.n_groups} groups its own {effect}, so the variance of these random effects "
        f"cannot be estimated. Remove {' or '.join(map(repr, shared)) or 'those columns'} from the "
        "fixed part, or the random term."
    )


def _weighted_residual(frame: ModelFrame) -> np.ndarray:
    """The residual of a weighted least-squares fit of the fixed part, times the square roots of
    the level-1 weights."""
    root = np.sqrt(frame.weight1)
    y = frame.y * root
    Q, _ = np.linalg.qr(unit_columns(frame.X * root[:, None]))
    return y - Q @ (Q.T @ y)


def check_fixed_interpolation(frame: ModelFrame) -> None:
    """Refuse a linear model whose fixed part alone reproduces the response.

    Raises
    ------
    DataError
        If the weighted least-squares residual is numerically 0 relative to the response.
    """
    centred = (frame.y - np.average(frame.y, weights=frame.weight1)) * np.sqrt(frame.weight1)
    if np.linalg.norm(_weighted_residual(frame)) <= RANK_TOL * np.linalg.norm(centred):
        raise DataError(
            f"The fixed effects reproduce the response {frame.parsed.response!r} exactly (it is a "
            f"linear combination of {', '.join(map(repr, frame.fixed_names))}): the residual "
            "variance is 0, so the likelihood is unbounded and nothing is left for the random "
            "effects. Check that the response is not computed from the covariates."
        )


def check_residual_variance(frame: ModelFrame, sigma2: float) -> None:
    """Refuse a linear fit whose residual variance is numerically 0: the fixed and random effects
    reproduce the response exactly (e.g. it is a covariate plus a group effect).

    Raises
    ------
    DataError
        If ``sigma2`` is below :data:`RESIDUAL_TOL` of the variance the fixed part leaves.
    """
    residual = _weighted_residual(frame)
    left = float(residual @ residual) / float(frame.weight1.sum())
    if not sigma2 > RESIDUAL_TOL * left:
        raise DataError(
            f"The model reproduces the response {frame.parsed.response!r} exactly: its residual "
            f"variance is {sigma2:.3g}, {sigma2 / left if left > 0 else 0:.1e} of the variance "
            "around the fixed effects, i.e. 0 up to rounding. The likelihood is then unbounded and "
            "the variance components and standard errors are not estimable; check that the "
            "response is not computed from the covariates and groups."
        )


def check_top_level_groups(frame: ModelFrame) -> None:
    """Refuse a model with a single top-level group, whatever the family and the depth.

    Standard errors are robust (sandwich) ones, clustered on the top-level groups: with one
    group the meat is the one group's score, which is zero at the optimum, and ``G / (G - 1)``
    divides by zero, so the SEs would be 0 (p = 0) or undefined. The top level's variance is not
    identified either: one group has one random effect, which the intercept absorbs.

    Raises
    ------
    DataError
        Naming the top grouping factor, its level and its one group.
    """
    top = frame.top
    if top.n_groups < 2:
        label = top.labels[0] if top.n_groups else None
        raise DataError(
            f"Robust standard errors need at least 2 top-level groups (ideally many); {top.name!r} "
            f"(level {top.number}) has a single group ({str(label)!r}), whose random effect the "
            f"intercept absorbs. Drop the '( ... | {top.name})' term, or fit data with more groups."
        )
