"""Column dtypes: pandas' extension dtypes read as their NumPy counterparts, and the checks that
numbers survive the conversion to floating point.

The model frame (and ``predict``) read every column through :func:`numpy_counterparts` once, so
the later stages -- formulaic's designs, the group labels, the weights -- see the same values
whether a column is ``int64`` or nullable ``Int64``, ``object`` text or ``string[pyarrow]``, and
fit the same model:

* nullable and pyarrow integers become ``int64`` (``float64`` with ``NaN`` when values are missing,
  as pandas itself stores an integer column with missing values);
* nullable and pyarrow floats and decimals become ``float64`` (missing: ``NaN``);
* nullable and pyarrow booleans become ``bool`` (``object`` with ``NaN`` when values are missing);
* text with ``pd.NA`` as its missing value (``string``, ``string[pyarrow]``, pyarrow strings)
  becomes ``object`` text with ``NaN``, which formulaic reads as categorical.

Categoricals, datetimes and NumPy columns are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from wemix_nb.errors import DataError

# integers beyond 2**53 in magnitude are not all representable as float64
_EXACT_INTEGER = 2**53


def _is_na_string(dtype) -> bool:
    """Text whose missing value is ``pd.NA`` (``string``, ``string[pyarrow]``, pyarrow strings)."""
    if isinstance(dtype, pd.StringDtype):
        return dtype.na_value is pd.NA
    return isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(dtype)


def _numeric_extension(dtype) -> bool:
    """A nullable (masked) or pyarrow number or boolean."""
    return (
        pd.api.types.is_extension_array_dtype(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
        and (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    )


def numpy_counterpart(values: pd.Series) -> pd.Series:
    """``values`` with a NumPy dtype when it has a nullable, pyarrow or ``pd.NA``-text dtype.

    Parameters
    ----------
    values
        One column.

    Returns
    -------
    pandas.Series
        The same values and index; the column itself when its dtype needs no conversion.
    """
    dtype = values.dtype
    if not (_is_na_string(dtype) or _numeric_extension(dtype)):
        return values
    missing = values.isna()
    if _is_na_string(dtype):
        return values.astype(object).where(~missing, np.nan)
    kind = getattr(dtype, "kind", "O")
    if pd.api.types.is_bool_dtype(dtype):
        if missing.any():
            return values.astype(object).where(~missing, np.nan)
        return values.astype(bool)
    if kind in "iu" and not missing.any():
        return pd.Series(values.to_numpy(dtype=dtype.numpy_dtype), index=values.index, name=values.name)
    # floats, decimals, and integers with missing values
    return pd.Series(values.to_numpy(dtype=float, na_value=np.nan), index=values.index, name=values.name)


def numpy_counterparts(data: pd.DataFrame, columns: Iterable | None = None) -> pd.DataFrame:
    """A copy of ``data`` whose ``columns`` (default: all) have NumPy dtypes
    (see :func:`numpy_counterpart`)."""
    wanted = None if columns is None else set(columns)
    data = data.copy()
    for column, dtype in data.dtypes.items():
        if (wanted is None or column in wanted) and (_is_na_string(dtype) or _numeric_extension(dtype)):
            data[column] = numpy_counterpart(data[column])
    return data


def check_exact_numbers(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Refuse integer columns that floating point cannot hold exactly (beyond ``2**53``).

    The designs and the response are computed in ``float64``; an ``int64`` column such as
    ``2**62 + k`` would lose its variation in the conversion and be fitted as something else
    (or called constant).

    Raises
    ------
    DataError
        Naming the column and its largest value.
    """
    for column in columns:
        values = data[column]
        if not pd.api.types.is_integer_dtype(values.dtype) or len(values) == 0:
            continue
        as_int = values.to_numpy()
        largest = max(int(as_int.max()), -int(as_int.min()))
        if largest > _EXACT_INTEGER:
            raise DataError(
                f"Column {column!r} holds integers as large as {largest} (beyond 2**53), which "
                "floating-point arithmetic cannot represent exactly: its values would be rounded "
                "and their differences lost. Subtract a constant (e.g. its minimum) or rescale it "
                "before fitting."
            )
