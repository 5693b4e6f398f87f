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
A variance running away
    When most groups are constant, a finite optimum may exist but lies at a latent standard
    deviation so large that the quadrature is unreliable (estimates move with ``nquad``), or the
    optimiser stops on the way to infinity. :func:`variance_runaway` flags a fit whose random
    part has a latent SD beyond :data:`RUNAWAY_SD` on the link scale (a logit SD of 10 puts the
    odds of two groups 2 SDs apart at a ratio of e^40); such a fit is reported as not converged,
    as lme4 warns about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wemix_nb.errors import DataError
from wemix_nb.estimation.families import Family
from wemix_nb.model.frame import ModelFrame

#: latent SD (link scale) of a level's random part beyond which the variance is running away
RUNAWAY_SD = {"logit": 10.0, "probit": 6.0, "log": 10.0}


@dataclass(frozen=True)
class OutcomeSummary:
    """What the checks of this module need of the rows, as sums that partitions of the rows add up
    (a Dask fit's frame holds no rows: its partitions summarise theirs).

    Attributes
    ----------
    constant
        ``(G2,)`` per level-2 group, whether its outcome is constant at a boundary (binomial: all
        0 or all 1, rows with zero trials ignored; poisson: all 0).
    zz
        Per level, ``(q, q)`` the sum over the rows of ``z z'``.
    n
        The number of rows.
    several_trials
        Whether a row has more than one trial (a ``cbind()`` response).
    """

    constant: np.ndarray
    zz: tuple[np.ndarray, ...]
    n: int
    several_trials: bool

    @classmethod
    def of(cls, frame: ModelFrame, family: Family) -> OutcomeSummary:
        """The summary of a frame's rows."""
        level = frame.levels[0]
        y = np.asarray(frame.y, dtype=float)
        used = np.ones(len(y)) if frame.trials is None else (frame.trials > 0).astype(float)
        g = level.group_index
        # outcomes in [0, inf) (counts) or [0, 1] (proportions): all 0 iff their sum is 0
        zeros = np.bincount(g, weights=used * y, minlength=level.n_groups) == 0
        if family.name == "poisson":
            constant = zeros
        else:
            constant = zeros | (np.bincount(g, weights=used * (1.0 - y), minlength=level.n_groups) == 0)
        constant &= np.bincount(g, weights=used, minlength=level.n_groups) > 0
        zz = tuple(lv.Z.T @ lv.Z for lv in frame.levels)
        several = frame.trials is not None and bool(np.any(frame.trials > 1))
        return cls(constant, zz, frame.n, several)

    @classmethod
    def combine(cls, parts: list[OutcomeSummary], order: np.ndarray) -> OutcomeSummary:
        """The summary of the rows of several partitions of whole level-2 groups; ``order`` takes
        their concatenated groups to the whole frame's group order."""
        constant = np.concatenate([part.constant for part in parts])[order]
        zz = tuple(sum(part.zz[k] for part in parts) for k in range(len(parts[0].zz)))
        n = sum(part.n for part in parts)
        return cls(constant, zz, n, any(part.several_trials for part in parts))


def check_group_separation(frame: ModelFrame, family: Family, outcome: OutcomeSummary) -> None:
    """Refuse a binomial model in which every level-2 group has a constant outcome.

    Raises
    ------
    DataError
        Naming the grouping factor.
    """
    if family.name != "binomial":
        return
    if outcome.constant.all():
        level = frame.levels[0]
        raise DataError(
            f"Every group of {level.name!r} (level 2, {level.n_groups} groups) has a constant "
            "outcome (all 0 or all 1): the pseudo-likelihood keeps increasing as the variance of "
            f"its random effects grows, so no finite estimate exists (separation at the group "
            f"level). Model the groups' outcome at the group level, or drop the '( ... | "
            f"{level.name})' term."
        )


def check_single_row_groups(frame: ModelFrame, family: Family, outcome: OutcomeSummary) -> None:
    """Refuse a binomial model of binary rows whose level-2 groups all have one row.

    Raises
    ------
    DataError
        Naming the grouping factor.
    """
    level = frame.levels[0]
    if family.name != "binomial" or not level.n_groups or not np.all(level.n_rows == 1):
        return
    if outcome.several_trials:
        return  # several trials in a row: the variance between rows is identified
    raise DataError(
        f"Every group of {level.name!r} (level 2) has a single row ({level.n_groups} groups) and "
        "the outcome is binary: one Bernoulli outcome per group says nothing about how groups "
        "vary beyond the fixed effects, so the variance of its random effects is not identified. "
        f"Drop the '( ... | {level.name})' term or group the rows at a coarser level."
    )


def variance_runaway(
    frame: ModelFrame, family: Family, covariances: list[np.ndarray], outcome: OutcomeSummary
) -> str | None:
    """A message if a level's random part has a latent SD beyond :data:`RUNAWAY_SD`, else None.

    The latent SD of level ``l`` is the root mean square over rows of ``sqrt(z_i' Sigma_l z_i)``,
    the SD its random effects add to the linear predictor (invariant to rescaling the columns
    of ``Z``): ``sqrt(sum(Sigma_l * sum_i z_i z_i') / n)``.
    """
    limit = RUNAWAY_SD.get(family.link, 10.0)
    if not outcome.n:
        return None
    for level, sigma, zz in zip(frame.levels, covariances, outcome.zz, strict=True):
        sd = float(np.sqrt(max(np.sum(sigma * zz), 0.0) / outcome.n))
        if sd > limit:
            constant = outcome.constant
            return (
                f"the variance of {level.name!r} is running away (its random effects add an SD of "
                f"{sd:.3g} to the linear predictor, beyond {limit:g} on the {family.link} scale; "
                f"{int(constant.sum())} of the {constant.size} groups of {frame.levels[0].name!r} "
                "have a constant outcome): the likelihood keeps increasing towards infinite variance "
                "or its optimum is beyond what the quadrature resolves, and the estimates change "
                "with nquad"
            )
    return None
