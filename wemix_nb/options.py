"""The options of one fit, validated once: :class:`FitOptions`.

:func:`wemix_nb.mix` turns its keyword arguments into a frozen :class:`FitOptions` before anything
is computed, so every later stage (the model frame, the estimators, plausible values, parallel
fits, the reports) reads checked, typed values instead of re-validating loose arguments. A result
keeps the options it was fitted with (``result.options``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.families import Family, get_family
from wemix_nb.model.design import offset_option
from wemix_nb.model.sampling import LONELY_PSU
from wemix_nb.model.weights import check_scaling_method

#: replication methods of :func:`wemix_nb.replicate_weights` and ``mix(replicate_method=...)``
REPLICATE_METHODS = ("fay", "brr", "jk1", "jkn", "jk2", "bootstrap")
#: how plausible values x replicates estimate the sampling variance
PV_SAMPLING = ("all", "first")

_METHOD_NAMES = {
    "fay": "Fay's BRR",
    "brr": "BRR",
    "jk1": "JK1 jackknife",
    "jkn": "stratified jackknife (JKn)",
    "jk2": "paired jackknife (JK2)",
    "bootstrap": "bootstrap",
}
_RANGE = re.compile(r"\{\s*(\d+)\s*\.\.\s*(\d+)\s*\}")


@dataclass(frozen=True)
class ReplicateSpec:
    """Validated replicate-weight options of a fit (``mix(replicate_weights=...)``).

    Attributes
    ----------
    columns
        Per level given, the replicate weight columns (unconditional weights), level 1 first.
    levels
        The level number of each entry of ``columns`` (1 = rows; higher levels without columns
        take their weight times the rows' replicate factor).
    method
        One of :data:`REPLICATE_METHODS`, or ``None`` with an explicit ``scale``/``rscales``.
    fay_k
        Fay's k (``"fay"``: default 0.5; ``"brr"``: 0; else ``None``).
    mse
        Centre the replicate estimates on the full-sample estimate (else on their mean).
    scale, rscales
        Overrides of the method's multipliers ``c_r = scale * rscales_r`` (R survey's
        ``scale``/``rscales``); ``None``: the method's.
    pv_sampling
        With plausible values: the sampling variance is the mean over plausible values of the
        replicate variance (``"all"``) or that of the first plausible value (``"first"``).
    """

    columns: tuple[tuple[str, ...], ...]
    levels: tuple[int, ...] = (1,)
    method: str | None = None
    fay_k: float | None = None
    mse: bool = True
    scale: float | None = None
    rscales: tuple[float, ...] | None = None
    pv_sampling: str = "all"

    @property
    def n_replicates(self) -> int:
        """The number of replicates ``R``."""
        return len(self.columns[0])

    def level_columns(self, level: int) -> tuple[str, ...] | None:
        """The replicate columns given for a level (``None``: derived from the rows' factors)."""
        return dict(zip(self.levels, self.columns, strict=True)).get(level)

    @property
    def all_columns(self) -> list[str]:
        """Every replicate column, level 1 first."""
        return [name for names in self.columns for name in names]

    def describe(self) -> str:
        """The method in words: ``"Fay's BRR replicates (R = 80, k = 0.5)"``."""
        name = _METHOD_NAMES.get(self.method, "replicate weights")
        details = [f"R = {self.n_replicates}"]
        if self.method == "fay":
            details.append(f"k = {self.fay_k:g}")
        if self.scale is not None or self.rscales is not None:
            details.append("given multipliers")
        if not self.mse:
            details.append("centred on the replicate mean")
        return f"{name} replicates ({', '.join(details)})"


@dataclass(frozen=True)
class DesignSpec:
    """Validated sampling-design options of the design-based sandwich (``strata=``, ``psu=``,
    ``fpc=``), turned into a :class:`~wemix_nb.model.sampling.SamplingDesign` on the rows of the fit."""

    strata: str | None = None
    psu: str | None = None
    fpc: str | None = None
    nest: bool = False
    lonely_psu: str = "fail"

    @property
    def columns(self) -> list[str]:
        """The design columns given."""
        return [c for c in (self.strata, self.psu, self.fpc) if c is not None]


@dataclass(frozen=True)
class FitOptions(Mapping):
    """Everything that defines one fit besides the formula and the data.

    Read the fields as attributes (``options.nquad``); for convenience the object is also a
    read-only mapping of the options given (``options["weights"]``, ``dict(options)``).

    Attributes
    ----------
    weights
        Weight column names, level 1 (rows) first; ``None`` for unit weights.
    cweights
        True if the weight columns are conditional weights.
    center_group
        ``{grouping factor: "~ x1 + x2"}`` (a copy of the argument), or ``None``.
    center_grand
        ``"~ x1 + x2"``, or ``None``.
    scale_weights
        ``"none"``, ``"cluster"`` or ``"effective"``.
    family
        ``None`` for the linear model, else the GLMM :class:`~wemix_nb.families.Family`.
    nquad
        Quadrature points per random effect (GLMMs; 1 = Laplace).
    max_iteration
        Maximum quasi-Newton iterations per phase (GLMMs).
    start
        Starting values, or ``None``.
    keep_adapting
        WeMix's option; no effect (nodes are re-adapted at every evaluation).
    verbose
        Print optimiser progress (GLMMs).
    progress
        Progress bars: ``None`` (interactive sessions only), ``True`` or ``False``.
    laplace_rounding
        Binomial Laplace fits only: WeMix's rounded level-1 weights.
    pv
        Plausible-value columns when the fit is combined over plausible values, else ``None``.
    replicates
        Replicate-weight options (:class:`ReplicateSpec`), or ``None``.
    design
        Sampling-design options of the sandwich (:class:`DesignSpec`), or ``None``.
    offset
        The ``offset`` of :func:`~wemix_nb.mix`: a column name, ``OffsetValues`` or ``None``.
    """

    weights: tuple[str, ...] | None = None
    cweights: bool = False
    center_group: Mapping[str, str] | None = None
    center_grand: str | None = None
    scale_weights: str = "none"
    family: Family | None = None
    nquad: int = 13
    max_iteration: int = 100
    start: tuple[float, ...] | None = None
    keep_adapting: bool = False
    verbose: bool = False
    progress: bool | None = field(default=None, compare=False)
    laplace_rounding: bool = False
    pv: tuple[str, ...] | None = None
    replicates: ReplicateSpec | None = None
    design: DesignSpec | None = None
    offset: Any = None  # a column name, or model.design.OffsetValues

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_arguments(
        cls,
        weights: Sequence[str] | None = None,
        *,
        family: Any = None,
        link: str | None = None,
        cweights: bool = False,
        center_group: Mapping[str, str] | None = None,
        center_grand: str | None = None,
        nquad: int = 13,
        max_iteration: int = 100,
        start: Sequence[float] | None = None,
        keep_adapting: bool = False,
        verbose: bool = False,
        scale_weights: str = "none",
        progress: bool | None = None,
        laplace_rounding: bool = False,
        pv: Sequence[str] | None = None,
        replicate_weights: Any = None,
        replicate_method: str | None = None,
        fay_k: float | None = None,
        mse: bool = True,
        replicate_scale: Any = None,
        pv_sampling: str = "all",
        strata: str | None = None,
        psu: str | None = None,
        fpc: str | None = None,
        nest: bool = False,
        lonely_psu: str = "fail",
        offset: Any = None,
    ) -> FitOptions:
        """Validate :func:`~wemix_nb.mix`'s keyword arguments (raising
        :class:`~wemix_nb.errors.ArgumentError` or :class:`~wemix_nb.errors.FamilyError` with
        what is wrong) and freeze them."""
        return cls(
            weights=_weight_columns(weights),
            cweights=check_flag(cweights, "cweights"),
            center_group=_center_group(center_group),
            center_grand=_formula_text(center_grand, "center_grand"),
            scale_weights=_scaling(scale_weights),
            family=_family(family, link),
            nquad=check_positive_int(nquad, "nquad", "(1 = Laplace)"),
            max_iteration=check_positive_int(max_iteration, "max_iteration"),
            start=_start(start),
            keep_adapting=check_flag(keep_adapting, "keep_adapting"),
            verbose=check_flag(verbose, "verbose"),
            progress=None if progress is None else check_flag(progress, "progress"),
            laplace_rounding=check_flag(laplace_rounding, "laplace_rounding"),
            pv=None if pv is None else check_column_names(pv, "pv", "['pv1math', ..., 'pv5math']"),
            replicates=_replicates(
                replicate_weights, replicate_method, fay_k, mse, replicate_scale, pv_sampling
            ),
            design=_design(strata, psu, fpc, nest, lonely_psu),
            offset=offset_option(offset),
        )

    def with_changes(self, **changes: Any) -> FitOptions:
        """A copy with some fields replaced (the values must already be valid)."""
        return replace(self, **changes)

    # -- derived facts --------------------------------------------------------------------------

    @property
    def is_linear(self) -> bool:
        """True for the linear (Gaussian, identity link) model."""
        return self.family is None

    @property
    def binomial_response(self) -> bool:
        """True if the response must be recoded to 0/1 (binomial family)."""
        return self.family is not None and self.family.name == "binomial"

    # -- read-only mapping of the options given ----------------------------------------------------

    def _given(self) -> dict[str, Any]:
        """The options that define the model (GLMM-only options only for GLMMs), as plain values."""
        out: dict[str, Any] = {
            "weights": None if self.weights is None else list(self.weights),
            "cweights": self.cweights,
            "center_group": None if self.center_group is None else dict(self.center_group),
            "center_grand": self.center_grand,
        }
        if self.scale_weights != "none":
            out["scale_weights"] = self.scale_weights
        if self.family is not None:
            out.update(
                family=self.family.name,
                link=self.family.link,
                nquad=self.nquad,
                max_iteration=self.max_iteration,
                keep_adapting=self.keep_adapting,
            )
        if self.pv is not None:
            out["pv"] = list(self.pv)
        if self.replicates is not None:
            rep = self.replicates
            out["replicate_weights"] = (
                list(rep.columns[0])
                if rep.levels == (1,)
                else {lv: list(c) for lv, c in zip(rep.levels, rep.columns, strict=True)}
            )
            out.update(replicate_method=rep.method, mse=rep.mse)
            if rep.fay_k is not None:
                out["fay_k"] = rep.fay_k
            if rep.scale is not None or rep.rscales is not None:
                out["replicate_scale"] = rep.scale if rep.rscales is None else list(rep.rscales)
            if rep.pv_sampling != "all":
                out["pv_sampling"] = rep.pv_sampling
        if self.design is not None:
            d = self.design
            out.update({k: v for k, v in (("strata", d.strata), ("psu", d.psu), ("fpc", d.fpc)) if v})
            if d.nest:
                out["nest"] = True
            if d.lonely_psu != "fail":
                out["lonely_psu"] = d.lonely_psu
        return out if self.offset is None else {**out, "offset": str(self.offset)}

    def __getitem__(self, key: str) -> Any:
        return self._given()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._given())

    def __len__(self) -> int:
        return len(self._given())

    def __repr__(self) -> str:
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != f.default and f.name != "progress"
        ]
        return f"FitOptions({', '.join(changed)})"


# -------------------------------------------------------------------------------------------------
# validation of single arguments (also used by the other public functions)


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; :class:`~wemix_nb.errors.ArgumentError` unless it is True or False."""
    if not isinstance(value, bool | np.bool_):
        raise ArgumentError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_positive_int(value: Any, name: str, note: str = "") -> int:
    """``value`` as an int; :class:`~wemix_nb.errors.ArgumentError` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer{' ' + note if note else ''}, got {value!r}.")
    return int(value)


def check_column_names(value: Any, name: str, example: str) -> tuple[str, ...]:
    """Column names given as a list, tuple, array or Index of strings (not one string).

    Raises
    ------
    ArgumentError
        Naming the argument, with ``example`` as the expected form.
    """
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ArgumentError(f"{name} must be a list of column names, e.g. {example}; got {value!r}.")
    names = tuple(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise ArgumentError(
            f"{name} must be a list of column names, e.g. {example}; got {list(names)!r} "
            f"({bad[0]!r} is not a name)."
        )
    return names


def check_numbers(value: Any, name: str) -> np.ndarray:
    """A number or a flat sequence of numbers as a float array, all finite and real.

    Raises
    ------
    ArgumentError
        For text, complex numbers, nested sequences, NaN or infinite values.
    """
    try:
        values = np.asarray(value)
        if values.dtype.kind not in "biuf":  # not text, objects or complex numbers
            raise TypeError
        values = np.atleast_1d(values.astype(float))
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be a number or a list of numbers, got {value!r}.") from None
    if values.ndim != 1:
        raise ArgumentError(f"{name} must be a number or a flat list of numbers, got {value!r}.")
    if not np.all(np.isfinite(values)):
        raise ArgumentError(f"{name} must hold finite numbers, got {values.tolist()}.")
    return values


def check_result(value: Any, function: str) -> Any:
    """``value`` if it is a fitted model (a :class:`~wemix_nb.MixResult`: it has coefficients, their
    covariance and variance components); :class:`~wemix_nb.errors.ArgumentError` otherwise."""
    if not all(hasattr(value, name) for name in ("coef", "cov_mat", "variance", "ngroups")):
        raise ArgumentError(
            f"{function} needs a fitted model (the MixResult returned by wemix_nb.mix), got "
            f"{type(value).__name__}."
        )
    return value


def _weight_columns(weights: Any) -> tuple[str, ...] | None:
    if weights is None:
        return None
    return check_column_names(weights, "weights", "['w_student', 'w_school'] (level 1 first)")


def _formula_text(spec: Any, argument: str) -> str | None:
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise ArgumentError(f"{argument} must be a formula string such as '~ x1 + x2', got {spec!r}.")
    return spec


def _center_group(spec: Any) -> Mapping[str, str] | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ArgumentError("center_group must be a dict such as {'school': '~ x1 + x2'}.")
    checked = {str(k): _formula_text(v, f"center_group[{k!r}]") for k, v in spec.items()}
    return checked or None  # a copy: the caller's dict may change later


def _scaling(method: Any) -> str:
    return str(check_scaling_method(method))


def _family(family: Any, link: str | None) -> Family | None:
    if family is None or family == "gaussian":
        if link not in (None, "identity"):
            raise ArgumentError(
                f"link={link!r} needs a GLMM family (family='binomial' or 'poisson'); the linear model "
                "has the identity link."
            )
        return None
    return get_family(family, link)


def _start(start: Any) -> tuple[float, ...] | None:
    if start is None:
        return None
    return tuple(float(v) for v in check_numbers(start, "start"))


# -------------------------------------------------------------------------------------------------
# replicate weights and the sampling design


def expand_names(text: str) -> list[str]:
    """Column names from a pattern with one ``{i..j}`` range: ``"W_FSTR{1..80}"`` -> ``["W_FSTR1",
    ..., "W_FSTR80"]`` (a text without a range is returned as the one name)."""
    matches = list(_RANGE.finditer(text))
    if len(matches) > 1:
        raise ArgumentError(f"{text!r} has several '{{i..j}}' ranges; give one, e.g. 'W_FSTR{{1..80}}'.")
    if not matches:
        return [text]
    match = matches[0]
    first, last = int(match.group(1)), int(match.group(2))
    step = 1 if last >= first else -1
    return [text[: match.start()] + str(k) + text[match.end() :] for k in range(first, last + step, step)]


def _replicate_columns(spec: Any, where: str) -> tuple[str, ...]:
    """One level's replicate columns from a pattern or a list of names."""
    if isinstance(spec, str):
        names = expand_names(spec)
        if len(names) == 1:
            raise ArgumentError(
                f"{where} {spec!r} names a single column; give a pattern such as 'W_FSTR{{1..80}}' or "
                "a list of the replicate weight columns."
            )
    elif isinstance(spec, Sequence) and all(isinstance(name, str) for name in spec):
        names = list(spec)
    else:
        raise ArgumentError(
            f"{where} must be a pattern such as 'W_FSTR{{1..80}}', a list of column names, a "
            f"ReplicateWeights, or a dict {{level: pattern or list}}; got {spec!r}."
        )
    if len(names) < 2:
        raise ArgumentError(
            f"{where} names {len(names)} column(s); a replicate variance needs at least 2 replicates."
        )
    if len(set(names)) != len(names):
        raise ArgumentError(f"{where} repeats a column: {names}.")
    return tuple(names)


def _replicate_levels(spec: Any) -> tuple[tuple[int, ...], tuple[tuple[str, ...], ...]]:
    """Level numbers and columns of ``replicate_weights`` (one level, or a dict of levels)."""
    if not isinstance(spec, Mapping):
        return (1,), (_replicate_columns(spec, "replicate_weights"),)
    levels = []
    for key in spec:
        if isinstance(key, bool) or not isinstance(key, int | np.integer) or key < 1:
            raise ArgumentError(f"replicate_weights keys are level numbers (1 = rows, 2, ...); got {key!r}.")
        levels.append(int(key))
    if 1 not in levels:
        raise ArgumentError("replicate_weights as a dict needs the level-1 (rows) columns under key 1.")
    levels.sort()
    columns = tuple(_replicate_columns(spec[lv], f"replicate_weights[{lv}]") for lv in levels)
    counts = {len(c) for c in columns}
    if len(counts) > 1:
        raise ArgumentError(
            "replicate_weights gives different numbers of replicates per level: "
            + ", ".join(f"level {lv}: {len(c)}" for lv, c in zip(levels, columns, strict=True))
            + "."
        )
    return tuple(levels), columns


def _replicate_method(method: Any, fay_k: Any, scale_given: bool) -> tuple[str | None, float | None]:
    if method is None:
        if not scale_given:
            raise ArgumentError(
                "replicate_weights need replicate_method ('fay' for PISA's W_FSTR columns, 'jk2' for "
                f"TIMSS/PIRLS; one of {', '.join(map(repr, REPLICATE_METHODS))}) or replicate_scale."
            )
        if fay_k is not None:
            raise ArgumentError("fay_k applies to replicate_method='fay' only.")
        return None, None
    if method not in REPLICATE_METHODS:
        raise ArgumentError(
            f"replicate_method must be one of {', '.join(map(repr, REPLICATE_METHODS))}; got {method!r}."
        )
    if method == "brr":
        if fay_k not in (None, 0, 0.0):
            raise ArgumentError(f"replicate_method='brr' is Fay's method with k = 0; got fay_k={fay_k}.")
        return method, 0.0
    if method != "fay":
        if fay_k is not None:
            raise ArgumentError(
                f"fay_k applies to replicate_method='fay' only; got replicate_method={method!r}."
            )
        return method, None
    k = 0.5 if fay_k is None else fay_k
    if isinstance(k, bool) or not isinstance(k, int | float | np.number) or not 0 <= k < 1:
        raise ArgumentError(f"fay_k must be a number in [0, 1) (PISA uses 0.5); got {fay_k!r}.")
    return method, float(k)


def _replicate_scale(value: Any, R: int) -> tuple[float | None, tuple[float, ...] | None]:
    """``replicate_scale``: a number (the scale) or one multiplier per replicate."""
    if value is None:
        return None, None
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            raise ArgumentError(f"replicate_scale must be a positive finite number; got {value!r}.")
        return float(value), None
    try:
        values = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ArgumentError(
            f"replicate_scale must be a number or one number per replicate; got {value!r}."
        ) from None
    if values.size != R or not np.isfinite(values).all() or (values < 0).any():
        raise ArgumentError(
            f"replicate_scale must be a positive number or {R} finite non-negative numbers, one per "
            f"replicate; got {values.size} value(s)."
        )
    return 1.0, tuple(float(v) for v in values)


def _replicates(
    spec: Any, method: Any, fay_k: Any, mse: Any, scale: Any, pv_sampling: Any
) -> ReplicateSpec | None:
    if spec is None:
        given = {"replicate_method": method, "fay_k": fay_k, "replicate_scale": scale}
        extra = [name for name, value in given.items() if value is not None]
        extra += ["mse"] if mse is not True else []
        extra += ["pv_sampling"] if pv_sampling != "all" else []
        if extra:
            raise ArgumentError(f"{', '.join(extra)} need(s) replicate_weights.")
        return None
    levels, columns = _replicate_levels(spec)
    R = len(columns[0])
    scale_value, rscales = _replicate_scale(scale, R)
    method, k = _replicate_method(method, fay_k, scale is not None)
    if method == "jkn" and rscales is None:
        raise ArgumentError(
            "replicate_method='jkn' needs the (n_h - 1) / n_h of each replicate: pass them as "
            "replicate_scale=[...], or pass the ReplicateWeights of replicate_weights(..., method='jkn')."
        )
    if pv_sampling not in PV_SAMPLING:
        raise ArgumentError(f"pv_sampling must be 'all' or 'first'; got {pv_sampling!r}.")
    return ReplicateSpec(
        columns=columns,
        levels=levels,
        method=method,
        fay_k=k,
        mse=check_flag(mse, "mse"),
        scale=scale_value,
        rscales=rscales,
        pv_sampling=pv_sampling,
    )


def _design(strata: Any, psu: Any, fpc: Any, nest: Any, lonely_psu: Any) -> DesignSpec | None:
    for name, value in (("strata", strata), ("psu", psu), ("fpc", fpc)):
        if value is not None and not isinstance(value, str):
            raise ArgumentError(f"{name} must be a column name, got {value!r}.")
    nest = check_flag(nest, "nest")
    if lonely_psu not in LONELY_PSU:
        raise ArgumentError(f"lonely_psu must be 'fail' or 'adjust'; got {lonely_psu!r}.")
    if strata is None and psu is None and fpc is None:
        if nest or lonely_psu != "fail":
            raise ArgumentError("nest and lonely_psu describe a sampling design: give strata= and/or psu=.")
        return None
    if nest and not (strata and psu):
        raise ArgumentError("nest=True reads PSU labels within strata; it needs both strata= and psu=.")
    return DesignSpec(strata, psu, fpc, nest, lonely_psu)
