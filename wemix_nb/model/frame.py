"""The model frame: from a formula, a DataFrame and weight columns to the arrays the estimators use.

:func:`build_model_frame` runs the stages in order: it checks the arguments and the columns,
drops unusable rows (missing values, zero weights), indexes the grouping factors and checks their
nesting, derives every level's weights (:mod:`~wemix_nb.model.weights`), centres covariates
(:mod:`~wemix_nb.model.centering`) and builds the designs (:mod:`~wemix_nb.model.design`). The
estimators only see the plain arrays of the resulting :class:`ModelFrame`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from wemix_nb.errors import (
    ArgumentError,
    ColumnNotFoundError,
    DataError,
    DroppedRowsWarning,
    FormulaError,
    WeightError,
)
from wemix_nb.model import weights as weight_rules
from wemix_nb.model.centering import Centering, CenteringRequest, center, centering_request
from wemix_nb.model.design import (
    OFFSET_COLUMN,
    categories_seen,
    fixed_design,
    offset_argument,
    offset_values,
    random_design,
    response,
    trials_response,
    without_unused_categories,
)
from wemix_nb.model.dtypes import check_exact_numbers, numpy_counterparts
from wemix_nb.model.formula import ParsedFormula, check_reserved_names, parse_formula, variables_of
from wemix_nb.model.identification import (
    check_confounding,
    check_random_designs,
    check_slopes_within_groups,
    check_top_level_groups,
)
from wemix_nb.model.levels import (
    LevelIndex,
    group_columns_of,
    index_levels,
    parent_indices,
    unit_parents,
)
from wemix_nb.model.sampling import SamplingDesign


@dataclass(frozen=True)
class RandomLevel:
    """One grouping level (level 2, 3, ...) of a nested model.

    Attributes
    ----------
    name
        The grouping factor, e.g. ``"school"`` or ``"school:class"``.
    number
        The level number: 2 for the factor with the most groups, ``L`` for the top.
    group_index
        ``(n,)`` integer index of each row's group, in ``0..n_groups-1``.
    labels
        ``(n_groups,)`` group labels, in index order.
    parent_index
        ``(n_groups,)`` index of each group's enclosing group one level up; ``None`` at the top.
    Z
        ``(n, q)`` random-effect design of this level.
    terms
        The ``q`` component names, e.g. ``["Intercept", "Days"]``.
    blocks
        Component indices of each bar; components of different bars are uncorrelated.
    weight
        ``(n_groups,)`` unconditional weight of each group.
    cond_weight
        ``(n_groups,)`` conditional weight: ``weight / weight of the parent`` (the top: ``weight``).
    n_rows
        ``(n_groups,)`` number of rows in each group.
    """

    name: str
    number: int
    group_index: np.ndarray
    labels: pd.Index
    parent_index: np.ndarray | None
    Z: np.ndarray
    terms: list[str]
    blocks: list[list[int]]
    weight: np.ndarray
    cond_weight: np.ndarray
    n_rows: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return len(self.labels)

    @property
    def q(self) -> int:
        """Number of random effects per group."""
        return self.Z.shape[1]


@dataclass(frozen=True)
class ModelFrame:
    """Everything the estimators need, as arrays, plus what ``predict`` needs to rebuild them.

    Attributes
    ----------
    parsed
        The parsed formula.
    y
        ``(n,)`` response (0/1 for a binomial response).
    X
        ``(n, p)`` fixed-effect design.
    fixed_names
        The ``p`` fixed-effect names.
    levels
        The grouping levels, from level 2 (most groups) to the top level ``L``.
    weight1
        ``(n,)`` unconditional level-1 weights.
    cond_weight1
        ``(n,)`` level-1 weights conditional on the level-2 group.
    weight_columns
        The weight columns, level 1 first (empty for unit weights; one column for level-1
        weights only, with every higher level weighted 1).
    row_index
        Labels of the rows used, in data order.
    n_dropped_missing, n_dropped_zero_weight
        Rows dropped for a missing value in a used column, then for a zero weight.
    fixed_spec
        formulaic's spec of the fixed part (to rebuild ``X`` on new data).
    random_specs
        ``{level name: formulaic specs of its bars}``.
    centering
        The means subtracted by centering.
    response_levels
        For a categorical binomial response: its (failure, success) values.
    categories
        The values each categorical covariate takes in the fit (to check new data).
    weight_scaling
        How the conditional weights were scaled within clusters (``"none"``, ``"cluster"``,
        ``"effective"``); the weights above are the scaled ones.
    sampling
        The first-stage sampling design of the top-level groups (strata, PSUs, fpc) for
        design-based standard errors; ``None``: every top-level group a PSU of one stratum.
    offset
        ``(n,)`` known part of the linear predictor (the formula's ``offset(...)`` terms plus the
        ``offset`` argument), or ``None``.
    offset_source
        Where the ``offset`` argument came from: its column name, :data:`OFFSET_COLUMN` for an
        array, or ``None`` (predictions on new data read the same column, or need the array
        again).
    trials
        ``(n,)`` numbers of trials of a binomial response given as ``cbind(successes,
        failures)`` (``y`` is then the proportion of successes), or ``None``.
    """

    parsed: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    fixed_names: list[str]
    levels: list[RandomLevel]
    weight1: np.ndarray
    cond_weight1: np.ndarray
    weight_columns: list[str]
    row_index: pd.Index
    n_dropped_missing: int
    n_dropped_zero_weight: int
    fixed_spec: object
    random_specs: dict[str, list[object]]
    centering: Centering
    response_levels: tuple | None = None
    categories: dict[str, tuple] = field(default_factory=dict)
    weight_scaling: str = "none"
    sampling: SamplingDesign | None = None
    offset: np.ndarray | None = None
    trials: np.ndarray | None = None
    offset_source: str | None = None

    @property
    def offset_columns(self) -> list[str]:
        """The data columns of the offsets (formula terms, and the ``offset`` argument's column)."""
        names = [v for expr in self.parsed.offsets for v in variables_of(expr)]
        if self.offset_source not in (None, OFFSET_COLUMN):
            names.append(self.offset_source)
        return list(dict.fromkeys(names))

    @property
    def covariate_columns(self) -> list[str]:
        """The data columns that predictions need: covariates of both parts, offsets and grouping
        columns."""
        names = variables_of(self.parsed.fixed) + self.offset_columns
        names += [v for bar in self.parsed.bars for v in variables_of(bar.expr)]
        names += [c for level in self.levels for c in group_columns_of(level.name)]
        return list(dict.fromkeys(names))

    @property
    def level1_weights_only(self) -> bool:
        """True when only the rows are weighted (one weight column; higher levels have weight 1)."""
        return len(self.weight_columns) == 1 and len(self.levels) > 0

    @property
    def y_less_offset(self) -> np.ndarray:
        """``y - offset``: what a linear model regresses on its design (``y`` without offset)."""
        return self.y if self.offset is None else self.y - self.offset

    @property
    def n(self) -> int:
        """Number of rows used."""
        return len(self.y)

    @property
    def n_levels(self) -> int:
        """``L``: 1 + the number of grouping levels."""
        return 1 + len(self.levels)

    @property
    def top(self) -> RandomLevel:
        """The top level."""
        return self.levels[-1]

    @property
    def Z(self) -> np.ndarray:
        """``(n, Q)`` random-effect design of all levels, level 2 first."""
        return np.hstack([level.Z for level in self.levels])


# ---------------------------------------------------------------------------------------------
# the stages


@dataclass(frozen=True)
class _Columns:
    """The data columns a model uses, by role."""

    parsed: ParsedFormula
    fixed: list[str]  # variables of the fixed part (with the response)
    random: list[str]  # variables of the random bars
    centering: CenteringRequest
    weights: list[str]  # level 1 first; empty for unit weights
    offset: str | None = None  # the offset argument's column (OFFSET_COLUMN for an array)

    @property
    def factors(self) -> list[str]:
        return self.parsed.factors

    @property
    def used(self) -> list[str]:
        groups = sorted({col for factor in self.factors for col in group_columns_of(factor)})
        offset = [] if self.offset in (None, OFFSET_COLUMN) else [self.offset]
        return list(
            dict.fromkeys(
                [*self.fixed, *self.random, *groups, *self.centering.columns, *self.weights, *offset]
            )
        )


def _model_columns(
    parsed: ParsedFormula, weights: Sequence[str] | None, cweights: bool, centering: CenteringRequest
) -> _Columns:
    """Read the formula's variables and check the types of the weight arguments."""
    fixed = variables_of(parsed.fixed_formula)
    random = sorted({v for bar in parsed.bars for v in variables_of(bar.expr)})
    if not isinstance(cweights, bool | np.bool_):
        raise ArgumentError(f"cweights must be True or False, got {cweights!r}.")
    if weights is not None and (isinstance(weights, str) or not all(isinstance(w, str) for w in weights)):
        raise ArgumentError(
            "weights must be a list of column names, level 1 first, e.g. ['w_student', 'w_school']."
        )
    return _Columns(parsed, fixed, random, centering, list(weights) if weights is not None else [])


def _check_columns(data: pd.DataFrame, columns: _Columns, unit_weights: bool) -> None:
    """The columns exist once each, the weights are numeric and match the levels, and
    ``center_group`` names grouping factors of the model."""
    parsed = columns.parsed
    check_reserved_names(parsed.response, data.columns, response=True)
    for expression in [parsed.fixed, *(bar.expr for bar in parsed.bars)]:
        check_reserved_names(expression, data.columns)
    used = columns.used
    duplicated = sorted({str(c) for c in data.columns[data.columns.duplicated()] if c in used})
    if duplicated:
        raise ArgumentError(f"The data have several columns named {', '.join(map(repr, duplicated))}.")
    available = ", ".join(map(str, data.columns[:20])) + ("..." if len(data.columns) > 20 else "")
    for names, what in [(columns.weights, "Weight column(s)"), (used, "Column(s) used by the model")]:
        missing = [col for col in names if col not in data.columns]
        if missing:
            raise ColumnNotFoundError(
                f"{what} {', '.join(map(repr, missing))} not in the data. Available columns: {available}"
            )
    weight_rules.check_weight_dtypes(data, columns.weights)
    factors = columns.factors
    for factor in columns.centering.factors:
        if factor.replace("/", ":") not in factors:
            raise ArgumentError(
                f"center_group names {factor!r}, which is not a grouping factor of the model "
                f"(grouping factors: {', '.join(map(repr, factors))})."
            )
    n_levels = 1 + len(factors)
    # one column: level-1 weights only, every higher level weighted 1 (lme4's weights=)
    if not unit_weights and len(columns.weights) not in (1, n_levels):
        raise WeightError(
            f"The model has {n_levels} levels (rows + {', '.join(map(repr, factors))}), so weights "
            f"needs {n_levels} column names, level 1 (rows) first, or 1 for level-1 weights only; got "
            f"{len(columns.weights)}: {columns.weights}."
        )


def _counts(counts: pd.Series) -> str:
    """``"'a': 3, 'b': 1"`` for the nonzero counts."""
    return ", ".join(f"{col!r}: {int(k)}" for col, k in counts.items() if k)


def _drop_rows(rows: pd.DataFrame, keep: np.ndarray, reason: str, detail: str) -> pd.DataFrame:
    dropped = int((~keep).sum())
    if dropped:
        # two frames above build_model_frame: the caller of the function that builds the frame
        warnings.warn(
            f"{dropped} row(s) with {reason} were removed ({detail}).", DroppedRowsWarning, stacklevel=5
        )
        rows = rows.loc[keep]
    return rows


@dataclass(frozen=True)
class _Rows:
    """The rows a model keeps, and how many were dropped for what."""

    rows: pd.DataFrame  # the used columns of the kept rows
    n_dropped_missing: int
    n_dropped_zero_weight: int


def _usable_rows(data: pd.DataFrame, columns: _Columns, offset_values=None) -> _Rows:
    """Drop the rows with a missing value in a used column, then those with a zero weight.

    Raises
    ------
    WeightError
        For an infinite or negative weight on a row with no missing value.
    DataError
        If no row is left.
    """
    if len(data) == 0:
        raise DataError("The data have no rows.")
    rows = data[columns.used]
    if offset_values is not None:  # an offset array joins the rows (a missing value drops its row)
        rows = rows.assign(**{OFFSET_COLUMN: offset_values})
    missing = rows.isna()
    keep = ~missing.any(axis=1).to_numpy()
    na_detail = _counts(missing.sum())
    rows = _drop_rows(rows, keep, "missing values in the model's columns", na_detail)
    zero_detail = ""
    if columns.weights:
        W = rows[columns.weights].to_numpy(dtype=float)
        weight_rules.check_weight_values(W, columns.weights, rows.index)
        zero_detail = _counts(pd.Series((W == 0).sum(axis=0), index=columns.weights))
        rows = _drop_rows(rows, (W > 0).all(axis=1), "a zero weight", zero_detail)
    n_missing = int((~keep).sum())
    n_zero = len(data) - n_missing - len(rows)
    if len(rows) == 0:
        reasons = []
        if n_missing:
            reasons.append(f"{n_missing} with missing values ({na_detail})")
        if n_zero:
            reasons.append(f"{n_zero} with a zero weight ({zero_detail})")
        raise DataError(
            f"No rows are left: all {len(data)} row(s) were removed, {'; '.join(reasons) or 'none given'}."
        )
    return _Rows(rows, n_missing, n_zero)


def _given_weights(rows: pd.DataFrame, columns: list[str], levels: list[LevelIndex]) -> list[np.ndarray]:
    """Each level's weights as given (rows, then each level's groups); unit weights without columns.

    Raises
    ------
    WeightError
        If a group weight is not constant within its groups.
    """
    if not columns:
        return [np.ones(len(rows))] + [np.ones(level.n_groups) for level in levels]
    W = rows[columns].to_numpy(dtype=float)
    if len(columns) == 1:  # level-1 weights only: every higher level has weight 1
        return [W[:, 0]] + [np.ones(level.n_groups) for level in levels]
    given = [W[:, 0]]
    for k, level in enumerate(levels, start=1):
        given.append(
            weight_rules.group_weight(
                W[:, k], level.index, level.labels, level=k + 1, column=columns[k], factor=level.factor
            )
        )
    return given


def _random_levels(
    rows: pd.DataFrame,
    parsed: ParsedFormula,
    levels: list[LevelIndex],
    parents: list[np.ndarray | None],
    unconditional: list[np.ndarray],
    conditional: list[np.ndarray],
) -> tuple[list[RandomLevel], dict[str, list[object]]]:
    """The :class:`RandomLevel` of each grouping factor and formulaic's specs of its bars."""
    random_levels, specs = [], {}
    for k, level in enumerate(levels):
        design = random_design(rows, parsed.bars, level.factor)
        specs[level.factor] = design.specs
        random_levels.append(
            RandomLevel(
                name=level.factor,
                number=k + 2,
                group_index=level.index,
                labels=level.labels,
                parent_index=parents[k],
                Z=design.Z,
                terms=design.terms,
                blocks=design.blocks,
                weight=unconditional[k + 1],
                cond_weight=conditional[k + 1],
                n_rows=np.bincount(level.index, minlength=level.n_groups),
            )
        )
    return random_levels, specs


# ---------------------------------------------------------------------------------------------
# the main entry point


def build_model_frame(
    formula: str,
    data: pd.DataFrame,
    weights: Sequence[str] | None,
    *,
    cweights: bool = False,
    center_group: Mapping[str, str] | None = None,
    center_grand: str | None = None,
    scale_weights: str = "none",
    binomial_response: bool = False,
    offset: str | np.ndarray | pd.Series | None = None,
    check_response: bool = True,
    check_rank: bool = True,
    drop_unused_categories: bool = True,
    level_order: Sequence[str] | None = None,
) -> ModelFrame:
    """Build the :class:`ModelFrame` of a model.

    Parameters
    ----------
    formula
        lme4-style formula, e.g. ``"y ~ x + (1 + x | school)"``.
    data
        The data; it is not modified.
    weights
        Weight column names, level 1 first (rows), then level 2, ... up to the top level. One
        column weights the rows only (every higher level has weight 1, lme4's ``weights=``).
        ``None`` means unit weights at every level.
    cweights
        True if the columns hold conditional weights (each level's weight given the level above).
    center_group
        ``{grouping factor: "~ x1 + x2"}``: subtract weighted group means.
    center_grand
        ``"~ x1 + x2"``: subtract weighted grand means.
    scale_weights
        ``"none"``, ``"cluster"`` or ``"effective"``: scale the conditional weights of every level
        below the top within their parent groups, counting only the rows kept (see
        :mod:`wemix_nb.model.weights`). Centering then uses the scaled level-1 weights, in the
        convention they were given in. Ignored with unit weights.
    binomial_response
        Recode a two-valued response (0/1, booleans, two-level categorical) to 0/1; a
        ``cbind(successes, failures)`` response (which needs it) becomes proportions and trials.
    offset
        A known term added to the linear predictor, besides the formula's ``offset(...)``: a
        column name, or one value per row of ``data`` (an array, or a Series aligned by index).
    check_response, check_rank
        Refuse a constant response / a rank-deficient fixed design.
    drop_unused_categories
        Drop categories that have no rows from categorical columns (as R does). A Dask
        partition keeps them, so that all partitions share one design.
    level_order
        The grouping factors from level 2 up, when decided elsewhere (a Dask partition may hold
        too few groups to tell the levels apart); by default ordered by their numbers of groups.

    Returns
    -------
    ModelFrame

    Raises
    ------
    ArgumentError, ColumnNotFoundError, WeightError, NestingError, FormulaError, DataError
        For unusable arguments or data; the message names the column, level or group.
    """
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    weight_rules.check_scaling_method(scale_weights)
    parsed = parse_formula(formula)
    if parsed.trials is not None and not binomial_response:
        raise FormulaError(
            f"The response {parsed.response!r} gives successes and failures, which needs family='binomial'."
        )
    offset_column, offset_array = offset_argument(offset, data)
    columns = replace(
        _model_columns(parsed, weights, cweights, centering_request(center_group, center_grand)),
        offset=offset_column,
    )
    _check_columns(data, columns, unit_weights=weights is None)
    kept = _usable_rows(data, columns, offset_array)
    # one reading of the columns: nullable / pyarrow / pd.NA-text dtypes as their NumPy counterparts
    rows = numpy_counterparts(kept.rows)
    check_exact_numbers(rows, dict.fromkeys([*columns.fixed, *columns.random]))

    levels = index_levels(rows, columns.factors, level_order)
    given = _given_weights(rows, columns.weights, levels)
    parents = parent_indices(levels)
    scaling = scale_weights if columns.weights else "none"  # unit weights stay unit weights
    if not cweights and len(columns.weights) > 1:
        weight_rules.warn_conditional_below_one(given, unit_parents(levels, parents), columns.weights)
    unconditional, conditional = weight_rules.level_weights(
        given, unit_parents(levels, parents), conditional=bool(cweights), scaling=scaling
    )

    work = without_unused_categories(rows) if drop_unused_categories else rows.copy()
    # WeMix centres with the level-1 weight column as passed (conditional or not), here as scaled
    centering = center(work, columns.centering, conditional[0] if cweights else unconditional[0])
    categories = categories_seen(work, [*columns.fixed, *columns.random], parsed.response)
    trials = None
    if parsed.trials is not None:
        (y, trials), response_levels = trials_response(work, parsed, check_constant=check_response), None
    else:
        y, response_levels = response(
            work, parsed.response, binomial=binomial_response, check_constant=check_response
        )
    fixed = fixed_design(work, parsed, check_rank=check_rank)
    random_levels, random_specs = _random_levels(work, parsed, levels, parents, unconditional, conditional)

    frame = ModelFrame(
        parsed=parsed,
        y=y,
        X=fixed.X,
        fixed_names=fixed.names,
        levels=random_levels,
        weight1=unconditional[0],
        cond_weight1=conditional[0],
        weight_columns=columns.weights,
        row_index=rows.index,
        n_dropped_missing=kept.n_dropped_missing,
        n_dropped_zero_weight=kept.n_dropped_zero_weight,
        fixed_spec=fixed.spec,
        random_specs=random_specs,
        centering=centering,
        response_levels=response_levels,
        categories=categories,
        weight_scaling=scaling,
        offset=offset_values(work, parsed, offset_column),
        trials=trials,
        offset_source=offset_column,
    )
    if check_rank:  # a Dask partition may hold too few rows to tell
        check_top_level_groups(frame)  # before the identification checks: the plainer message
        check_random_designs(frame)
        check_slopes_within_groups(frame)
        check_confounding(frame)
    return frame


def check_linear_identifiable(frame: ModelFrame) -> None:
    """Refuse a linear model whose lowest grouping level has one row in every group.

    Then each level-2 random effect and its row's residual are the same quantity, so the level-2
    variance(s) and the residual variance cannot be told apart. Single-row groups among larger
    ones are fine (they inform the fixed effects and the total variance).

    Raises
    ------
    DataError
        Naming the level.
    """
    lowest = frame.levels[0]
    if lowest.n_groups and np.all(lowest.n_rows == 1):
        raise DataError(
            f"Every group of {lowest.name!r} (level 2) has a single row ({lowest.n_groups} groups, "
            f"{frame.n} rows), so its random-effect variance cannot be separated from the residual "
            "variance. Drop the term or group the rows at a coarser level."
        )
