"""The model frame: from a formula, a DataFrame and weight columns to the arrays the estimators use.

This module owns everything about *data*: which rows are used (missing values, zero weights),
weight validation and conversion between conditional and unconditional weights, centering, the
fixed-effect design, and the nested random-effect levels. The estimators only see plain arrays.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix

from wemix_nb.errors import (
    ArgumentError,
    ColumnNotFoundError,
    DataError,
    DroppedRowsWarning,
    FormulaError,
    NestingError,
    RankDeficiencyError,
    WeightError,
)
from wemix_nb.model.formula import ParsedFormula, RandomBar, parse_formula


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
    bars: tuple[RandomBar, ...] = ()

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    @property
    def q(self) -> int:
        return self.Z.shape[1]


@dataclass(frozen=True)
class Centering:
    """What centering did, kept so that ``predict(newdata)`` can repeat it."""

    group: dict[str, dict[str, pd.Series]] = field(default_factory=dict)  # factor -> var -> means
    grand: dict[str, float] = field(default_factory=dict)  # var -> weighted grand mean


@dataclass(frozen=True)
class ModelFrame:
    """Everything the estimators need, as arrays, plus what ``predict`` needs to rebuild them.

    Levels are ordered from level 2 (most groups) to the top level ``L``.
    """

    parsed: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    fixed_names: list[str]
    levels: list[RandomLevel]
    weight1: np.ndarray  # (n,) unconditional level-1 weights
    cond_weight1: np.ndarray  # (n,) level-1 weights conditional on the level-2 group
    weight_columns: list[str]
    conditional_weights: bool
    row_index: pd.Index  # labels of the rows used, in data order
    n_dropped_missing: int
    n_dropped_zero_weight: int
    fixed_spec: object  # formulaic ModelSpec of the fixed part
    random_specs: dict[str, list[object]]  # level name -> formulaic ModelSpecs of its bars
    centering: Centering
    response_levels: tuple | None = None  # for a categorical binomial response: (failure, success)
    categories: dict[str, tuple] = field(default_factory=dict)  # fitted values of categorical covariates

    @property
    def covariate_columns(self) -> list[str]:
        """The data columns that predictions need: covariates of both parts and grouping columns."""
        names = _variables_of(self.parsed.fixed)
        names += [v for bar in self.parsed.bars for v in _variables_of(bar.expr)]
        names += [c for level in self.levels for c in group_columns_of(level.name)]
        return list(dict.fromkeys(names))

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def n_levels(self) -> int:
        """``L``: 1 + the number of grouping levels."""
        return 1 + len(self.levels)

    @property
    def top(self) -> RandomLevel:
        return self.levels[-1]

    @property
    def Z(self) -> np.ndarray:
        """``(n, Q)`` random-effect design of all levels, level 2 first."""
        return np.hstack([level.Z for level in self.levels])


# ---------------------------------------------------------------------------------------------
# helpers


def _as_formula_string(spec: str | None, argument: str) -> str | None:
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise ArgumentError(f"{argument} must be a formula string such as '~ x1 + x2'.")
    text = spec.strip()
    return text[1:].strip() if text.startswith("~") else text


def _variables_of(expression: str) -> list[str]:
    """Variables an expression uses (formulaic's view)."""
    return list(_required_variables(expression))


@functools.lru_cache(maxsize=512)
def _required_variables(expression: str) -> tuple[str, ...]:
    # parsing is pure and repeated for every fit of the same formula (plausible values, fit_many)
    # Backticked names (`x.1`, `my var`) are swapped for plain placeholders first: formulaic's
    # list of required variables reads `x.1` as attribute access of `x`.
    quoted: dict[str, str] = {}

    def protect(match: re.Match) -> str:
        placeholder = f"_wemix_quoted_{len(quoted)}_"
        quoted[placeholder] = match.group(1)
        return placeholder

    plain = re.sub(r"`([^`]+)`", protect, expression)
    try:
        names = Formula(plain).required_variables
    except Exception as exc:  # formulaic's parse errors have many types
        raise FormulaError(f"Cannot parse {expression!r}: {exc}") from exc
    return tuple(sorted(quoted.get(str(name), str(name)) for name in names))


def _bare_columns(expression: str, argument: str) -> list[str]:
    """Column names of a centering formula, which may only list columns: ``"~ x1 + `x 2`"``."""
    names = []
    for term in expression.split("+"):
        term = term.strip()
        name = term[1:-1] if term.startswith("`") and term.endswith("`") else term
        if not name or not re.fullmatch(r"[^`()*:/^~|-]+", name) or name in ("0", "1"):
            raise ArgumentError(
                f"{argument} may only list data columns joined by '+' (e.g. '~ x1 + x2'), so that "
                f"the column itself is centred; got the term {term!r} in {expression!r}. Centre a "
                "transformed variable by adding it to the data as a column first."
            )
        names.append(name)
    return names


def group_columns_of(factor: str) -> list[str]:
    """The data columns of a grouping factor: ``"school:class"`` -> ``["school", "class"]``."""
    return [part.strip().strip("`") for part in factor.split(":")]


def _label_strings(values: pd.Series) -> pd.Series:
    """Group labels as text; whole numbers stored as floats print as integers (``3``, not ``3.0``)
    so that labels do not depend on whether the column once held a missing value."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if len(whole) and np.all(np.mod(whole.to_numpy(dtype=float), 1) == 0):
            return values.map(lambda v: v if pd.isna(v) else str(int(v)))
    return values.astype(str)


def group_labels(data: pd.DataFrame, factor: str) -> pd.Series:
    """Labels of a grouping factor; ``a:b`` joins the columns' values as ``"<a>:<b>"``."""
    columns = group_columns_of(factor)
    if len(columns) == 1:
        return data[columns[0]]
    joined = _label_strings(data[columns[0]])
    for column in columns[1:]:
        joined = joined + ":" + _label_strings(data[column])
    return joined.rename(factor)


def _factorize(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Group index and labels in R's factor order (categories order, else sorted)."""
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.int64), pd.Index(uniques, name=labels.name)


def _check_numeric(data: pd.DataFrame, column: str, what: str) -> None:
    dtype = data[column].dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise DataError(f"{what} column {column!r} must be numeric, but has dtype {dtype}.")


def _check_finite(values: np.ndarray, names: list[str], what: str, rows: pd.Index) -> None:
    """Infinite values (or NaN made by a transformation such as log of a negative number) are
    errors, not missing data: they come from the data or the formula, not from non-response."""
    bad = ~np.isfinite(values)
    if bad.any():
        columns = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        row_has = bad.any(axis=1)
        raise DataError(
            f"{what} has non-finite values (inf, or NaN from a transformation) in "
            f"{', '.join(map(repr, columns))}: {int(row_has.sum())} row(s), first at row "
            f"{rows[np.flatnonzero(row_has)[0]]!r}."
        )


def _drop_rows(data: pd.DataFrame, keep: np.ndarray, message: str) -> pd.DataFrame:
    dropped = int((~keep).sum())
    if dropped:
        warnings.warn(message.format(k=dropped), DroppedRowsWarning, stacklevel=4)
        data = data.loc[keep]
    return data


def _order_levels(data: pd.DataFrame, factors: list[str]) -> list[str]:
    """Order grouping factors from most to fewest groups, and check that they are nested."""
    counts = {factor: group_labels(data, factor).nunique() for factor in factors}
    ordered = sorted(factors, key=lambda factor: -counts[factor])
    for lower, upper in zip(ordered, ordered[1:], strict=False):
        if counts[lower] == counts[upper]:
            raise NestingError(
                f"Grouping factors {lower!r} and {upper!r} both have {counts[lower]} groups, so they "
                "cannot be strictly nested. wemix_nb fits nested models only; give lower-level "
                "groups labels that are unique across upper-level groups (e.g. 'school:class')."
            )
    return ordered


def _parent_index(
    lower_index: np.ndarray,
    n_lower: int,
    upper_index: np.ndarray,
    lower: str,
    upper: str,
    lower_labels: pd.Index,
    upper_labels: pd.Index,
) -> np.ndarray:
    parent = np.full(n_lower, -1, dtype=np.int64)
    parent[lower_index] = upper_index  # any row's upper group; then check that all rows agree
    bad = parent[lower_index] != upper_index
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        group = str(lower_labels[lower_index[row]])
        inside = sorted({str(upper_labels[u]) for u in upper_index[lower_index == lower_index[row]]})
        raise NestingError(
            f"Group {group!r} of {lower!r} lies in more than one group of {upper!r} "
            f"({', '.join(inside[:5])}): the factors are not nested. If the labels of one factor "
            f"restart within the groups of the other (e.g. class 1, 2, 3 in every school), make them "
            f"unique with a composite factor: '(1 | {upper}/{lower})' if {lower!r} lies within "
            f"{upper!r}, or '(1 | {lower}/{upper})' if {upper!r} lies within {lower!r}."
        )
    return parent


def _group_constant(values: np.ndarray, index: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group value (first row) and a mask of groups in which ``values`` vary."""
    first = np.zeros(n_groups)
    first[index[::-1]] = values[::-1]  # the first row of each group wins
    spread = np.zeros(n_groups)
    np.maximum.at(spread, index, np.abs(values - first[index]))
    varies = spread > 1e-8 * np.maximum(1.0, np.abs(first))
    return first, varies


def _weighted_mean_by(values: np.ndarray, weights: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(index, weights * values, n) / np.bincount(index, weights, n)


class _InterceptOnly:
    """Stands in for formulaic's model spec of a random intercept ``(1 | g)``: a column of ones.
    (Building it through formulaic costs about as much as a whole small fit.)"""

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "ignore") -> pd.DataFrame:
        return pd.DataFrame({"Intercept": np.ones(len(data))}, index=data.index)


def _design_matrix(expression: str, data: pd.DataFrame, what: str):
    try:
        matrix = model_matrix(expression, data, na_action="ignore")
    except Exception as exc:
        raise FormulaError(f"Cannot build the {what} from {expression!r}: {exc}") from exc
    return matrix


def _check_rank(X: np.ndarray, names: list[str]) -> None:
    import scipy.linalg

    if X.shape[1] == 0:
        return
    scale = np.sqrt((X**2).sum(axis=0))
    scale[scale == 0] = 1.0
    # a plain QR of the tall matrix, then the rank-revealing (pivoted) QR of its small R factor:
    # the same rank and pivots as a pivoted QR of X, at the cost of one unpivoted factorisation
    R0 = np.linalg.qr(X / scale, mode="r")
    _, R, pivot = scipy.linalg.qr(R0, pivoting=True)
    diag = np.abs(np.diag(R))
    # columns scaled to unit length: a pivot below 1e-7 means the column keeps less than 1e-7 of its
    # length once the others are projected out (R's lm uses the same tolerance)
    tol = 1e-7
    rank = int((diag > tol).sum())
    if rank < X.shape[1]:
        dropped = [names[j] for j in sorted(pivot[rank:])]
        raise RankDeficiencyError(
            f"The fixed-effect design is rank deficient: column(s) {', '.join(map(repr, dropped))} "
            "are linear combinations of the others (collinear or constant). Remove them from the "
            "formula or merge categories."
        )


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
    binomial_response: bool = False,
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
        Weight column names, level 1 first (rows), then level 2, ... up to the top level.
        ``None`` means unit weights at every level.
    cweights
        True if the columns hold conditional weights (each level's weight given the level above).
    center_group
        ``{grouping factor: "~ x1 + x2"}``: subtract weighted group means.
    center_grand
        ``"~ x1 + x2"``: subtract weighted grand means.
    binomial_response
        Recode a two-valued response (0/1, booleans, two-level categorical) to 0/1.
    check_response, check_rank
        Refuse a constant response / a rank-deficient fixed design.
    drop_unused_categories
        Drop categories that have no rows from categorical columns (as R does).
    level_order
        The grouping factors from level 2 up, when decided elsewhere (a Dask partition may hold
        too few groups to tell the levels apart); by default ordered by their numbers of groups.
    """
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    parsed = parse_formula(formula)
    grand_expr = _as_formula_string(center_grand, "center_grand")
    group_exprs = {}
    if center_group is not None:
        if not isinstance(center_group, Mapping):
            raise ArgumentError("center_group must be a dict such as {'school': '~ x1 + x2'}.")
        group_exprs = {str(k): _as_formula_string(v, f"center_group[{k!r}]") for k, v in center_group.items()}

    # -- which columns are used, and do they exist ----------------------------------------------
    factors: list[str] = []
    for bar in parsed.bars:
        if bar.group not in factors:
            factors.append(bar.group)
    group_columns = sorted({col for factor in factors for col in group_columns_of(factor)})
    fixed_vars = _variables_of(parsed.fixed_formula)
    random_vars = sorted({v for bar in parsed.bars for v in _variables_of(bar.expr)})
    grand_vars = _bare_columns(grand_expr, "center_grand") if grand_expr else []
    group_vars = {k: _bare_columns(v, f"center_group[{k!r}]") for k, v in group_exprs.items() if v}
    centre_vars = sorted({*grand_vars, *(v for names in group_vars.values() for v in names)})
    if not isinstance(cweights, bool | np.bool_):
        raise ArgumentError(f"cweights must be True or False, got {cweights!r}.")
    weight_cols = list(weights) if weights is not None else []
    if weights is not None and (isinstance(weights, str) or not all(isinstance(w, str) for w in weights)):
        raise ArgumentError(
            "weights must be a list of column names, level 1 first, e.g. ['w_student', 'w_school']."
        )
    used = list(dict.fromkeys([*fixed_vars, *random_vars, *group_columns, *centre_vars, *weight_cols]))
    duplicated = sorted({str(c) for c in data.columns[data.columns.duplicated()] if c in used})
    if duplicated:
        raise ArgumentError(f"The data have several columns named {', '.join(map(repr, duplicated))}.")
    available = ", ".join(map(str, data.columns[:20])) + ("..." if len(data.columns) > 20 else "")
    for columns, what in [(weight_cols, "Weight column(s)"), (used, "Column(s) used by the model")]:
        missing = [col for col in columns if col not in data.columns]
        if missing:
            raise ColumnNotFoundError(
                f"{what} {', '.join(map(repr, missing))} not in the data. Available columns: {available}"
            )
    for col in weight_cols:
        dtype = data[col].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise WeightError(f"Weight column {col!r} must be numeric, but has dtype {dtype}.")
    for factor in group_exprs:
        if factor.replace("/", ":") not in factors:
            raise ArgumentError(
                f"center_group names {factor!r}, which is not a grouping factor of the model "
                f"(grouping factors: {', '.join(map(repr, factors))})."
            )

    # -- the number of levels must match the weights ---------------------------------------------
    n_levels = 1 + len(factors)
    if weights is not None and len(weight_cols) != n_levels:
        raise WeightError(
            f"The model has {n_levels} levels (rows + {', '.join(map(repr, factors))}), so weights "
            f"needs {n_levels} column names, level 1 (rows) first; got {len(weight_cols)}: {weight_cols}."
        )

    # -- drop rows with missing values, then rows with zero weight --------------------------------
    frame = data[used]
    keep = ~frame.isna().any(axis=1).to_numpy()
    na_counts = frame.isna().sum()
    na_detail = ", ".join(f"{col!r}: {int(k)}" for col, k in na_counts.items() if k)
    frame = _drop_rows(
        frame,
        keep,
        "{k} row(s) with missing values in the model's columns were removed ("
        + na_detail.replace("{", "{{").replace("}", "}}")
        + ").",
    )
    zero_detail = ""
    if weight_cols:
        W = frame[weight_cols].to_numpy(dtype=float)
        for j, col in enumerate(weight_cols):
            if np.isinf(W[:, j]).any():
                row = frame.index[np.flatnonzero(np.isinf(W[:, j]))[0]]
                raise WeightError(
                    f"Weight column {col!r} (level {j + 1}) has infinite values (first at row {row!r})."
                )
            if (W[:, j] < 0).any():
                row = frame.index[np.flatnonzero(W[:, j] < 0)[0]]
                raise WeightError(
                    f"Weight column {col!r} (level {j + 1}) has negative values (first at row {row!r})."
                )
        zero_detail = ", ".join(
            f"{col!r}: {int(k)}" for col, k in zip(weight_cols, (W == 0).sum(axis=0), strict=True) if k
        )
        frame = _drop_rows(
            frame,
            (W > 0).all(axis=1),
            "{k} row(s) with a zero weight were removed ("
            + zero_detail.replace("{", "{{").replace("}", "}}")
            + ").",
        )
    n_dropped_missing = int((~keep).sum())
    n_dropped_zero = len(data) - n_dropped_missing - len(frame)
    if len(frame) == 0:
        reasons = []
        if n_dropped_missing:
            reasons.append(f"{n_dropped_missing} with missing values ({na_detail})")
        if n_dropped_zero:
            reasons.append(f"{n_dropped_zero} with a zero weight ({zero_detail})")
        raise DataError(
            f"No rows are left: all {len(data)} row(s) were removed, {'; '.join(reasons) or 'none given'}."
        )

    # -- levels, nesting -------------------------------------------------------------------------
    if level_order is None:
        ordered = _order_levels(frame, factors)
    elif sorted(level_order) == sorted(factors):
        ordered = list(level_order)
    else:
        raise ArgumentError(f"level_order {list(level_order)} does not list the grouping factors {factors}.")
    n = len(frame)
    if weight_cols:
        W = frame[weight_cols].to_numpy(dtype=float)
    else:
        W = np.ones((n, n_levels))
    indices, labels = [], []
    for factor in ordered:
        index, labs = _factorize(group_labels(frame, factor).rename(factor))
        indices.append(index)
        labels.append(labs)

    # per-level weights, checked constant within groups (in the form the user gave them)
    given = [W[:, 0]]
    for level, factor in enumerate(ordered, start=2):
        per_group, varies = _group_constant(W[:, level - 1], indices[level - 2], len(labels[level - 2]))
        if varies.any():
            bad = labels[level - 2][np.flatnonzero(varies)[:5]]
            raise WeightError(
                f"Level-{level} weight column {weight_cols[level - 1]!r} varies within groups of "
                f"{factor!r} (e.g. group(s) {', '.join(map(repr, map(str, bad)))}); a level-{level} "
                "weight must be constant within each group."
            )
        given.append(per_group)

    parents = []
    for k in range(len(ordered) - 1):
        parents.append(
            _parent_index(
                indices[k],
                len(labels[k]),
                indices[k + 1],
                ordered[k],
                ordered[k + 1],
                labels[k],
                labels[k + 1],
            )
        )
    parents.append(None)

    # unconditional and conditional weights; level index 0 = rows
    def parent_of(k: int) -> np.ndarray:
        """Row- or group-wise index into level k+1's groups, for level k (0 = rows)."""
        return indices[0] if k == 0 else parents[k - 1]

    unconditional: list[np.ndarray] = [None] * n_levels  # type: ignore[list-item]
    conditional: list[np.ndarray] = [None] * n_levels  # type: ignore[list-item]
    if cweights:
        conditional = given
        unconditional[-1] = given[-1]
        for k in range(n_levels - 2, -1, -1):
            unconditional[k] = given[k] * unconditional[k + 1][parent_of(k)]
    else:
        unconditional = given
        conditional[-1] = given[-1]
        for k in range(n_levels - 1):
            conditional[k] = given[k] / given[k + 1][parent_of(k)]

    # -- centering (on the weight column as passed, like WeMix), before any design is built -------
    work = frame.copy()
    # categories without rows (never used, or only in dropped rows) would give all-zero dummy
    # columns; R's model frame drops them too (not per partition of a Dask frame, whose
    # partitions must share one design)
    for column in work.columns if drop_unused_categories else []:
        if isinstance(work[column].dtype, pd.CategoricalDtype):
            work[column] = work[column].cat.remove_unused_categories()
    centering = Centering()
    first_weight = W[:, 0]
    for factor, names in group_vars.items():
        factor = factor.replace("/", ":")
        idx, labs = _factorize(group_labels(work, factor))
        means = {}
        for var in names:
            _check_numeric(work, var, "Centred")
            values = work[var].to_numpy(dtype=float)
            group_means = _weighted_mean_by(values, first_weight, idx, len(labs))
            work[var] = values - group_means[idx]
            means[var] = pd.Series(group_means, index=labs)
        centering.group[factor] = means
    if grand_vars:
        for var in grand_vars:
            _check_numeric(work, var, "Centred")
            values = work[var].to_numpy(dtype=float)
            mean = float(np.sum(first_weight * values) / np.sum(first_weight))
            work[var] = values - mean
            centering.grand[var] = mean

    # the values of categorical covariates seen in the fit, for checking newdata in predict
    categories = {
        col: tuple(pd.unique(work[col].dropna()))
        for col in dict.fromkeys([*fixed_vars, *random_vars])
        if col in work.columns
        and col != parsed.response
        and (
            isinstance(work[col].dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(work[col].dtype)
            or not pd.api.types.is_numeric_dtype(work[col].dtype)
        )
    }

    # -- response ---------------------------------------------------------------------------------
    response_levels = None
    if parsed.response in work.columns:
        y_raw = work[parsed.response]
    else:
        y_raw = _design_matrix(f"{parsed.response} - 1", work, "response").iloc[:, 0]
    if binomial_response:
        y, response_levels = _binomial_response(y_raw, parsed.response)
    else:
        if pd.api.types.is_bool_dtype(y_raw.dtype) or not pd.api.types.is_numeric_dtype(y_raw.dtype):
            raise DataError(
                f"The response {parsed.response!r} must be numeric for this family, "
                f"but has dtype {y_raw.dtype}."
            )
        y = y_raw.to_numpy(dtype=float)
    _check_finite(y[:, None], [parsed.response], "The response", frame.index)
    if check_response and np.ptp(y) == 0:
        raise DataError(f"The response {parsed.response!r} is constant ({float(y[0])!r}); nothing to model.")

    # -- fixed design ------------------------------------------------------------------------------
    fixed_mm = _design_matrix(parsed.fixed, work, "fixed-effect design")
    X = np.asarray(fixed_mm, dtype=float)
    fixed_names = [str(c) for c in fixed_mm.columns]
    if X.shape[1] == 0:
        raise FormulaError(f"The formula {formula!r} has no fixed effect; use at least '~ 1 + ...'.")
    _check_finite(X, fixed_names, "The fixed-effect design", frame.index)
    if check_rank:  # mix_dask checks the rank of the whole design, not of each partition
        _check_rank(X, fixed_names)

    # -- random designs, one level per grouping factor ---------------------------------------------
    levels: list[RandomLevel] = []
    random_specs: dict[str, list[object]] = {}
    for k, factor in enumerate(ordered):
        columns, terms, blocks, specs, bars = [], [], [], [], []
        for bar in parsed.bars:
            if bar.group != factor:
                continue
            if bar.expr.replace(" ", "") == "1":
                spec = _InterceptOnly()
                mm = spec.get_model_matrix(work)
            else:
                mm = _design_matrix(bar.expr, work, f"random-effect design of '({bar.expr} | {factor})'")
                spec = mm.model_spec
            names = [str(c) for c in mm.columns]
            _check_finite(
                np.asarray(mm, dtype=float), names, f"The random-effect design of {factor!r}", frame.index
            )
            if not names:
                raise FormulaError(f"The random term '({bar.expr} | {factor})' has no columns.")
            values = np.asarray(mm, dtype=float)
            pieces = [[j] for j in range(len(names))] if bar.uncorrelated else [list(range(len(names)))]
            for piece in pieces:
                blocks.append([len(terms) + j for j in piece])
            for name in names:
                if name in terms:
                    raise FormulaError(
                        f"The random-effect term {name!r} appears twice for grouping factor {factor!r}."
                    )
            terms.extend(names)
            columns.append(values)
            specs.append(spec)
            bars.append(bar)
        random_specs[factor] = specs
        levels.append(
            RandomLevel(
                name=factor,
                number=k + 2,
                group_index=indices[k],
                labels=labels[k],
                parent_index=parents[k],
                Z=np.hstack(columns),
                terms=terms,
                blocks=blocks,
                weight=unconditional[k + 1],
                cond_weight=conditional[k + 1],
                n_rows=np.bincount(indices[k], minlength=len(labels[k])),
                bars=tuple(bars),
            )
        )

    return ModelFrame(
        parsed=parsed,
        y=y,
        X=X,
        fixed_names=fixed_names,
        levels=levels,
        weight1=unconditional[0],
        cond_weight1=conditional[0],
        weight_columns=weight_cols,
        conditional_weights=bool(cweights),
        row_index=frame.index,
        n_dropped_missing=n_dropped_missing,
        n_dropped_zero_weight=n_dropped_zero,
        fixed_spec=fixed_mm.model_spec,
        random_specs=random_specs,
        centering=centering,
        response_levels=response_levels,
        categories=categories,
    )


def _binomial_response(y_raw: pd.Series, name: str) -> tuple[np.ndarray, tuple | None]:
    """Recode a binomial response to 0/1: numbers 0/1, booleans, or a two-level categorical."""
    dtype = y_raw.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return y_raw.to_numpy(dtype=float), (False, True)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = list(dtype.categories)
        if len(categories) != 2:
            raise DataError(
                f"A binomial response must have two categories; {name!r} has "
                f"{len(categories)}: {categories[:5]}."
            )
        return (y_raw == categories[1]).to_numpy(dtype=float), tuple(categories)
    if pd.api.types.is_numeric_dtype(dtype):
        values = y_raw.to_numpy(dtype=float)
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            examples = pd.unique(values[bad])[:5]
            raise DataError(
                f"A binomial response must be 0 or 1, but {name!r} has other values, "
                f"e.g. {examples.tolist()}."
            )
        return values, None
    values = pd.unique(y_raw)
    if len(values) == 2:
        # R's factor order (alphabetical, case-insensitive): the second value is the success
        ordered = sorted(values, key=lambda v: (str(v).casefold(), str(v)))
        return (y_raw == ordered[1]).to_numpy(dtype=float), tuple(ordered)
    raise DataError(
        f"A binomial response must be 0/1, boolean or have two categories; {name!r} has "
        f"{len(values)} distinct values, e.g. {list(values[:5])}."
    )


def check_linear_identifiable(frame: ModelFrame) -> None:
    """Refuse a linear model whose lowest grouping level has one row in every group.

    Then each level-2 random effect and its row's residual are the same quantity, so the level-2
    variance(s) and the residual variance cannot be told apart. Single-row groups among larger
    ones are fine (they inform the fixed effects and the total variance).
    """
    lowest = frame.levels[0]
    if lowest.n_groups and np.all(lowest.n_rows == 1):
        raise DataError(
            f"Every group of {lowest.name!r} (level 2) has a single row ({lowest.n_groups} groups, "
            f"{frame.n} rows), so its random-effect variance cannot be separated from the residual "
            "variance. Drop the term or group the rows at a coarser level."
        )
