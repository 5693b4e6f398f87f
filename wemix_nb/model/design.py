"""Design matrices of a model's rows: the response, the fixed-effect design and the random-effect
design of each grouping factor, built by formulaic and checked (finite values, full rank)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix

from wemix_nb.errors import ArgumentError, DataError, FormulaError, RankDeficiencyError
from wemix_nb.model.formula import INTERCEPT, ParsedFormula, RandomBar, variables_of

#: the name under which an ``offset`` array joins the model's rows
OFFSET_COLUMN = "(offset)"


def check_finite(values: np.ndarray, names: list[str], what: str, rows: pd.Index) -> None:
    """Refuse infinite values, or NaN made by a transformation (such as log of a negative number).

    They are errors, not missing data: they come from the data or the formula, not from
    non-response (missing values were dropped before the designs were built).

    Raises
    ------
    DataError
        Naming the columns, the number of rows and the first row.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        columns = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
        row_has = bad.any(axis=1)
        raise DataError(
            f"{what} has non-finite values (inf, or NaN from a transformation) in "
            f"{', '.join(map(repr, columns))}: {int(row_has.sum())} row(s), first at row "
            f"{rows[np.flatnonzero(row_has)[0]]!r}."
        )


def without_unused_categories(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the categories that have no rows removed from its categorical columns.

    Such categories (never used, or only in dropped rows) would give all-zero dummy columns;
    R's model frame drops them too.
    """
    rows = rows.copy()
    for column in rows.columns:
        if isinstance(rows[column].dtype, pd.CategoricalDtype):
            rows[column] = rows[column].cat.remove_unused_categories()
    return rows


def categories_seen(rows: pd.DataFrame, columns: Sequence[str], response: str) -> dict[str, tuple]:
    """The values taken by the categorical covariates among ``columns`` (for checking ``newdata``
    in ``predict``): categorical, boolean and text columns, not the response."""

    def categorical(dtype) -> bool:
        return (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(dtype)
            or not pd.api.types.is_numeric_dtype(dtype)
        )

    return {
        col: tuple(pd.unique(rows[col].dropna()))
        for col in dict.fromkeys(columns)
        if col in rows.columns and col != response and categorical(rows[col].dtype)
    }


class _InterceptOnly:
    """Stands in for formulaic's model spec of a random intercept ``(1 | g)``: a column of ones.
    (Building it through formulaic costs about as much as a whole small fit.)"""

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "ignore") -> pd.DataFrame:
        return pd.DataFrame({"Intercept": np.ones(len(data))}, index=data.index)


def real_values(matrix: pd.DataFrame, what: str) -> np.ndarray:
    """The columns of a design (or a response) as a float array, refusing what is not a real
    number: complex values (their imaginary part would be dropped), dates, durations, objects.

    Raises
    ------
    DataError
        Naming the first such column and its dtype.
    """
    for name, dtype in matrix.dtypes.items():
        if pd.api.types.is_complex_dtype(dtype):
            raise DataError(
                f"{what} column {str(name)!r} holds complex numbers (dtype {dtype}); the model needs "
                "real numbers (take the real part or the modulus explicitly if that is meant)."
            )
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise DataError(
                f"{what} column {str(name)!r} holds values that are not numbers (dtype {dtype}). "
                "Convert it (e.g. a duration to days) or use it as a category with C(...)."
            )
    return matrix.to_numpy(dtype=float)


def _not_numbers(data: pd.DataFrame, expression: str) -> list[str]:
    """The columns of ``expression`` with dates, durations or periods (neither numbers nor text)."""
    try:
        names = variables_of(expression)
    except FormulaError:
        return []
    return [
        name
        for name in names
        if name in data.columns
        and (
            pd.api.types.is_datetime64_any_dtype(data[name].dtype)
            or pd.api.types.is_timedelta64_dtype(data[name].dtype)
            or isinstance(data[name].dtype, pd.PeriodDtype | pd.IntervalDtype)
        )
    ]


class _QuotedInterceptColumn:
    """formulaic's spec of a design that uses a data column named ``Intercept`` (written
    `` `Intercept` `` in the formula).

    formulaic names the intercept's column ``Intercept`` too, and the two columns would collapse
    into one. The data column is therefore handed to formulaic under a placeholder name, and the
    design's columns that come from it are named with the backticks, `` `Intercept` `` (as R names
    a coefficient of a column whose name needs quoting).
    """

    PLACEHOLDER = "_wemix_intercept_column_"

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @classmethod
    def expression(cls, expression: str) -> str:
        return expression.replace(f"`{INTERCEPT}`", cls.PLACEHOLDER)

    @classmethod
    def data(cls, data: pd.DataFrame) -> pd.DataFrame:
        return data.rename(columns={INTERCEPT: cls.PLACEHOLDER})

    @classmethod
    def named(cls, matrix: pd.DataFrame) -> pd.DataFrame:
        return matrix.rename(columns=lambda c: str(c).replace(cls.PLACEHOLDER, f"`{INTERCEPT}`"))

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "ignore") -> pd.DataFrame:
        return self.named(self.spec.get_model_matrix(self.data(data), na_action=na_action))


def _design_matrix(expression: str, data: pd.DataFrame, what: str) -> tuple[pd.DataFrame, Any]:
    """formulaic's design of ``expression`` on ``data``, and its spec (to rebuild it on new data)."""
    quoted = f"`{INTERCEPT}`" in expression and INTERCEPT in data.columns
    if quoted:
        expression, data = _QuotedInterceptColumn.expression(expression), _QuotedInterceptColumn.data(data)
    try:
        matrix = model_matrix(expression, data, na_action="ignore")
    except Exception as exc:  # formulaic's errors have many types
        dates = _not_numbers(data, expression)
        if dates:
            raise DataError(
                f"Cannot build the {what}: column {dates[0]!r} holds {data[dates[0]].dtype} values, "
                "which are neither numbers nor categories. Convert it (e.g. to the days since a "
                "reference date) or use it as a category with C(...)."
            ) from exc
        raise FormulaError(f"Cannot build the {what} from {expression!r}: {exc}") from exc
    if quoted:
        return _QuotedInterceptColumn.named(matrix), _QuotedInterceptColumn(matrix.model_spec)
    return matrix, matrix.model_spec


# ---------------------------------------------------------------------------------------------
# response


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
        values = real_values(y_raw.to_frame(name), "The response")[:, 0]
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


def response(
    rows: pd.DataFrame, name: str, *, binomial: bool = False, check_constant: bool = True
) -> tuple[np.ndarray, tuple | None]:
    """The response vector.

    Parameters
    ----------
    rows
        The model's rows (after centering).
    name
        The response: a column, or an expression formulaic evaluates (``log(y)``).
    binomial
        Recode a two-valued response (0/1, booleans, two-level categorical) to 0/1.
    check_constant
        Refuse a constant response.

    Returns
    -------
    y : numpy.ndarray
        ``(n,)`` the response.
    levels : tuple or None
        For a categorical binomial response, its (failure, success) values.

    Raises
    ------
    DataError
        Non-numeric (for a non-binomial family), non-binary (binomial), non-finite or constant.
    """
    if name in rows.columns:
        y_raw = rows[name]
    else:
        y_raw = _design_matrix(f"{name} - 1", rows, "response")[0].iloc[:, 0]
    levels = None
    if binomial:
        y, levels = _binomial_response(y_raw, name)
    elif pd.api.types.is_bool_dtype(y_raw.dtype) or not pd.api.types.is_numeric_dtype(y_raw.dtype):
        raise DataError(
            f"The response {name!r} must be numeric for this family, but has dtype {y_raw.dtype}."
        )
    else:
        y = real_values(y_raw.to_frame(name), "The response")[:, 0]
    check_finite(y[:, None], [name], "The response", rows.index)
    if check_constant and np.ptp(y) == 0:
        raise DataError(f"The response {name!r} is constant ({float(y[0])!r}); nothing to model.")
    return y, levels


def _numeric_expression(rows: pd.DataFrame, expression: str, what: str) -> np.ndarray:
    """A numeric vector from a column name or an expression formulaic evaluates (``log(e)``,
    ``n - k``), checked finite."""
    if expression in rows.columns:
        values = rows[expression]
    else:
        values = _design_matrix(f"I({expression}) - 1", rows, what)[0].iloc[:, 0]
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise DataError(f"The {what} {expression!r} must be numeric, but has dtype {values.dtype}.")
    out = values.to_numpy(dtype=float)
    check_finite(out[:, None], [expression], f"The {what}", rows.index)
    return out


def trials_response(
    rows: pd.DataFrame, parsed: ParsedFormula, *, check_constant: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(proportion of successes, trials)`` of a ``cbind(successes, failures)`` response.

    Rows with no trial (0 successes and 0 failures) get proportion 0 and contribute nothing, as
    in R's binomial family.

    Raises
    ------
    DataError
        Successes or failures that are not non-negative whole numbers (naming the expression and
        the first row), or no success (or no failure) in any row.
    """
    counts = []
    for part in parsed.trials:
        values = _numeric_expression(rows, part, "count")
        bad = (values < 0) | (values != np.round(values))
        if bad.any():
            first = np.flatnonzero(bad)[0]
            raise DataError(
                f"In {parsed.response!r}, {part!r} must hold counts (non-negative whole numbers); "
                f"found {float(values[first])!r} at row {rows.index[first]!r} ({int(bad.sum())} row(s))."
            )
        counts.append(values)
    successes, failures = counts
    trials = successes + failures
    if check_constant and (successes.sum() == 0 or failures.sum() == 0):
        which = "success" if successes.sum() == 0 else "failure"
        raise DataError(f"The response {parsed.response!r} has no {which} in any row; nothing to model.")
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(trials > 0, successes / trials, 0.0)
    return y, trials


class OffsetValues:
    """An ``offset`` given as values, one per row of the data (kept as given: an array, or a
    Series that the model frame aligns with the data by index); compared by value.

    Parameters
    ----------
    values
        A 1-D array-like of numbers, or a pandas Series.
    """

    def __init__(self, values: Any):
        if isinstance(values, pd.Series):
            if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
                raise ArgumentError(f"offset must be numeric, got a Series of dtype {values.dtype}.")
            self.values: np.ndarray | pd.Series = values.astype(float).copy()
        else:
            try:
                array = np.array(values, dtype=float)
            except (TypeError, ValueError):
                raise ArgumentError(
                    f"offset must be a column name or one number per row of the data, got {values!r}."
                ) from None
            if array.ndim != 1:
                raise ArgumentError(f"offset must be one-dimensional, got shape {array.shape}.")
            array.flags.writeable = False
            self.values = array

    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OffsetValues) or len(other) != len(self):
            return False
        same_kind = isinstance(self.values, pd.Series) == isinstance(other.values, pd.Series)
        return same_kind and bool(
            np.array_equal(np.asarray(self.values), np.asarray(other.values), equal_nan=True)
        )

    def __hash__(self) -> int:
        return hash((len(self), np.asarray(self.values).tobytes()))

    def __repr__(self) -> str:
        return f"<offset: {len(self)} values>"


def offset_option(offset: Any) -> str | OffsetValues | None:
    """``mix``'s ``offset`` argument validated for :class:`~wemix_nb.options.FitOptions`: a column
    name, or the values wrapped in :class:`OffsetValues` (comparable, hashable).

    Raises
    ------
    ArgumentError
        A single number, or values that are not a 1-D sequence of numbers.
    """
    if offset is None or isinstance(offset, str | OffsetValues):
        return offset
    if isinstance(offset, int | float | bool | np.number):
        raise ArgumentError(
            f"offset must be a column name or one number per row of the data, got the scalar {offset!r}."
        )
    return OffsetValues(offset)


def offset_input(option: str | OffsetValues | None) -> str | np.ndarray | pd.Series | None:
    """The ``offset`` option as :func:`~wemix_nb.model.frame.build_model_frame` takes it."""
    return option.values if isinstance(option, OffsetValues) else option


def offset_argument(offset, data: pd.DataFrame) -> tuple[str | None, object]:
    """The ``offset`` argument as ``(column, values)``: a column name and no values, or
    :data:`OFFSET_COLUMN` and the values (an array of one value per row of ``data``, or a Series
    aligned with it by index).

    Raises
    ------
    ArgumentError
        Anything else, or an array of the wrong length.
    """
    if offset is None or isinstance(offset, str):
        return offset, None
    if isinstance(offset, pd.Series):
        return OFFSET_COLUMN, offset
    try:
        values = np.asarray(offset, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentError(
            f"offset must be a column name or one number per row of the data, got {type(offset).__name__}."
        ) from None
    if values.ndim != 1 or len(values) != len(data):
        raise ArgumentError(
            f"offset must hold one value per row of the data ({len(data)}); got shape {values.shape}."
        )
    return OFFSET_COLUMN, values


def offset_values(rows: pd.DataFrame, parsed: ParsedFormula, column: str | None = None) -> np.ndarray | None:
    """The sum of the formula's ``offset(...)`` expressions and of the column ``column`` (the
    ``offset`` argument), evaluated on ``rows``; ``None`` without any offset.

    Raises
    ------
    DataError
        A non-numeric or non-finite offset.
    """
    parts = [_numeric_expression(rows, expr, "offset") for expr in parsed.offsets]
    if column is not None:
        parts.append(_numeric_expression(rows, column, "offset"))
    return np.sum(parts, axis=0) if parts else None


# ---------------------------------------------------------------------------------------------
# fixed effects


#: a column that keeps less than this fraction of its length once the others are projected out is
#: a linear combination of them (R's lm uses the same tolerance)
RANK_TOL = 1e-7


def unit_columns(X: np.ndarray) -> np.ndarray:
    """``X`` with each column on its own scale: divided by its largest absolute value first (its
    square cannot overflow or underflow then, whether the column is in units of 1e-160 or 1e155),
    then by its length. An all-zero column stays zero."""
    largest = np.max(np.abs(X), axis=0, initial=0.0)
    largest[largest == 0] = 1.0
    X = X / largest
    length = np.sqrt((X**2).sum(axis=0))
    length[length == 0] = 1.0
    return X / length


def dependent_columns(X: np.ndarray) -> list[int]:
    """Positions of the columns of ``X`` that are linear combinations of the columns before them
    (empty when ``X`` has full column rank): of two collinear columns the later one is named.

    The diagonal of the R factor of the columns scaled to unit length (:func:`unit_columns`) is the
    length each column keeps once the columns before it are projected out.
    """
    n, p = X.shape
    if p == 0:
        return []
    R = np.linalg.qr(unit_columns(X), mode="r")
    kept = np.zeros(p, dtype=bool)
    kept[: min(n, p)] = np.abs(np.diag(R)) > RANK_TOL
    return [int(j) for j in np.flatnonzero(~kept)]


def _check_rank(X: np.ndarray, names: list[str]) -> None:
    dropped = [names[j] for j in dependent_columns(X)]
    if dropped:
        raise RankDeficiencyError(
            f"The fixed-effect design is rank deficient: column(s) {', '.join(map(repr, dropped))} "
            "are linear combinations of the others (collinear or constant). Remove them from the "
            "formula or merge categories."
        )


@dataclass(frozen=True)
class FixedDesign:
    """The fixed-effect design: ``X`` (``(n, p)``), its column names and formulaic's spec (to
    rebuild it on new data)."""

    X: np.ndarray
    names: list[str]
    spec: object


def fixed_design(rows: pd.DataFrame, parsed: ParsedFormula, *, check_rank: bool = True) -> FixedDesign:
    """Build and check the fixed-effect design.

    Raises
    ------
    FormulaError
        If it cannot be built or has no column.
    DataError
        If it has non-finite values.
    RankDeficiencyError
        If ``check_rank`` and its columns are linearly dependent.
    """
    matrix, spec = _design_matrix(parsed.fixed, rows, "fixed-effect design")
    X = real_values(matrix, "The fixed-effect design")
    names = [str(c) for c in matrix.columns]
    if X.shape[1] == 0:
        raise FormulaError(f"The formula {parsed.formula!r} has no fixed effect; use at least '~ 1 + ...'.")
    check_finite(X, names, "The fixed-effect design", rows.index)
    if check_rank:  # mix_dask checks the rank of the whole design, not of each partition
        _check_rank(X, names)
    return FixedDesign(X=X, names=names, spec=spec)


# ---------------------------------------------------------------------------------------------
# random effects


@dataclass(frozen=True)
class RandomDesign:
    """The random-effect design of one grouping factor, all its bars side by side.

    Attributes
    ----------
    Z
        ``(n, q)`` design.
    terms
        The ``q`` column names.
    blocks
        Column indices of each correlated block: one per bar, or one per column of a ``||`` bar.
    specs
        formulaic's spec of each bar (to rebuild it on new data).
    """

    Z: np.ndarray
    terms: list[str]
    blocks: list[list[int]]
    specs: list[object]


def _bar_matrix(rows: pd.DataFrame, bar: RandomBar) -> tuple[np.ndarray, list[str], object]:
    if bar.expr.replace(" ", "") == "1":
        spec = _InterceptOnly()
        matrix = spec.get_model_matrix(rows)
    else:
        what = f"random-effect design of '({bar.expr} | {bar.group})'"
        matrix, spec = _design_matrix(bar.expr, rows, what)
    values = real_values(matrix, f"The random-effect design of {bar.group!r}")
    names = [str(c) for c in matrix.columns]
    check_finite(values, names, f"The random-effect design of {bar.group!r}", rows.index)
    if not names:
        raise FormulaError(f"The random term '({bar.expr} | {bar.group})' has no columns.")
    return values, names, spec


def random_design(rows: pd.DataFrame, bars: Sequence[RandomBar], factor: str) -> RandomDesign:
    """Build the random-effect design of the bars of one grouping factor.

    Raises
    ------
    FormulaError
        If a bar cannot be built, has no column, or repeats a column of another bar.
    DataError
        If the design has non-finite values.
    """
    columns, terms, blocks, specs = [], [], [], []
    for bar in bars:
        if bar.group != factor:
            continue
        values, names, spec = _bar_matrix(rows, bar)
        pieces = [[j] for j in range(len(names))] if bar.uncorrelated else [list(range(len(names)))]
        blocks.extend([len(terms) + j for j in piece] for piece in pieces)
        repeated = [name for name in names if name in terms]
        if repeated:
            raise FormulaError(
                f"The random-effect term {repeated[0]!r} appears twice for grouping factor {factor!r}."
            )
        terms.extend(names)
        columns.append(values)
        specs.append(spec)
    return RandomDesign(Z=np.hstack(columns), terms=terms, blocks=blocks, specs=specs)
