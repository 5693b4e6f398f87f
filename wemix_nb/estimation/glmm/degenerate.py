"""Degenerate GLMMs whose pseudo-likelihood has no finite maximum, or only a spurious one.

Group-level separation
    When every level-2 group of a binomial model has a constant outcome (all 0 or all 1), the
    pseudo-likelihood keeps increasing as the random-effect variance grows, towards the
    likelihood of a model of the groups' outcomes alone: no finite estimate exists. The
    quadrature then loses accuracy (the posterior of a constant group is one-sided) and stops at
    a variance that depends on ``nquad`` (5e3 to 6e5 on one example), with an lnl above the true
    supremum. :func:`check_group_separation` refuses such a model before fitting.
Groups of one binary row
    When every level-2 group has a single row and the outcome is binary (no trials, or one trial
    per row), each group's random effect only blurs one Bernoulli probability: the marginal
    probability is the link's mean over the random effect, another smooth function of the fixed
    effects, so the variance and the fixed effects trade off and the variance is not identified
    (as the residual variance and a level-2 variance are not, for a linear model).
    :func:`check_single_row_groups` refuses it. A Poisson model (or a binomial one with several
    trials per row) is identified: its counts' variance beyond the mean is the variance of the
    random effects (an observation-level random effect for overdispersion).
Few top-level groups
    With fewer than :data:`FEW_TOP_GROUPS` top-level groups, the top level's variance is estimated
    from that many random effects (barely identified: with 2 groups, equivalent weightings of the
    same data put it at 0.1 or at 150), and the robust standard errors, clustered on those groups,
    rest on that many independent scores. :func:`warn_few_top_groups` says so at fit time.
A variance running away
    When most groups are constant, a finite optimum may exist but lies at a latent standard
    deviation so large that the quadrature is unreliable (estimates move with ``nquad``), or the
    optimiser stops on the way to infinity. :func:`variance_runaway` flags a fit whose random
    part has a latent SD beyond :data:`RUNAWAY_SD` on the link scale (a logit SD of 10 puts the
    odds of two groups 2 SDs apart at a ratio of e^40); such a fit is reported as not converged,
    as lme4 warns about it.
"""

from __future__ import annotations

import warnings

import numpy as np

from wemix_nb.errors import DataError, NumericalWarning, user_stacklevel
from wemix_nb.estimation.families import Family
from wemix_nb.model.frame import ModelFrame

#: fewer top-level groups than this leave the top variance and the robust SEs unreliable
FEW_TOP_GROUPS = 5

#: latent SD (link scale) of a level's random part beyond which the variance is running away
RUNAWAY_SD = {"logit": 10.0, "probit": 6.0, "log": 10.0}


def _constant_groups(frame: ModelFrame, family: Family) -> np.ndarray:
    """Per level-2 group: True if its outcome is constant at a boundary (binomial: all 0 or all
    1, rows with zero trials ignored; poisson: all 0)."""
    level = frame.levels[0]
    y = np.asarray(frame.y, dtype=float)
    used = np.ones(len(y), bool) if frame.trials is None else frame.trials > 0
    g = level.group_index[used]
    lo = np.full(level.n_groups, np.inf)
    hi = np.full(level.n_groups, -np.inf)
    np.minimum.at(lo, g, y[used])
    np.maximum.at(hi, g, y[used])
    boundary = (hi == 0.0) if family.name == "poisson" else ((hi == 0.0) | (lo == 1.0))
    return boundary & (lo == hi)


def check_group_separation(frame: ModelFrame, family: Family) -> None:
    """Refuse a binomial model in which every level-2 group has a constant outcome.

    Raises
    ------
    DataError
        Naming the grouping factor.
    """
    if family.name != "binomial":
        return
    constant = _constant_groups(frame, family)
    if constant.all():
        level = frame.levels[0]
        raise DataError(
            f"Every group of {level.name!r} (level 2, {level.n_groups} groups) has a constant "
            "outcome (all 0 or all 1): the pseudo-likelihood keeps increasing as the variance of "
            f"its random effects grows, so no finite estimate exists (separation at the group "
            f"level). Model the groups' outcome at the group level, or drop the '( ... | "
            f"{level.name})' term."
        )


def check_single_row_groups(frame: ModelFrame, family: Family) -> None:
    """Refuse a binomial model of binary rows whose level-2 groups all have one row.

    Raises
    ------
    DataError
        Naming the grouping factor.
    """
    level = frame.levels[0]
    if family.name != "binomial" or not level.n_groups or not np.all(level.n_rows == 1):
        return
    if frame.trials is not None and np.any(frame.trials > 1):
        return  # several trials in a row: the variance between rows is identified
    raise DataError(
        f"Every group of {level.name!r} (level 2) has a single row ({level.n_groups} groups) and "
        "the outcome is binary: one Bernoulli outcome per group says nothing about how groups "
        "vary beyond the fixed effects, so the variance of its random effects is not identified. "
        f"Drop the '( ... | {level.name})' term or group the rows at a coarser level."
    )


def warn_few_top_groups(frame: ModelFrame) -> None:
    """A :class:`NumericalWarning` when the top level has fewer than :data:`FEW_TOP_GROUPS`
    groups (at least 2: one group is refused)."""
    top = frame.top
    if top.n_groups < FEW_TOP_GROUPS:
        warnings.warn(
            f"The top level {top.name!r} (level {top.number}) has only {top.n_groups} groups: the "
            "variance of its random effects is barely identified, so equivalent data or start "
            "values can give very different estimates of it, and the robust standard errors, "
            f"clustered on those {top.n_groups} groups, are unreliable. Model {top.name!r} as a "
            "fixed effect instead, or fit data with more top-level groups.",
            NumericalWarning,
            stacklevel=user_stacklevel(),
        )


def variance_runaway(frame: ModelFrame, family: Family, covariances: list[np.ndarray]) -> str | None:
    """A message if a level's random part has a latent SD beyond :data:`RUNAWAY_SD`, else None.

    The latent SD of level ``l`` is the root mean square over rows of ``sqrt(z_i' Sigma_l z_i)``,
    the SD its random effects add to the linear predictor (invariant to rescaling the columns
    of ``Z``).
    """
    limit = RUNAWAY_SD.get(family.link, 10.0)
    for level, sigma in zip(frame.levels, covariances, strict=True):
        if not len(level.Z):  # a frame without its rows (Dask): nothing to measure here
            continue
        sd = float(np.sqrt(np.mean(np.einsum("na,ab,nb->n", level.Z, sigma, level.Z))))
        if sd > limit:
            constant = _constant_groups(frame, family)
            return (
                f"the variance of {level.name!r} is running away (its random effects add an SD of "
                f"{sd:.3g} to the linear predictor, beyond {limit:g} on the {family.link} scale; "
                f"{int(constant.sum())} of the {constant.size} groups of {frame.levels[0].name!r} "
                "have a constant outcome): the likelihood keeps increasing towards infinite variance "
                "or its optimum is beyond what the quadrature resolves, and the estimates change "
                "with nquad"
            )
    return None
