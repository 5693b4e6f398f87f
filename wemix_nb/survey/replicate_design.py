"""Replicate factors per design unit, one builder per method (used by :mod:`.replicates`).

Each builder returns ``(factors, scale, rscales, strata)``: the factor of every unit (PSU, or
JK2 half-zone) in every replicate as a ``(U, R)`` array, the variance multipliers
``c_r = scale * rscales_r`` and, for JKn / JK2, the stratum / zone of each replicate. The formulas
and references are in :mod:`wemix_nb.survey.replicates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, DesignError
from wemix_nb.model.sampling import design_codes, show_label
from wemix_nb.survey.hadamard import hadamard, is_available, smallest_order


@dataclass(frozen=True)
class _Units:
    """PSUs (or JK2 half-zones), numbered 0..U-1 in (stratum, label) order."""

    of_row: np.ndarray  # unit of each row
    stratum: np.ndarray  # stratum (0..H-1) of each unit
    labels: np.ndarray  # stratum labels

    @property
    def n_h(self) -> np.ndarray:
        return np.bincount(self.stratum, minlength=len(self.labels))

    @property
    def position(self) -> np.ndarray:
        """Position (0, 1, ...) of each unit inside its stratum."""
        start = np.concatenate([[0], np.cumsum(self.n_h)[:-1]])
        return np.arange(len(self.stratum)) - start[self.stratum]


# ------------------------------------------------------------------------------------------------
# design units


def _check_nested(stratum: np.ndarray, psu: np.ndarray, names: tuple[str, str], labels: tuple) -> None:
    pairs = pd.DataFrame({"s": stratum, "p": psu}).drop_duplicates()
    shared = pairs["p"].duplicated(keep=False).to_numpy()
    if shared.any():
        first = pairs[shared].sort_values(["p", "s"]).head(2)
        p = labels[1][first["p"].iloc[0]]
        s1, s2 = (labels[0][i] for i in first["s"])
        raise DesignError(
            f"PSU {show_label(p)} of {names[1]!r} lies in more than one stratum of {names[0]!r} "
            f"({show_label(s1)}, {show_label(s2)}): "
            f"PSUs must be nested in strata. If PSU labels restart within each stratum (as PISA's "
            f"VARUNIT 1/2 do), pass nest=True."
        )


def _units(data: pd.DataFrame, strata: str | None, psu: str | None, nest: bool) -> _Units:
    n = len(data)
    s_codes, s_labels = (
        design_codes(data, strata, "stratum") if strata else (np.zeros(n, int), np.array([None]))
    )
    p_codes, p_labels = design_codes(data, psu, "PSU") if psu else (np.arange(n), np.arange(n))
    if strata and psu and not nest:
        _check_nested(s_codes, p_codes, (strata, psu), (s_labels, p_labels))
    # a unit is a (stratum, PSU) pair; sorting the pair codes orders units by stratum, then PSU
    unit_codes, pairs = pd.factorize(s_codes.astype(np.int64) * len(p_labels) + p_codes, sort=True)
    pairs = np.asarray(pairs)
    return _Units(unit_codes, pairs // len(p_labels), s_labels)


def _require_psus(units: _Units, method: str, strata: str | None, minimum: int = 2) -> None:
    n_h = units.n_h
    bad = np.flatnonzero(n_h < minimum)
    if not bad.size:
        return
    if strata is None:
        raise DesignError(f"method={method!r} needs at least 2 PSUs; the data have {int(n_h[0])}.")
    h = bad[0]
    raise DesignError(
        f"Stratum {show_label(units.labels[h])} of {strata!r} has {int(n_h[h])} PSU(s) "
        f"({len(bad)} of the {len(n_h)} strata have fewer than {minimum}); "
        f"method={method!r} needs at least {minimum} PSUs in every stratum. Collapse it with a "
        "neighbouring stratum, or build the replicates on the full sample before taking a subpopulation."
    )


# ------------------------------------------------------------------------------------------------
# replicate factors per unit: (U, R), with scale, rscales and the stratum of each replicate


def _fay_order(n_strata: int, n_replicates: int | None) -> int:
    if n_replicates is None:
        return smallest_order(n_strata)
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer):
        raise ArgumentError(f"n_replicates must be an integer; got {n_replicates!r}.")
    if n_replicates < n_strata or not is_available(n_replicates):
        raise ArgumentError(
            f"For {n_strata} strata, n_replicates must be the order of an available Hadamard matrix of at "
            f"least {n_strata} (e.g. {smallest_order(n_strata)}); got {n_replicates}."
        )
    return int(n_replicates)


def _fay(units: _Units, strata: str, k: float, n_replicates: int | None) -> tuple:
    n_h = units.n_h
    if (n_h != 2).any():
        h = int(np.argmax(n_h != 2))
        raise DesignError(
            "Fay/BRR replication needs exactly 2 PSUs in every stratum; stratum "
            f"{show_label(units.labels[h])} of "
            f"{strata!r} has {int(n_h[h])}. Pair the PSUs into pseudo-strata first (or use method='jkn')."
        )
    R = _fay_order(len(n_h), n_replicates)
    # stratum h (1-based) takes column h mod R: column 0 is used only when there are R strata
    columns = np.arange(1, len(n_h) + 1) % R
    pattern = hadamard(R)[:, columns].T.astype(float)  # (H, R): +1 = first PSU up
    sign = pattern[units.stratum] * np.where(units.position == 0, 1.0, -1.0)[:, None]
    factors = np.where(sign > 0, 2.0 - k, k)  # 1 +/- (1 - k), written so that they are exactly 2 - k, k
    return factors, 1.0 / (R * (1.0 - k) ** 2), np.ones(R), None


def _jk1(units: _Units) -> tuple:
    n = len(units.stratum)
    factors = np.full((n, n), n / (n - 1))
    np.fill_diagonal(factors, 0.0)
    return factors, (n - 1) / n, np.ones(n), None


def _jkn(units: _Units) -> tuple:
    n_h = units.n_h[units.stratum]  # per unit = per replicate
    same = units.stratum[:, None] == units.stratum[None, :]
    factors = np.where(same, (n_h / (n_h - 1))[None, :], 1.0)
    np.fill_diagonal(factors, 0.0)
    return factors, 1.0, (n_h - 1) / n_h, units.labels[units.stratum]


def _bootstrap(units: _Units, n_replicates: Any, seed: Any) -> tuple:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer) or n_replicates < 2:
        raise ArgumentError(
            f"n_replicates must be an integer of at least 2 (e.g. 500); got {n_replicates!r}."
        )
    R, U, n_h = int(n_replicates), len(units.stratum), units.n_h
    start = np.concatenate([[0], np.cumsum(n_h)[:-1]])
    stratum_of_draw = np.repeat(np.arange(len(n_h)), n_h - 1)
    draws = start[stratum_of_draw] + np.random.default_rng(seed).integers(
        0, n_h[stratum_of_draw], size=(R, len(stratum_of_draw))
    )
    counts = np.bincount((np.arange(R)[:, None] * U + draws).ravel(), minlength=R * U).reshape(R, U).T
    unit_n = n_h[units.stratum]
    return counts * (unit_n / (unit_n - 1))[:, None], 1.0 / (R - 1), np.ones(R), None


def _jk2(data: pd.DataFrame, zone: str, rep: str, both_halves: bool) -> tuple[np.ndarray, tuple]:
    z_codes, z_labels = design_codes(data, zone, "zone")
    half = data[rep]
    if half.isna().any() or not half.isin([0, 1]).all():
        bad = np.flatnonzero(~half.isin([0, 1]).to_numpy() | half.isna().to_numpy())
        raise DesignError(
            f"The replicate column {rep!r} must be 0 or 1 (1 = doubled, 0 = zeroed in its zone's replicate); "
            f"found {show_label(half.iloc[bad[0]])} at row {int(bad[0])} ({len(bad)} row(s))."
        )
    cell = z_codes * 2 + half.to_numpy().astype(int)
    present = np.bincount(cell, minlength=2 * len(z_labels)).reshape(-1, 2) > 0
    if not present.all():
        z = int(np.argmax(~present.all(axis=1)))
        raise DesignError(
            f"Zone {show_label(z_labels[z])} of {zone!r} has rows only with {rep} = {int(present[z, 1])}: "
            "each zone needs both halves. Build the replicates on the full sample before taking a "
            "subpopulation."
        )
    Z = len(z_labels)
    factors = np.ones((Z, 2, Z))
    factors[np.arange(Z), 1, np.arange(Z)] = 2.0  # replicate z: JKREP = 1 doubled ...
    factors[np.arange(Z), 0, np.arange(Z)] = 0.0  # ... and JKREP = 0 dropped
    if both_halves:
        # the second replicate of each zone swaps the halves: 2 <-> 0, and 1 stays 1 outside the zone
        factors = np.concatenate([factors, 2.0 - factors], axis=2)
    zones = np.tile(z_labels, 2 if both_halves else 1)
    R = factors.shape[2]
    return cell, (factors.reshape(2 * Z, R), 0.5 if both_halves else 1.0, np.ones(R), zones)


def design_factors(data: pd.DataFrame, method: str, design: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """Unit of each row, and (factors per unit, scale, rscales, replicate strata)."""
    if method == "jk2":
        return _jk2(data, design["zone"], design["rep"], bool(design["both_halves"]))
    units = _units(data, design["strata"], design["psu"], bool(design["nest"]))
    if method in ("fay", "brr"):
        return units.of_row, _fay(units, design["strata"], design["fay_k"], design["n_replicates"])
    _require_psus(units, method, design["strata"])
    if method == "jk1":
        return units.of_row, _jk1(units)
    if method == "jkn":
        return units.of_row, _jkn(units)
    return units.of_row, _bootstrap(units, design["n_replicates"], design["seed"])


__all__ = ["design_factors"]
