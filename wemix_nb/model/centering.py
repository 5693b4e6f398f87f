"""Centering of covariates at weighted group means or weighted grand means, before the designs
are built (as WeMix's ``center_group`` and ``center_grand``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, DataError
from wemix_nb.model.levels import factorize, group_labels


@dataclass(frozen=True)
class Centering:
    """What centering did, kept so that ``predict(newdata)`` can repeat it.

    Attributes
    ----------
    group
        ``{grouping factor: {column: weighted mean of each group (Series indexed by label)}}``.
    grand
        ``{column: weighted grand mean}``.
    """

    group: dict[str, dict[str, pd.Series]] = field(default_factory=dict)
    grand: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CenteringRequest:
    """The columns to centre, read from the ``center_group`` and ``center_grand`` arguments.

    Attributes
    ----------
    group
        ``{grouping factor as given: [columns]}``; ``a/b`` stands for the factor ``a:b``.
    grand
        Columns centred at their weighted grand means.
    factors
        Every grouping factor ``center_group`` names (also those given no column).
    """

    group: dict[str, list[str]] = field(default_factory=dict)
    grand: list[str] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Every centred column, sorted."""
        return sorted({*self.grand, *(name for names in self.group.values() for name in names)})


def _as_formula_string(spec: str | None, argument: str) -> str | None:
    """The right-hand side of a one-sided formula string (``"~ x1 + x2"`` -> ``"x1 + x2"``)."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise ArgumentError(f"{argument} must be a formula string such as '~ x1 + x2'.")
    text = spec.strip()
    return text[1:].strip() if text.startswith("~") else text


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


def centering_request(center_group: Mapping[str, str] | None, center_grand: str | None) -> CenteringRequest:
    """Read the centering arguments of :func:`wemix_nb.mix`.

    Parameters
    ----------
    center_group
        ``{grouping factor: "~ x1 + x2"}`` or ``None``.
    center_grand
        ``"~ x1 + x2"`` or ``None``.

    Raises
    ------
    ArgumentError
        If an argument is not of that form, or a term is not a bare column name.
    """
    grand_expr = _as_formula_string(center_grand, "center_grand")
    group_exprs = {}
    if center_group is not None:
        if not isinstance(center_group, Mapping):
            raise ArgumentError("center_group must be a dict such as {'school': '~ x1 + x2'}.")
        group_exprs = {str(k): _as_formula_string(v, f"center_group[{k!r}]") for k, v in center_group.items()}
    grand = _bare_columns(grand_expr, "center_grand") if grand_expr else []
    group = {k: _bare_columns(v, f"center_group[{k!r}]") for k, v in group_exprs.items() if v}
    return CenteringRequest(group=group, grand=grand, factors=list(group_exprs))


def _numeric_values(data: pd.DataFrame, column: str) -> np.ndarray:
    dtype = data[column].dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise DataError(f"Centred column {column!r} must be numeric, but has dtype {dtype}.")
    return data[column].to_numpy(dtype=float)


def center(rows: pd.DataFrame, request: CenteringRequest, weight: np.ndarray) -> Centering:
    """Centre the requested columns of ``rows`` in place; return the means used.

    Group means are taken first, then grand means (of the group-centred values if a column is
    in both, as WeMix does).

    Parameters
    ----------
    rows
        The model's rows (a copy owned by the caller: its columns are replaced).
    request
        What to centre.
    weight
        ``(len(rows),)`` the level-1 weights as given (WeMix centres with the weight column as
        passed, conditional or not).

    Raises
    ------
    DataError
        If a centred column is not numeric.
    """
    centering = Centering()
    for given, names in request.group.items():
        factor = given.replace("/", ":")
        index, labels = factorize(group_labels(rows, factor))
        means = {}
        for name in names:
            values = _numeric_values(rows, name)
            group_means = np.bincount(index, weight * values, len(labels)) / np.bincount(
                index, weight, len(labels)
            )
            rows[name] = values - group_means[index]
            means[name] = pd.Series(group_means, index=labels)
        centering.group[factor] = means
    for name in request.grand:
        values = _numeric_values(rows, name)
        mean = float(np.sum(weight * values) / np.sum(weight))
        rows[name] = values - mean
        centering.grand[name] = mean
    return centering
