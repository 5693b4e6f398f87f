"""The number style of reports: APA 7 (*Publication Manual of the American Psychological
Association*, 7th edition), with the number of decimals chosen per column.

One rule for every table, sentence and output format of a report:

Estimates, standard errors and confidence limits
    share, per table column, the number of decimals that shows the column's smallest standard
    error with two significant digits (at most :data:`MAX_DECIMALS`): a column whose SEs are 4.46
    and 2.15 gets one decimal (``467.2``, ``(2.2)``), one whose SEs are 0.105 and 0.064 three
    (``0.616``, ``(0.064)``). The last digit shown is then the one the precision supports.
Test statistics (*t*, *z*)
    two decimals (APA).
*p* values
    three decimals without a leading zero (``.032``), ``<.001`` below .001 and ``>.999`` above
    .999 (APA: a quantity that cannot exceed 1 has no leading zero).
Correlations, proportions (ICC, fraction of missing information)
    no leading zero; two decimals, three when the column's smallest nonzero value is below .10 or
    when a standard error needs them.
Descriptive columns (sums, means, minima and maxima of weights)
    the decimals that show the column's smallest nonzero value with three significant digits,
    from 0 to 2; design effects two decimals.
Counts and degrees of freedom
    integers with a comma for thousands (``5,057``); non-integer degrees of freedom (Barnard-Rubin)
    one decimal.

Negative numbers take the minus sign U+2212 (``−0.52``), as typeset tables do; missing values
show as an em dash.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "MAX_DECIMALS",
    "MINUS",
    "MISSING",
    "STYLE_NAME",
    "column",
    "count",
    "decimals_for",
    "df_value",
    "estimate_decimals",
    "fixed",
    "interval",
    "p_value",
    "proportion",
    "proportion_decimals",
    "statistic",
]

#: the style's name, as the report states it
STYLE_NAME = "APA 7"
#: most decimals any column gets
MAX_DECIMALS = 4
#: the typographic minus sign
MINUS = "\u2212"
#: how a missing value shows
MISSING = "\u2014"


def _finite(values: Iterable[float | None]) -> np.ndarray:
    array = np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)
    return array[np.isfinite(array)]


def decimals_for(
    values: Iterable[float | None], significant: int, low: int = 0, high: int = MAX_DECIMALS
) -> int:
    """Decimals that show the smallest nonzero ``|value|`` with ``significant`` significant digits.

    Parameters
    ----------
    values
        The column's numbers (missing and non-finite ones are ignored).
    significant
        Significant digits the smallest nonzero value keeps.
    low, high
        Bounds of the result.

    Returns
    -------
    int
        The number of decimals, ``low`` if the column has no nonzero finite value.
    """
    finite = np.abs(_finite(values))
    finite = finite[finite > 0]
    if finite.size == 0:
        return low
    smallest = float(finite.min())
    # the value rounded to its significant digits may carry into the next power (0.0996 -> 0.10)
    rounded = float(f"{smallest:.{significant - 1}e}")
    needed = significant - 1 - math.floor(math.log10(rounded))
    return int(min(max(needed, low), high))


def estimate_decimals(std_errors: Iterable[float | None]) -> int:
    """The decimals of a column of estimates, SEs and confidence limits: two significant digits
    of the smallest standard error (0 to :data:`MAX_DECIMALS`)."""
    return decimals_for(std_errors, 2)


def proportion_decimals(values: Iterable[float | None], std_errors: Iterable[float | None] = ()) -> int:
    """Decimals of a column of proportions or correlations: 2, or 3 when its smallest nonzero value
    is below .10 or a standard error needs them."""
    from_values = decimals_for(values, 2, low=2, high=3)
    from_se = decimals_for(std_errors, 2, low=2, high=3)
    return max(from_values, from_se)


def _sign(text: str) -> str:
    return text.replace("-", MINUS)


def fixed(x: float | None, decimals: int, thousands: bool = True) -> str:
    """``x`` with ``decimals`` decimals, a thousands comma and the minus sign U+2212 (missing: em
    dash; a value that rounds to zero loses its sign)."""
    if x is None or not np.isfinite(x):
        return MISSING
    text = f"{x:,.{decimals}f}" if thousands else f"{x:.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")
    return _sign(text)


def interval(low: float | None, high: float | None, decimals: int) -> str:
    """A confidence interval as APA writes it: ``[458.4, 475.9]``."""
    return f"[{fixed(low, decimals)}, {fixed(high, decimals)}]"


def statistic(x: float | None) -> str:
    """A test statistic (*t*, *z*): two decimals."""
    return fixed(x, 2)


def p_value(p: float | None) -> str:
    """A *p* value: ``<.001``, ``.032``, ``>.999`` (no leading zero)."""
    if p is None or not np.isfinite(p):
        return MISSING
    if p < 0.001:
        return "<.001"
    if p > 0.999:
        return ">.999"
    return f"{p:.3f}".lstrip("0")


def proportion(x: float | None, decimals: int = 2) -> str:
    """A quantity bounded by 1 (correlation, ICC, fraction of missing information) without the
    leading zero: ``.18``, ``−.45``, ``1.00``."""
    if x is None or not np.isfinite(x):
        return MISSING
    text = fixed(x, decimals, thousands=False)
    negative = text.startswith(MINUS)
    body = text.lstrip(MINUS)
    if body.startswith("0."):
        body = body[1:]
    if negative and float(body) != 0:
        return MINUS + body
    return body


def count(n: float | int | None) -> str:
    """A count: ``5,057``."""
    if n is None or not np.isfinite(n):
        return MISSING
    return f"{int(round(n)):,}"


def df_value(df: float | None) -> str:
    """Degrees of freedom: an integer (``148``), one decimal when not whole (``82.4``), ``∞`` for
    the normal reference."""
    if df is None or np.isnan(df):
        return MISSING
    if np.isinf(df):
        return "\u221e"
    if float(df).is_integer():
        return count(df)
    return fixed(df, 1)


def column(values: Sequence[float | None], significant: int = 3, low: int = 0, high: int = 2) -> list[str]:
    """A descriptive column (sums, means, ranges) at the decimals :func:`decimals_for` chooses."""
    decimals = decimals_for(values, significant, low, high)
    return [fixed(v, decimals) for v in values]
