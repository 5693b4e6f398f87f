"""The first-stage sampling design of a fit, for design-based (linearization) standard errors.

A :class:`SamplingDesign` says, for every top-level group of a model, its stratum and its primary
sampling unit (PSU), and per stratum the sampling fraction of the PSUs. The sandwich estimators
(:func:`wemix_nb.estimation.meat.score_meat`) sum the per-top-group scores to PSUs, centre the PSU
totals within strata and weight each stratum by ``(1 - f_h) n_h / (n_h - 1)`` -- the
with-replacement ("ultimate cluster") variance of R's ``survey`` package with ``fpc`` at the first
stage.

Rules checked here, each a :class:`~wemix_nb.errors.DesignError` naming the column and the group:

* no missing stratum, PSU or fpc value on the rows of the fit;
* a PSU lies in one stratum (or ``nest=True``: PSU labels are read within strata);
* a PSU holds whole top-level groups -- the scores are per top-level group, so a top-level group
  split between PSUs has no PSU (without ``psu`` the top-level groups are the PSUs);
* fpc is constant within strata: population sizes (``>= n_h``) or sampling fractions (all ``<= 1``);
* a stratum with a single PSU has no variance estimate: an error, unless ``lonely_psu="adjust"``,
  which centres that PSU's total on the grand mean of the PSU totals (R's
  ``options(survey.lonely.psu = "adjust")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, DesignError

LONELY_PSU = ("fail", "adjust")


@dataclass(frozen=True, eq=False)
class SamplingDesign:
    """Strata, PSUs and sampling fractions of the top-level groups of one fit.

    Attributes
    ----------
    psu
        ``(G_top,)`` PSU (``0..U-1``) of each top-level group.
    psu_stratum
        ``(U,)`` stratum (``0..H-1``) of each PSU.
    fraction
        ``(H,)`` first-stage sampling fraction ``f_h`` of each stratum (0 without ``fpc``).
    lonely_psu
        ``"fail"`` or ``"adjust"`` (a single-PSU stratum centred on the grand mean).
    strata, psu_column, fpc
        The column names (``None`` when not given; no ``psu_column``: the top-level groups).
    top
        The top-level grouping factor.
    """

    psu: np.ndarray
    psu_stratum: np.ndarray
    fraction: np.ndarray
    lonely_psu: str = "fail"
    strata: str | None = None
    psu_column: str | None = None
    fpc: str | None = None
    top: str = ""

    @property
    def n_strata(self) -> int:
        """Number of strata ``H``."""
        return len(self.fraction)

    @property
    def n_psu(self) -> int:
        """Number of PSUs ``U``."""
        return len(self.psu_stratum)

    @property
    def psus_per_stratum(self) -> np.ndarray:
        """``(H,)`` the number of PSUs ``n_h`` of each stratum."""
        return np.bincount(self.psu_stratum, minlength=self.n_strata)

    def describe(self) -> str:
        """One line for reports: ``"75 strata ('VARSTRAT'), 150 PSUs ('VARUNIT'), fpc 'f'"``."""
        parts = []
        if self.strata is not None:
            parts.append(f"{self.n_strata} strata ({self.strata!r})")
        unit = repr(self.psu_column) if self.psu_column is not None else f"the {self.top!r} groups"
        parts.append(f"{self.n_psu} PSUs ({unit})")
        if self.fpc is not None:
            parts.append(f"fpc {self.fpc!r}")
        lonely = int(np.sum(self.psus_per_stratum == 1))
        if lonely:
            parts.append(f"{lonely} single-PSU strata centred on the grand mean")
        return ", ".join(parts)


def show_label(value: object) -> str:
    """repr of a label as the user wrote it (1, not np.int64(1))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def design_codes(rows: pd.DataFrame, column: str, role: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes and sorted labels of a design column with no missing value on the rows of the fit."""
    values = rows[column]
    missing = values.isna().to_numpy()
    if missing.any():
        raise DesignError(
            f"The {role} column {column!r} has missing values on {int(missing.sum())} row(s) of the fit "
            f"(first at row {rows.index[np.argmax(missing)]!r}); every row needs a {role}."
        )
    codes, labels = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(labels)


def _one_per_group(values: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The value of each group (its first row's) and the groups in which ``values`` vary."""
    first = np.full(n_groups, -1, dtype=np.int64)
    first[group[::-1]] = values[::-1]
    return first, np.unique(group[values != first[group]])


def _nested(stratum: np.ndarray, psu: np.ndarray, names: tuple[str, str], labels: tuple) -> None:
    """Refuse a PSU label found in two strata."""
    _, split = _one_per_group(stratum, psu, int(psu.max()) + 1)
    if split.size:
        unit = split[0]
        inside = sorted({show_label(labels[0][s]) for s in np.unique(stratum[psu == unit])})
        raise DesignError(
            f"PSU {show_label(labels[1][unit])} of {names[1]!r} lies in more than one stratum of "
            f"{names[0]!r} "
            f"({', '.join(inside[:5])}): PSUs must be nested in strata. If PSU labels restart within "
            "each stratum (as PISA's VARUNIT 1/2 do), pass nest=True."
        )


def _whole_groups(
    unit: np.ndarray, top_index: np.ndarray, top_labels: pd.Index, top: str, what: str, column: str
) -> np.ndarray:
    """The unit of each top-level group; refuses a top-level group split between units."""
    per_group, split = _one_per_group(unit, top_index, len(top_labels))
    if split.size:
        group = top_labels[split[0]]
        raise DesignError(
            f"Group {str(group)!r} of {top!r} (the top level) lies in more than one {what} of "
            f"{column!r} ({split.size} such group(s)): the scores are summed per top-level group, so "
            f"{what}s must contain whole top-level groups (or be the top level itself)."
        )
    return per_group


def _fractions(
    rows: pd.DataFrame, fpc: str | None, stratum: np.ndarray, n_h: np.ndarray, labels
) -> np.ndarray:
    """Per stratum ``f_h = n_h / N_h`` (population sizes) or the given fractions (all <= 1)."""
    if fpc is None:
        return np.zeros(len(n_h))
    column = rows[fpc]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise DesignError(f"The fpc column {fpc!r} must be numeric, but has dtype {column.dtype}.")
    design_codes(rows, fpc, "fpc")  # missing values
    values = column.to_numpy(dtype=float)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise DesignError(f"The fpc column {fpc!r} must hold positive finite numbers.")
    per_stratum = np.zeros(len(n_h))
    per_stratum[stratum[::-1]] = values[::-1]
    varies = np.flatnonzero(np.abs(values - per_stratum[stratum]) > 1e-9 * per_stratum[stratum])
    if varies.size:
        where = "stratum " + show_label(labels[stratum[varies[0]]]) if labels is not None else "the sample"
        raise DesignError(f"The fpc column {fpc!r} varies within {where}; it must be constant within strata.")
    if (per_stratum <= 1).all():
        return per_stratum  # sampling fractions
    small = np.flatnonzero(per_stratum < n_h)
    if small.size:
        h = small[0]
        where = f"stratum {show_label(labels[h])}" if labels is not None else "the sample"
        raise DesignError(
            f"The fpc column {fpc!r} gives a population of {per_stratum[h]:g} PSUs in {where}, which has "
            f"{int(n_h[h])} PSUs in the sample: fpc holds population sizes (at least n_h) or sampling "
            "fractions (all at most 1)."
        )
    return n_h / per_stratum


def _check_lonely(n_h: np.ndarray, lonely_psu: str, strata: str | None, labels) -> None:
    lonely = np.flatnonzero(n_h < 2)
    if not lonely.size or lonely_psu == "adjust":
        return
    if strata is None:
        raise DesignError(
            "The design has a single PSU, so the sampling variance between PSUs cannot be estimated."
        )
    h = lonely[0]
    raise DesignError(
        f"Stratum {show_label(labels[h])} of {strata!r} has a single PSU ({lonely.size} of the "
        f"{len(n_h)} strata "
        "do), so its variance cannot be estimated. Collapse it with a similar stratum, or pass "
        "lonely_psu='adjust' to centre it on the grand mean (R survey's lonely.psu = 'adjust')."
    )


def sampling_design(
    rows: pd.DataFrame,
    top_index: np.ndarray,
    top_labels: pd.Index,
    top: str,
    *,
    strata: str | None = None,
    psu: str | None = None,
    fpc: str | None = None,
    nest: bool = False,
    lonely_psu: str = "fail",
) -> SamplingDesign:
    """The :class:`SamplingDesign` of the rows of a fit.

    Parameters
    ----------
    rows
        The data rows the fit uses (its design columns).
    top_index, top_labels, top
        The top-level group of each row, the group labels and the grouping factor.
    strata, psu, fpc
        Column names (``None``: one stratum; the top-level groups as PSUs; no finite population
        correction).
    nest
        PSU labels are read within strata (they may restart in every stratum).
    lonely_psu
        ``"fail"`` (a single-PSU stratum is an error) or ``"adjust"``.

    Raises
    ------
    ColumnNotFoundError, DesignError
        See the module docstring.
    """
    if lonely_psu not in LONELY_PSU:
        raise ArgumentError(f"lonely_psu must be 'fail' or 'adjust'; got {lonely_psu!r}.")
    missing = [c for c in (strata, psu, fpc) if c is not None and c not in rows.columns]
    if missing:
        raise ColumnNotFoundError(f"Design column(s) {', '.join(map(repr, missing))} not in the data.")
    n = len(rows)
    s_codes, s_labels = design_codes(rows, strata, "stratum") if strata else (np.zeros(n, np.int64), None)
    if psu is None:  # the top-level groups are the PSUs
        unit = top_index.astype(np.int64)
        if strata:
            _whole_groups(s_codes, top_index, top_labels, top, "stratum", strata)
    else:
        p_codes, p_labels = design_codes(rows, psu, "PSU")
        if strata and not nest:
            _nested(s_codes, p_codes, (strata, psu), (s_labels, p_labels))
        # a PSU is a (stratum, label) pair, so labels may restart within strata when nest=True
        unit = pd.factorize(s_codes * (int(p_codes.max()) + 1) + p_codes, sort=True)[0].astype(np.int64)
    group_unit = _whole_groups(unit, top_index, top_labels, top, "PSU", psu or top)
    used, psu_of_group = np.unique(group_unit, return_inverse=True)
    unit_stratum = np.zeros(int(unit.max()) + 1, dtype=np.int64)
    unit_stratum[unit] = s_codes
    psu_stratum = unit_stratum[used]
    H = int(s_codes.max()) + 1
    n_h = np.bincount(psu_stratum, minlength=H)
    _check_lonely(n_h, lonely_psu, strata, s_labels)
    fraction = _fractions(rows, fpc, s_codes, n_h, s_labels)
    return SamplingDesign(
        psu=psu_of_group.astype(np.int64),
        psu_stratum=psu_stratum,
        fraction=fraction,
        lonely_psu=lonely_psu,
        strata=strata,
        psu_column=psu,
        fpc=fpc,
        top=top,
    )
