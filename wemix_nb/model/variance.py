"""The random-effect (co)variances of a fit as one value, and every table built from it.

A :class:`VarianceComponents` holds, per grouping level, the covariance matrix ``Sigma_l`` of its
random effects and the standard errors of its free entries (the variances, and the covariances
inside each bar), the covariance matrix of all free entries (``var_theta``, in theta's order), and
for linear models the residual variance and its standard error. Estimators' results are turned into
one by :mod:`wemix_nb.results.assemble`; reports, Wald tests, R^2, plausible values and the notebook
layer read it, never ``varDF``.

Every parameter has one name (:func:`~wemix_nb.model.covariance.parameter_name`, WeMix's
``"Subject.Days"``, ``"Subject.Days.Intercept"``, ``"Residual"``) used by ``vars``, ``varDF``,
``var_theta``, theta and the Wald tests, and one display label shown under its group
(:func:`~wemix_nb.model.covariance.parameter_label`, ``"Intercept × Days"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemix_nb.model.covariance import block_cholesky, parameter_label, parameter_name
from wemix_nb.model.frame import RandomLevel

__all__ = ["RESIDUAL", "VARDF_COLUMNS", "VarianceComponents", "VarianceLevel", "VarianceParameter"]

#: name, group and label of the residual variance of a linear model
RESIDUAL = "Residual"
#: columns of WeMix's ``varDF``
VARDF_COLUMNS = ["grp", "var1", "var2", "vcov", "ngrp", "level", "SEvcov", "fullGroup"]
#: columns of the tidy table (:meth:`VarianceComponents.tidy`)
TIDY_COLUMNS = ["level", "group", "term1", "term2", "kind", "estimate", "std_error", "std_dev", "correlation"]


def _frozen(values, ndim: int) -> np.ndarray:
    """A read-only float copy of ``values`` with ``ndim`` dimensions."""
    array = np.array(values, dtype=float, ndmin=ndim)
    array.setflags(write=False)
    return array


def _correlation(sigma: np.ndarray) -> np.ndarray:
    """Correlation matrix of a covariance matrix (NaN where a variance is 0)."""
    sd = np.sqrt(np.clip(np.diag(sigma), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return sigma / np.outer(sd, sd)


@dataclass(frozen=True)
class VarianceParameter:
    """One random-effect variance or covariance, or the residual variance.

    Attributes
    ----------
    name
        Its name (``"Subject.Days"``, ``"Subject.Days.Intercept"``, ``"Residual"``).
    label
        Its display label under its group (``"Days"``, ``"Intercept × Days"``, ``"Residual"``).
    group
        The grouping factor (``"Residual"`` for the residual variance).
    level
        The hierarchy level (2 for the lowest grouping level, 1 for the residual).
    term1, term2
        WeMix's ``var1``/``var2``: the term of a variance (``term2`` is ``None``), the earlier and the
        later term of a covariance (formula order); both ``None`` for the residual.
    estimate
        The estimated variance or covariance.
    std_error
        Its robust standard error (NaN when unknown).
    correlation
        For a covariance, the correlation of its two random effects; NaN otherwise.
    n_groups
        Number of groups at the level (rows, for the residual).
    """

    name: str
    label: str
    group: str
    level: int
    term1: str | None
    term2: str | None
    estimate: float
    std_error: float
    correlation: float
    n_groups: int

    @property
    def kind(self) -> str:
        """``"variance"`` or ``"covariance"``."""
        return "variance" if self.term2 is None else "covariance"

    @property
    def std_dev(self) -> float:
        """Square root of a variance (NaN for a covariance)."""
        return math.sqrt(max(self.estimate, 0.0)) if self.term2 is None else float("nan")

    @property
    def full_label(self) -> str:
        """The label with its group: ``"Subject: Intercept × Days"``; ``"Residual"``."""
        return self.group if self.group == RESIDUAL else f"{self.group}: {self.label}"


@dataclass(frozen=True, eq=False)
class VarianceLevel:
    """The random-effect covariance matrix of one grouping level.

    Attributes
    ----------
    number
        The hierarchy level (2 for the grouping factor with the most groups).
    group
        The grouping factor.
    n_groups
        Its number of groups.
    terms
        The random-effect terms (``q`` of them).
    blocks
        The terms of each bar; effects of different bars are uncorrelated (their covariance is not
        a parameter).
    sigma
        ``(q, q)`` covariance matrix ``Sigma_l`` (read-only; made exactly symmetric from the upper
        triangle of the matrix given).
    std_errors
        Standard error of each free entry, in :attr:`free`'s order (read-only).
    """

    number: int
    group: str
    n_groups: int
    terms: tuple[str, ...]
    blocks: tuple[tuple[int, ...], ...]
    sigma: np.ndarray
    std_errors: np.ndarray

    def __post_init__(self) -> None:
        # exactly symmetric, from the upper triangle (what WeMix's varDF reports): a computed
        # Lambda Lambda' may differ between its triangles in the last bit
        sigma = np.asarray(self.sigma, dtype=float)
        object.__setattr__(self, "sigma", _frozen(np.triu(sigma) + np.triu(sigma, 1).T, 2))
        object.__setattr__(self, "std_errors", _frozen(self.std_errors, 1))
        q = len(self.terms)
        if self.sigma.shape != (q, q) or self.std_errors.shape != (len(self.free),):
            raise ValueError(
                f"Level {self.group!r}: Sigma is {self.sigma.shape} and has {self.std_errors.size} "
                f"standard error(s) for {q} term(s) with {len(self.free)} free entries."
            )

    @property
    def free(self) -> tuple[tuple[int, int], ...]:
        """``(row, col)`` of the free entries, in theta's order: per bar, the lower triangle column
        by column."""
        return tuple((row, col) for block in self.blocks for i, col in enumerate(block) for row in block[i:])

    def parameters(self) -> list[VarianceParameter]:
        """The free entries as parameters, in theta's order."""
        corr = _correlation(self.sigma)
        out = []
        for (row, col), se in zip(self.free, self.std_errors, strict=True):
            first, second = min(row, col), max(row, col)
            out.append(
                VarianceParameter(
                    name=parameter_name(self.group, self.terms, row, col),
                    label=parameter_label(self.terms, row, col),
                    group=self.group,
                    level=self.number,
                    term1=self.terms[first],
                    term2=None if row == col else self.terms[second],
                    estimate=float(self.sigma[row, col]),
                    std_error=float(se),
                    correlation=float("nan") if row == col else float(corr[first, second]),
                    n_groups=self.n_groups,
                )
            )
        return out

    def factor(self, scale: float = 1.0) -> np.ndarray:
        """Lower-triangular ``Lambda`` with ``scale * Lambda Lambda' = Sigma`` (diagonal >= 0)."""
        return block_cholesky(self.sigma / scale, self.blocks)


def _wemix_order(parameter: VarianceParameter, position: int) -> tuple:
    """Sort key of WeMix's ``varDF``: levels up, variances in term order, then the covariances."""
    return (parameter.level, parameter.term2 is not None, position)


@dataclass(frozen=True, eq=False)
class VarianceComponents:
    """The random-effect (co)variances of a fit (and the residual variance of a linear model).

    Attributes
    ----------
    levels
        One :class:`VarianceLevel` per grouping level, level 2 first.
    cov
        ``(k, k)`` covariance matrix of the free entries of all levels, in theta's order
        (``var_theta``; read-only).
    residual
        The residual variance ``sigma^2`` (``None`` for GLMMs).
    residual_se
        Its standard error (NaN when unknown or ``residual`` is ``None``).
    n_obs
        Number of rows (WeMix's ``ngrp`` of the residual; 0 for GLMMs).

    Notes
    -----
    The views -- :attr:`vars`, :attr:`varDF`, :attr:`var_theta`, :meth:`tidy`, :meth:`terms_table`,
    :attr:`estimates`, :attr:`covariances` -- are built from these fields on each call.
    """

    levels: tuple[VarianceLevel, ...]
    cov: np.ndarray
    residual: float | None = None
    residual_se: float = float("nan")
    n_obs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        object.__setattr__(self, "cov", _frozen(self.cov, 2).reshape(self.size, self.size))

    @classmethod
    def build(
        cls,
        levels: Sequence[RandomLevel],
        covariances: Sequence[np.ndarray],
        std_errors: np.ndarray,
        cov: np.ndarray,
        residual: float | None = None,
        residual_se: float = float("nan"),
        n_obs: int = 0,
    ) -> VarianceComponents:
        """The value of a fit of a model frame's random levels.

        Parameters
        ----------
        levels
            The model frame's random levels, level 2 first.
        covariances
            ``Sigma_l`` of each level.
        std_errors
            Standard errors of the free entries of all levels, in theta's order.
        cov
            Covariance matrix of those free entries (theta's order).
        residual, residual_se, n_obs
            Linear models: the residual variance, its standard error and the number of rows.
        """
        std_errors = np.asarray(std_errors, dtype=float)
        out, start = [], 0
        for level, sigma in zip(levels, covariances, strict=True):
            blocks = tuple(tuple(int(i) for i in block) for block in level.blocks)
            k = sum(len(block) * (len(block) + 1) // 2 for block in blocks)
            out.append(
                VarianceLevel(
                    number=int(level.number),
                    group=str(level.name),
                    n_groups=int(level.n_groups),
                    terms=tuple(str(t) for t in level.terms),
                    blocks=blocks,
                    sigma=sigma,
                    std_errors=std_errors[start : start + k],
                )
            )
            start += k
        residual = None if residual is None else float(residual)
        return cls(tuple(out), cov, residual, float(residual_se), int(n_obs))

    # -- the parameters ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of free entries (theta's length)."""
        return sum(len(level.free) for level in self.levels)

    @property
    def names(self) -> list[str]:
        """Names of the free entries, in theta's order (``var_theta``'s index)."""
        return [p.name for p in self.parameters()]

    def parameters(self) -> list[VarianceParameter]:
        """The free entries of all levels, in theta's order (no residual)."""
        return [p for level in self.levels for p in level.parameters()]

    def residual_parameter(self) -> VarianceParameter | None:
        """The residual variance as a parameter (``None`` for GLMMs)."""
        if self.residual is None:
            return None
        return VarianceParameter(
            name=RESIDUAL,
            label=RESIDUAL,
            group=RESIDUAL,
            level=1,
            term1=None,
            term2=None,
            estimate=self.residual,
            std_error=self.residual_se,
            correlation=float("nan"),
            n_groups=self.n_obs,
        )

    def table_parameters(self) -> list[VarianceParameter]:
        """All parameters in WeMix's ``varDF`` order: levels up, per level the variances then the
        covariances, the residual last."""
        free = self.parameters()
        order = sorted(range(len(free)), key=lambda j: _wemix_order(free[j], j))
        ordered = [free[j] for j in order]
        residual = self.residual_parameter()
        return ordered if residual is None else [*ordered, residual]

    @property
    def estimates(self) -> pd.Series:
        """The free entries' estimates, in theta's order (what a Wald test of ``Lambda`` tests)."""
        free = self.parameters()
        return pd.Series(
            [p.estimate for p in free], index=[p.name for p in free], name="estimate", dtype=float
        )

    @property
    def std_errors(self) -> pd.Series:
        """The free entries' standard errors, in theta's order."""
        free = self.parameters()
        return pd.Series(
            [p.std_error for p in free], index=[p.name for p in free], name="std_error", dtype=float
        )

    @property
    def labels(self) -> dict[str, str]:
        """Name -> label with its group (``"Subject.Days.Intercept"`` -> ``"Subject: Intercept × Days"``)."""
        return {p.name: p.full_label for p in self.table_parameters()}

    @property
    def covariances(self) -> list[np.ndarray]:
        """``Sigma_l`` per level, level 2 first."""
        return [level.sigma for level in self.levels]

    @property
    def random_total(self) -> float:
        """Sum of the random-effect variances of all levels (the numerator of the ICC)."""
        return sum(np.trace(level.sigma) for level in self.levels)

    # -- WeMix's attributes ------------------------------------------------------------------------

    @property
    def vars(self) -> pd.Series:
        """The variances (and ``"Residual"``), named by the naming rule (WeMix's ``vars``)."""
        values = {
            parameter_name(level.group, level.terms, a, a): level.sigma[a, a]
            for level in self.levels
            for a in range(len(level.terms))
        }
        if self.residual is not None:
            values[RESIDUAL] = self.residual
        return pd.Series(values, name="vars")

    @property
    def varDF(self) -> pd.DataFrame:
        """WeMix's ``varDF``: grp, var1, var2, vcov, ngrp, level, SEvcov, fullGroup."""
        rows = [
            (
                p.group,
                p.term1,
                p.term2,
                p.estimate,
                p.n_groups,
                p.level,
                p.std_error,
                RESIDUAL if p.term1 is None else f"{p.group}.{p.term1}",  # WeMix: grp.var1
            )
            for p in self.table_parameters()
        ]
        return pd.DataFrame(rows, columns=VARDF_COLUMNS)

    @property
    def var_theta(self) -> pd.DataFrame:
        """Covariance matrix of the free entries' estimates, labelled by their names."""
        names = self.names
        return pd.DataFrame(np.array(self.cov), index=names, columns=names)

    # -- tables ------------------------------------------------------------------------------------

    def tidy(self) -> pd.DataFrame:
        """One row per parameter (WeMix's order): level, group, term1, term2, kind, estimate,
        std_error, std_dev, correlation."""
        rows = [
            (p.level, p.group, p.term1, p.term2, p.kind, p.estimate, p.std_error, p.std_dev, p.correlation)
            for p in self.table_parameters()
        ]
        return pd.DataFrame(rows, columns=TIDY_COLUMNS)

    def terms_table(self, with_residual: bool = True) -> pd.DataFrame:
        """WeMix's ``Variance terms`` table: Level, Group, Name, Variance, Std. Error, Std.Dev.,
        Corr<j>.

        Levels from the top down, one row per random effect; ``Corr<j>`` of effect ``i`` (j < i) is
        the correlation of effects ``i`` and ``j`` of that level (for GLMMs too: WeMix prints
        correlations of sampling errors there, which is a bug not copied here). The residual comes
        last when ``with_residual`` and the value has one.
        """
        n_corr = max([len(level.terms) for level in self.levels] + [1]) - 1
        corr_columns = [f"Corr{j + 1}" for j in range(n_corr)]
        rows = []
        for level in sorted(self.levels, key=lambda lv: -lv.number):
            corr = _correlation(level.sigma)
            se = {(r, c): s for (r, c), s in zip(level.free, level.std_errors, strict=True)}
            for i, term in enumerate(level.terms):
                variance = float(level.sigma[i, i])
                row = [
                    level.number,
                    level.group,
                    term,
                    variance,
                    float(se[(i, i)]),
                    math.sqrt(max(variance, 0)),
                ]
                rows.append(row + [corr[i, j] if j < i else np.nan for j in range(n_corr)])
        residual = self.residual_parameter()
        if with_residual and residual is not None:
            row = [1, RESIDUAL, "", residual.estimate, residual.std_error, residual.std_dev]
            rows.append(row + [np.nan] * n_corr)
        columns = ["Level", "Group", "Name", "Variance", "Std. Error", "Std.Dev.", *corr_columns]
        return pd.DataFrame(rows, columns=columns)

    # -- theta -------------------------------------------------------------------------------------

    def theta(self, scale: float = 1.0) -> np.ndarray:
        """Theta (diagonal >= 0) of these covariances: ``scale * Lambda_l Lambda_l' = Sigma_l``.

        ``scale`` is ``sigma^2`` for a linear model (its theta is relative to the residual standard
        deviation) and 1 for a GLMM.
        """
        entries = []
        for level in self.levels:
            lam = level.factor(scale)
            entries += [lam[row, col] for row, col in level.free]
        return np.array(entries, dtype=float)

    def covariances_of(self, theta: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """``scale * Lambda_l Lambda_l'`` per level for a theta laid out like this value's entries."""
        theta = np.asarray(theta, dtype=float)
        out, start = [], 0
        for level in self.levels:
            q = len(level.terms)
            rows, cols = np.array(level.free, dtype=int).reshape(-1, 2).T
            lam = np.zeros((q, q))
            lam[rows, cols] = theta[start : start + len(rows)]
            start += len(rows)
            out.append(scale * lam @ lam.T)
        return out

    def with_estimates(
        self,
        estimates: np.ndarray,
        std_errors: np.ndarray,
        cov: np.ndarray,
        residual: float | None = None,
        residual_se: float = float("nan"),
    ) -> VarianceComponents:
        """The same parameters with other values (e.g. combined over plausible values).

        ``estimates``, ``std_errors`` and ``cov`` are laid out in theta's order.
        """
        estimates = np.asarray(estimates, dtype=float)
        std_errors = np.asarray(std_errors, dtype=float)
        levels, start = [], 0
        for level in self.levels:
            k = len(level.free)
            sigma = np.zeros_like(level.sigma)
            for (row, col), value in zip(level.free, estimates[start : start + k], strict=True):
                sigma[row, col] = sigma[col, row] = value
            levels.append(
                VarianceLevel(
                    level.number,
                    level.group,
                    level.n_groups,
                    level.terms,
                    level.blocks,
                    sigma,
                    std_errors[start : start + k],
                )
            )
            start += k
        return VarianceComponents(tuple(levels), cov, residual, float(residual_se), self.n_obs)
