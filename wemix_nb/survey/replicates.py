"""Replicate weights built from survey design variables, and replicate variance estimation.

Large-scale assessments ship either replicate weights (PISA's ``W_FSTR1..80``) or the design
variables they were made from (TIMSS/PIRLS ``JKZONE``/``JKREP``, PISA's ``VARSTRAT``/``VARUNIT``,
strata and PSUs of a household survey). :func:`replicate_weights` builds the replicate weight
columns from the design variables; :func:`replicate_variance` turns replicate estimates into a
sampling variance. Both use one convention, that of R's ``survey`` package::

    V = scale * sum_r rscales_r (theta_r - theta)^2,     c_r = scale * rscales_r

Each replicate multiplies the full-sample weight of every row by a factor that is constant within
a PSU (within a half-zone for JK2):

``"fay"`` (Fay's k, default 0.5)
    the two PSUs of each stratum x ``2 - k`` / ``k`` by the columns of a Hadamard matrix (PISA:
    1.5 / 0.5); ``c_r = 1 / (R (1 - k)^2)``.
``"brr"``
    Fay with k = 0: x 2 / x 0; ``c_r = 1 / R``.
``"jk1"``
    delete one PSU, x ``n / (n - 1)`` for the others; ``c_r = (R - 1) / R``.
``"jkn"``
    delete PSU i of stratum h, x ``n_h / (n_h - 1)`` for the other PSUs of h, x 1 outside h;
    ``c_r = (n_h - 1) / n_h``.
``"jk2"``
    zone h: one half x 2, the other x 0, x 1 outside h; ``c_r = 1`` (one replicate per zone) or
    ``1/2`` (both halves of every zone).
``"bootstrap"``
    Rao-Wu: ``n_h - 1`` PSUs drawn with replacement in each stratum, x ``n_h / (n_h - 1)`` times
    the number of draws; ``c_r = 1 / (R - 1)``.

For a total (any linear statistic) and a design whose Hadamard columns are orthogonal, all of these
give the textbook with-replacement variance (``sum_h (t_h1 - t_h2)^2`` for paired PSUs,
``sum_h n_h / (n_h - 1) sum_i (t_hi - tbar_h)^2`` in general; the bootstrap in expectation).

References
----------
Fay, R. E. (1989). Theory and application of replicate weighting for variance calculations.
*Proceedings of the Survey Research Methods Section*, American Statistical Association, 212-217.

Judkins, D. R. (1990). Fay's method for variance estimation. *Journal of Official Statistics*,
6(3), 223-239.

Rao, J. N. K., & Wu, C. F. J. (1988). Resampling inference with complex survey data. *Journal of
the American Statistical Association*, 83(401), 231-241.

Rust, K. F., & Rao, J. N. K. (1996). Variance estimation for complex surveys using replication
techniques. *Statistical Methods in Medical Research*, 5(3), 283-310.

OECD (2014). *PISA 2012 Technical Report*, chapter 8 (survey weighting and the calculation of
sampling variance: Fay's BRR with 80 replicates, k = 0.5). OECD Publishing.

Foy, P., & LaRoche, S. (2012). Estimating standard errors in the TIMSS and PIRLS 2011 surveys. In
M. O. Martin & I. V. S. Mullis (Eds.), *Methods and Procedures in TIMSS and PIRLS 2011*. Boston
College (JK2, one replicate per zone); Martin, M. O., Mullis, I. V. S., & Hooper, M. (Eds.)
(2016). *Methods and Procedures in TIMSS 2015*, chapter 4 (both half-samples of each zone, 150
replicates, factor 1/2).

Lumley, T. (2010). *Complex Surveys: A Guide to Analysis Using R*, chapter 2. Wiley (the
``scale`` / ``rscales`` convention of ``survey::svrepdesign``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.errors import ArgumentError, ColumnNotFoundError, DesignError, WeightError
from wemix_nb.options import REPLICATE_METHODS
from wemix_nb.survey.replicate_design import design_factors

METHODS = REPLICATE_METHODS

# arguments of replicate_weights beyond data/weight/method that each method uses
_USES = {
    "fay": {"strata", "psu", "nest", "fay_k", "n_replicates"},
    "brr": {"strata", "psu", "nest", "fay_k", "n_replicates"},
    "jk1": {"psu"},
    "jkn": {"strata", "psu", "nest"},
    "jk2": {"zone", "rep", "both_halves"},
    "bootstrap": {"strata", "psu", "nest", "n_replicates", "seed"},
}
_NEEDS = {
    "fay": ("strata", "psu"),
    "brr": ("strata", "psu"),
    "jk1": (),
    "jkn": ("strata",),
    "jk2": ("zone", "rep"),
    "bootstrap": ("n_replicates",),
}


@dataclass(frozen=True, eq=False)
class ReplicateWeights:
    """Replicate weights and what a variance estimator needs to use them.

    Attributes
    ----------
    weights
        One column per replicate (``{prefix}1`` ... ``{prefix}R``), same index as the data.
    method
        ``"fay"``, ``"brr"``, ``"jk1"``, ``"jkn"``, ``"jk2"`` or ``"bootstrap"``.
    weight
        The full-sample weight column the replicates were built from.
    fay_k
        Fay's k (0 for BRR; ``None`` for the jackknives and the bootstrap).
    scale, rscales
        ``c_r = scale * rscales[r]`` (R's ``survey`` convention), see :attr:`multipliers`.
    strata
        For ``"jkn"`` the stratum of the PSU each replicate deletes, for ``"jk2"`` the zone each
        replicate perturbs; ``None`` otherwise.
    """

    weights: pd.DataFrame
    method: str
    weight: str
    fay_k: float | None
    scale: float
    rscales: np.ndarray
    strata: np.ndarray | None = None

    @property
    def n_replicates(self) -> int:
        """The number of replicates ``R``."""
        return self.weights.shape[1]

    @property
    def multipliers(self) -> np.ndarray:
        """The per-replicate variance multipliers ``c_r = scale * rscales_r``."""
        return self.scale * self.rscales

    @property
    def columns(self) -> list[str]:
        """The replicate weight column names."""
        return list(self.weights.columns)

    def variance(
        self,
        estimates: Any,
        full: Any,
        *,
        scale: float | None = None,
        rscales: Any = None,
        mse: bool = True,
    ) -> float | np.ndarray:
        """Replicate variance of ``full`` from one estimate per replicate; see :func:`replicate_variance`."""
        return replicate_variance(estimates, full, self, scale=scale, rscales=rscales, mse=mse)

    def __repr__(self) -> str:
        k = "" if self.fay_k is None else f", fay_k={self.fay_k:g}"
        return (
            f"ReplicateWeights(method={self.method!r}{k}, R={self.n_replicates}, rows={len(self.weights)}, "
            f"weight={self.weight!r}, scale={self.scale:.6g})"
        )


# ------------------------------------------------------------------------------------------------
# checks


def _check_arguments(method: str, given: dict[str, Any]) -> None:
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    unused = [name for name, value in given.items() if value is not None and name not in _USES[method]]
    if unused:
        hint = " (for a stratified design use method='jkn')" if method == "jk1" and "strata" in unused else ""
        raise ArgumentError(
            f"method={method!r} does not use {', '.join(unused)}; "
            f"it uses {', '.join(sorted(_USES[method]))}{hint}."
        )
    missing = [name for name in _NEEDS[method] if given.get(name) is None]
    if missing:
        hint = {"fay": " (PISA: strata='VARSTRAT', psu='VARUNIT', nest=True)", "brr": ""}
        hint["jk2"] = " (TIMSS/PIRLS: zone='JKZONE', rep='JKREP')"
        raise ArgumentError(f"method={method!r} needs {' and '.join(missing)}{hint.get(method, '')}.")


def _check_fay_k(method: str, fay_k: float | None) -> float | None:
    if method == "brr":
        if fay_k not in (None, 0, 0.0):
            raise ArgumentError(
                f"method='brr' is Fay's method with k = 0; got fay_k={fay_k}. Use method='fay'."
            )
        return 0.0
    if method != "fay":
        return None
    k = 0.5 if fay_k is None else fay_k
    if isinstance(k, bool) or not isinstance(k, int | float | np.number) or not 0 <= k < 1:
        raise ArgumentError(f"fay_k must be a number in [0, 1) (PISA uses 0.5); got {fay_k!r}.")
    return float(k)


def _check_columns(data: pd.DataFrame, roles: dict[str, str | None]) -> None:
    missing = [f"{name!r} ({role})" for role, name in roles.items() if name is not None and name not in data]
    if missing:
        available = ", ".join(map(str, data.columns))
        raise ColumnNotFoundError(
            f"Design column(s) {', '.join(missing)} not in the data. Available columns: {available}"
        )


def _check_weight(data: pd.DataFrame, weight: str) -> np.ndarray:
    column = data[weight]
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise WeightError(f"Weight column {weight!r} must be numeric, but has dtype {column.dtype}.")
    w = column.to_numpy(dtype=float)
    for bad, what in ((np.isnan(w), "missing"), (np.isinf(w), "infinite"), (w < 0, "negative")):
        if bad.any():
            raise WeightError(
                f"Weight column {weight!r} has {what} values ({int(bad.sum())} row(s), first at row "
                f"{int(np.argmax(bad))}); replicate weights need a finite, non-negative weight on every row."
            )
    if not (w > 0).any():
        raise WeightError(f"Weight column {weight!r} is zero on every row.")
    return w


def replicate_weights(
    data: pd.DataFrame,
    weight: str,
    method: str,
    *,
    strata: str | None = None,
    psu: str | None = None,
    nest: bool = False,
    zone: str | None = None,
    rep: str | None = None,
    both_halves: bool = False,
    fay_k: float | None = None,
    n_replicates: int | None = None,
    seed: int | np.random.Generator | None = None,
    prefix: str | None = None,
) -> ReplicateWeights:
    """Build replicate weight columns from survey design variables.

    Every replicate multiplies the full-sample weight ``weight`` of each row by a factor that is
    constant within a PSU (a half-zone for JK2); see the table in :mod:`wemix_nb.survey.replicates`.

    Parameters
    ----------
    data
        The sample (not modified). Build replicates on the full sample: dropping rows first can
        leave a stratum with one PSU or a zone with one half.
    weight
        The full-sample weight column (e.g. ``"w_fstuwt"``, ``"TOTWGT"``); finite, non-negative,
        not all zero.
    method
        ``"fay"`` (Fay's BRR, PISA), ``"brr"`` (Fay with k = 0), ``"jk1"`` (delete-one-PSU,
        unstratified), ``"jkn"`` (stratified delete-one-PSU), ``"jk2"`` (TIMSS/PIRLS paired
        jackknife) or ``"bootstrap"`` (Rao-Wu rescaling bootstrap).
    strata, psu
        Stratum and PSU columns (``"fay"``/``"brr"``: both, e.g. ``"VARSTRAT"``/``"VARUNIT"``, exactly
        two PSUs per stratum; ``"jkn"``: strata; ``"jk1"``: psu only; ``"bootstrap"``: optional).
        Without ``psu`` every row is its own PSU. Missing values are errors.
    nest
        If True, PSU labels are read within their stratum (PISA's ``VARUNIT`` is 1 or 2 in every
        ``VARSTRAT``). If False (default), a PSU label found in two strata is an error.
    zone, rep
        ``"jk2"`` only: the jackknife zone (``"JKZONE"``) and the 0/1 half indicator (``"JKREP"``).
    both_halves
        ``"jk2"`` only. False: one replicate per zone, in which the ``rep == 1`` half is doubled and
        the ``rep == 0`` half zeroed (TIMSS up to 2011, PIRLS up to 2011); ``c_r = 1``. True: a
        second replicate per zone with the halves swapped (TIMSS since 2015, PIRLS since 2016),
        ``2 x zones`` replicates (all zones' first replicates, then all second ones) and
        ``c_r = 1/2``.
    fay_k
        ``"fay"`` only (default 0.5): the PSUs of each stratum get factors ``2 - k`` and ``k``
        (Judkins 1990), i.e. ``1 +/- (1 - k)``: 1.5 and 0.5 at PISA's k = 0.5. Must be in [0, 1).
    n_replicates
        ``"bootstrap"``: the number of replicates (required). ``"fay"``/``"brr"``: the order of the
        Hadamard matrix, at least the number of strata (default: the smallest available, see
        :mod:`wemix_nb.survey.hadamard`; 80 for PISA's 75-80 pseudo-strata).
    seed
        ``"bootstrap"`` only: seed or ``numpy.random.Generator``, for reproducible replicates.
    prefix
        Column names are ``f"{prefix}{r}"``, r = 1..R (default ``"repw"``; ``"W_FSTR"`` gives
        PISA's names).

    Returns
    -------
    ReplicateWeights
        The replicate weight DataFrame (same index as ``data``), the method, ``R``, ``fay_k`` and
        the variance multipliers ``c_r = scale * rscales_r`` used by :func:`replicate_variance`.

    Raises
    ------
    ArgumentError
        Unknown method, an argument the method does not use or lacks, ``fay_k`` outside [0, 1),
        a bad ``n_replicates``.
    ColumnNotFoundError
        A named column is not in ``data``.
    WeightError
        A non-numeric, missing, infinite, negative or all-zero weight.
    DesignError
        Missing strata/PSU/zone values, PSUs in two strata, a stratum with too few PSUs (one for
        the jackknives and the bootstrap, other than two for Fay/BRR), a zone with one half, JK2
        halves other than 0/1, fewer than 2 replicates.

    Notes
    -----
    **Fay / BRR.** Strata are sorted; in each, the PSU with the smaller label is the first unit.
    With the Hadamard matrix ``M`` of order ``R`` (rows = replicates), stratum ``h = 1..H`` uses
    column ``h mod R``: where ``M[r, h mod R] = +1`` the first PSU gets ``2 - k`` and the second
    ``k`` in replicate ``r``, and the reverse where it is -1. Each replicate is therefore balanced
    within each stratum, and the columns of different strata are orthogonal, so for a total the
    variance equals the paired-difference estimator ``sum_h (t_h1 - t_h2)^2`` exactly. Column 0 is
    used only when ``H = R`` (PISA's 80 strata with 80 replicates); with a Sylvester matrix it is
    constant, and centring on the replicate mean (``mse=False``) then loses that stratum.
    The pseudo-strata of the PISA-like example data (75 strata, R = 80, Paley's matrix) are
    reproduced exactly, see ``tests/test_replicates.py``.

    **JKn.** One replicate per PSU, ordered by stratum then PSU label; ``strata`` holds the
    stratum of each replicate and ``rscales`` its ``(n_h - 1) / n_h``.

    **Bootstrap.** Rao & Wu (1988) with ``m_h = n_h - 1`` draws: the factor of PSU ``i`` is
    ``n_h / (n_h - 1)`` times the number of times it was drawn, so the factors of a stratum sum to
    ``n_h`` in every replicate and average 1 over replicates.

    Examples
    --------
    >>> data = wemix_nb.datasets.pisa2012_like(design=True)
    >>> fay = replicate_weights(data, "w_fstuwt", "fay", strata="VARSTRAT", psu="VARUNIT", nest=True)
    >>> fay.n_replicates, float(fay.multipliers[0])
    (80, 0.05)
    """
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    given = {"strata": strata, "psu": psu, "zone": zone, "rep": rep, "fay_k": fay_k}
    given |= {"n_replicates": n_replicates, "seed": seed}
    given |= {"nest": nest or None, "both_halves": both_halves or None}
    _check_arguments(method, given)
    if nest and not (strata and psu):
        raise ArgumentError("nest=True reads PSU labels within strata; it needs both strata= and psu=.")
    given["fay_k"] = _check_fay_k(method, fay_k)
    _check_columns(data, {"weight": weight, "strata": strata, "psu": psu, "zone": zone, "rep": rep})
    w = _check_weight(data, weight)
    of_row, (factors, scale, rscales, rep_strata) = design_factors(data, method, given)
    if factors.shape[1] < 2:
        raise DesignError(
            f"method={method!r} gives {factors.shape[1]} replicate here; at least 2 are needed."
        )
    names = [f"{'repw' if prefix is None else prefix}{r}" for r in range(1, factors.shape[1] + 1)]
    frame = pd.DataFrame(w[:, None] * factors[of_row], index=data.index, columns=names)
    rscales = np.asarray(rscales, dtype=float)
    rscales.flags.writeable = False
    return ReplicateWeights(frame, method, weight, given["fay_k"], float(scale), rscales, rep_strata)


# ------------------------------------------------------------------------------------------------
# variance


def _as_estimates(estimates: Any, full: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    theta = np.asarray(estimates, dtype=float)
    vector = theta.ndim == 2
    if theta.ndim not in (1, 2):
        raise ArgumentError(
            f"estimates must have one row per replicate, shape (R,) or (R, k); got {theta.shape}."
        )
    theta = theta.reshape(theta.shape[0], -1)
    center = np.asarray(full, dtype=float).reshape(-1)
    if center.size != theta.shape[1]:
        raise ArgumentError(
            f"full has {center.size} value(s) but estimates has {theta.shape[1]} column(s); give the "
            "full-sample estimate of each statistic."
        )
    bad = ~np.isfinite(theta).all(axis=1)
    if bad.any():
        raise ArgumentError(
            f"estimates are not finite for {int(bad.sum())} replicate(s) (first: replicate "
            f"{int(np.argmax(bad)) + 1}); every replicate needs an estimate."
        )
    if theta.shape[0] < 2:
        raise ArgumentError(f"A replicate variance needs at least 2 replicates; got {theta.shape[0]}.")
    return theta, center, vector


def _default_multipliers(method: str, R: int, fay_k: float | None, both_halves: bool) -> tuple[float, Any]:
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    if both_halves and method != "jk2":
        raise ArgumentError(f"both_halves applies to method='jk2' only; got method={method!r}.")
    if fay_k is not None and method not in ("fay", "brr"):
        raise ArgumentError(f"fay_k applies to methods 'fay' and 'brr' only; got method={method!r}.")
    k = _check_fay_k(method, fay_k)
    scale = {
        "fay": lambda: 1.0 / (R * (1.0 - (k or 0.0)) ** 2),
        "brr": lambda: 1.0 / R,
        "jk1": lambda: (R - 1) / R,
        "jkn": lambda: 1.0,
        "jk2": lambda: 0.5 if both_halves else 1.0,
        "bootstrap": lambda: 1.0 / (R - 1),
    }[method]()
    # JKn's (n_h - 1) / n_h cannot be read off the estimates
    return scale, (None if method == "jkn" else np.ones(R))


def _multipliers(method: Any, R: int, fay_k: float | None, both_halves: bool) -> tuple[float | None, Any]:
    if isinstance(method, ReplicateWeights):
        if fay_k is not None or both_halves:
            raise ArgumentError(
                "fay_k and both_halves come with the ReplicateWeights given as method; do not repeat them."
            )
        if method.n_replicates != R:
            raise ArgumentError(
                f"estimates has {R} replicate(s) but the ReplicateWeights have {method.n_replicates}."
            )
        return method.scale, method.rscales
    if method is None:
        return None, np.ones(R)
    return _default_multipliers(method, R, fay_k, both_halves)


def _check_overrides(scale: Any, rscales: Any, R: int) -> tuple[float | None, np.ndarray | None]:
    if scale is not None and (isinstance(scale, bool) or not np.isfinite(scale) or scale <= 0):
        raise ArgumentError(f"scale must be a positive finite number; got {scale!r}.")
    if rscales is None:
        return scale, None
    rscales = np.asarray(rscales, dtype=float).reshape(-1)
    if rscales.size != R or not np.isfinite(rscales).all() or (rscales < 0).any():
        raise ArgumentError(
            f"rscales must hold {R} finite non-negative numbers, one per replicate; got {rscales.size}."
        )
    return scale, rscales


def replicate_variance(
    estimates: Any,
    full: Any,
    method: str | ReplicateWeights | None = None,
    *,
    fay_k: float | None = None,
    both_halves: bool = False,
    scale: float | None = None,
    rscales: Any = None,
    mse: bool = True,
) -> float | np.ndarray:
    """Sampling variance from replicate estimates: ``sum_r c_r (theta_r - theta)^2``.

    Parameters
    ----------
    estimates
        One estimate per replicate: shape ``(R,)`` for one statistic, ``(R, k)`` for ``k``
        statistics (a DataFrame with one row per replicate works).
    full
        The full-sample estimate ``theta``: a number, or ``k`` numbers.
    method
        A :class:`ReplicateWeights` (its ``scale`` and ``rscales`` are used), or a method name with
        the default multipliers: ``"fay"`` ``1 / (R (1 - k)^2)``, ``"brr"`` ``1 / R``, ``"jk1"``
        ``(R - 1) / R``, ``"jk2"`` ``1`` (``1/2`` with ``both_halves=True``), ``"bootstrap"``
        ``1 / (R - 1)``, ``"jkn"`` ``(n_h - 1) / n_h`` per replicate (give them as ``rscales``, or
        pass the ReplicateWeights). ``None`` needs ``scale`` (and optionally ``rscales``).
    fay_k
        Fay's k for ``method="fay"`` (default 0.5; PISA's W_FSTR: 0.5, ``c_r = 1/20``).
    both_halves
        ``method="jk2"``: the replicates are both half-samples of every zone (TIMSS since 2015).
    scale, rscales
        Override the method's multipliers as R's ``survey`` does: ``c_r = scale * rscales_r``;
        each replaces its own part (for a method name the default ``rscales`` are ones, except
        JKn's).
    mse
        True (default): centre on ``full``. False: centre on the mean of the replicate estimates.

    Returns
    -------
    float or numpy.ndarray
        The variance (for ``(R,)`` estimates) or the ``(k, k)`` covariance matrix.

    Raises
    ------
    ArgumentError
        Non-finite estimates, fewer than 2 replicates, shapes that do not match, an unknown method,
        JKn without its ``rscales``, a bad ``scale``/``rscales``/``fay_k``.

    Examples
    --------
    >>> replicate_variance([11.0, 9.0, 12.0, 8.0], 10.0, "brr")  # (1 + 1 + 4 + 4) / 4
    2.5
    """
    theta, center, vector = _as_estimates(estimates, full)
    R = theta.shape[0]
    scale, rscales = _check_overrides(scale, rscales, R)
    default_scale, default_rscales = _multipliers(method, R, fay_k, both_halves)
    scale = default_scale if scale is None else scale
    rscales = default_rscales if rscales is None else rscales
    if scale is None:
        raise ArgumentError("Without a method, give scale (and rscales if they are not all 1).")
    if rscales is None:
        raise ArgumentError(
            "method='jkn' needs the (n_h - 1) / n_h of each replicate: pass rscales=, or the "
            "ReplicateWeights returned by replicate_weights(..., method='jkn') as method."
        )
    deviation = theta - (center if mse else theta.mean(axis=0))
    covariance = (deviation * (scale * rscales)[:, None]).T @ deviation
    covariance = (covariance + covariance.T) / 2  # exactly symmetric, whatever the BLAS summation order
    return covariance if vector else float(covariance[0, 0])


__all__ = ["METHODS", "ReplicateWeights", "replicate_variance", "replicate_weights"]
