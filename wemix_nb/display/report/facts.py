"""The facts a methods section states about a fit, read from the fit itself.

:func:`method_facts` turns a :class:`~wemix_nb.MixResult` (or a plausible-value or replicate
result) into a frozen :class:`MethodFacts`: the estimator and quadrature, the levels and their
group counts, the weight columns and how they were read and scaled, how the standard errors were
obtained, how plausible values were combined, the reference distribution of the tests, the rows
dropped and the software. Nothing here is free text: :mod:`wemix_nb.display.report.methods` turns
the facts into sentences, so that two fits that differ in an option differ in a fact, and the
paragraph says so.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wemix_nb.errors import ArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.options import FitOptions, ReplicateSpec
    from wemix_nb.results.result import MixResult

__all__ = [
    "DF_KINDS",
    "DegreesOfFreedom",
    "LevelFact",
    "MethodFacts",
    "PlausibleValues",
    "RandomPart",
    "StandardErrors",
    "default_df",
    "method_facts",
]

#: reference distributions of the tests: normal, t with groups - fixed effects, Barnard-Rubin
DF_KINDS = ("normal", "groups", "rubin")
#: fewer top-level groups than this: the sandwich's clusters are few (the t reference is advised)
FEW_GROUPS = 30


@dataclass(frozen=True)
class LevelFact:
    """One level of the model: its number (1 = rows), its unit (``"rows"`` or the grouping factor),
    its number of units and its weight column (``None``: weight 1)."""

    level: int
    unit: str
    n: int
    weight: str | None


@dataclass(frozen=True)
class RandomPart:
    """The random effects of one grouping factor: their terms, and whether their covariances were
    estimated."""

    group: str
    terms: tuple[str, ...]
    correlated: bool


@dataclass(frozen=True)
class StandardErrors:
    """How the standard errors were obtained.

    Attributes
    ----------
    kind
        ``"sandwich"`` (robust, clustered on the top level), ``"linearization"`` (design-based
        sandwich with strata/PSUs/fpc) or ``"replicate"``.
    cluster, n_clusters
        The top-level grouping factor and its number of groups.
    strata, n_strata, psu, n_psu, fpc, nest, lonely_adjusted
        The sampling design of a linearization (``psu=None``: the top-level groups are the PSUs;
        ``lonely_adjusted``: strata with one PSU centred on the grand mean).
    method, n_replicates, fay_k, multiplier, mse, replicate_columns, replicate_levels
        The replicate method (``None``: multipliers given), R, Fay's k, the variance multiplier in
        words (``"1/(R(1 − k)²) = 1/20"``), whether the deviations are taken from the full-sample
        estimate, the level-1 replicate columns and the levels given replicate columns.
    """

    kind: str
    cluster: str
    n_clusters: int
    strata: str | None = None
    n_strata: int | None = None
    psu: str | None = None
    n_psu: int | None = None
    fpc: str | None = None
    nest: bool = False
    lonely_adjusted: int = 0
    method: str | None = None
    n_replicates: int | None = None
    fay_k: float | None = None
    multiplier: str | None = None
    mse: bool = True
    replicate_columns: tuple[str, ...] = ()
    replicate_levels: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlausibleValues:
    """How plausible values were combined: ``M`` fits (``columns``), Rubin's rules, the sampling
    variance from every plausible value (``"all"``) or the first (``"first"``), and the range of
    the fraction of missing information over the fixed effects."""

    M: int
    columns: tuple[str, ...]
    sampling: str
    fmi_low: float
    fmi_high: float


@dataclass(frozen=True)
class DegreesOfFreedom:
    """The reference distribution of *p* values and confidence intervals: ``kind`` (one of
    :data:`DF_KINDS`), the range of the degrees of freedom over the fixed effects (``inf`` for the
    normal), the number of top-level groups and of fixed effects, and whether the groups are few
    (fewer than 30). For design-based (linearized) standard errors also the PSUs and strata
    (``None`` otherwise; one stratum without ``strata``): the t reference then has PSUs - strata
    degrees of freedom, and ``few_groups`` means fewer than 30 of them."""

    kind: str
    low: float
    high: float
    n_top: int
    n_fixed: int
    few_groups: bool
    n_psu: int | None = None
    n_strata: int | None = None


@dataclass(frozen=True)
class MethodFacts:
    """Everything the methods paragraph says about one fit (see the module documentation)."""

    formula: str
    response: str
    family: str
    link: str
    offsets: tuple[str, ...]
    nquad: int | None
    adaptive: bool
    laplace_rounding: bool
    random: tuple[RandomPart, ...]
    levels: tuple[LevelFact, ...]
    weighting: str
    conditional: bool
    scaling: str
    center_group: tuple[tuple[str, str], ...]
    center_grand: str | None
    errors: StandardErrors
    pv: PlausibleValues | None
    df: DegreesOfFreedom
    conf_level: float
    rows_given: int
    dropped_missing: int
    dropped_missing_pv: int
    dropped_zero_weight: int
    software: str
    python: str

    @property
    def is_linear(self) -> bool:
        """True for the linear mixed model."""
        return self.family == "gaussian"

    @property
    def rows_used(self) -> int:
        """Rows the fit used."""
        return self.levels[0].n


# -------------------------------------------------------------------------------------------------


def default_df(result: MixResult) -> str:
    """The reference distribution ``tidy()`` uses by default for this fit (the fit's diagnostics
    decide it where they exist, else WeMix's normal reference)."""
    diagnostics = getattr(result, "diagnostics", None)
    return getattr(diagnostics, "default_df", "normal")


def _options(result: MixResult) -> FitOptions:
    from wemix_nb.options import FitOptions

    options = getattr(result, "options", None)
    return options if isinstance(options, FitOptions) else FitOptions()


def _levels(result: MixResult, options: FitOptions) -> tuple[LevelFact, ...]:
    frame = result.frame
    columns = list(frame.weight_columns) if frame is not None else list(options.weights or [])
    names = ["rows"] + [str(k) for k in result.ngroups.index[1:]]
    out = []
    for k, (unit, n) in enumerate(zip(names, result.ngroups.to_numpy(), strict=True)):
        out.append(LevelFact(k + 1, unit, int(n), columns[k] if k < len(columns) else None))
    return tuple(out)


def _random(result: MixResult) -> tuple[RandomPart, ...]:
    parts = []
    for level in result.variance.levels:
        covariances = any(len(block) > 1 for block in level.blocks)
        parts.append(RandomPart(str(level.group), tuple(str(t) for t in level.terms), covariances))
    return tuple(parts)


def _offsets(result: MixResult) -> tuple[str, ...]:
    """The offsets: the formula's ``offset(...)`` expressions and the ``offset`` argument's column
    (``"(offset)"`` for values given as an array)."""
    frame = result.frame
    if frame is None:
        return ()
    found = list(frame.parsed.offsets)
    if frame.offset_source is not None:
        found.append(str(frame.offset_source))
    return tuple(found)


def _weighting(levels: tuple[LevelFact, ...]) -> str:
    given = [lv.weight for lv in levels if lv.weight is not None]
    if not given:
        return "unweighted"
    if len(given) == 1 and len(levels) > 1:
        return "level1"
    return "all_levels"


_MULTIPLIERS = {
    "fay": "1/(R(1 \u2212 k)\u00b2)",
    "brr": "1/R",
    "jk1": "(R \u2212 1)/R",
    "jk2": "1",
    "bootstrap": "1/(R \u2212 1)",
}


def _fraction(value: float) -> str:
    """``0.05`` -> ``"1/20"`` when it is one over a whole number, else the number."""
    inverse = 1 / value if value else math.inf
    if math.isfinite(inverse) and abs(inverse - round(inverse)) < 1e-9:
        return "1" if round(inverse) == 1 else f"1/{round(inverse)}"
    return f"{value:.4g}"


def _method_multiplier(method: str | None, R: int, fay_k: float | None) -> float | None:
    """The method's own variance multiplier (``None``: JKn's differ per replicate, or no method)."""
    rules = {
        "fay": lambda: 1 / (R * (1 - (fay_k or 0.0)) ** 2),
        "brr": lambda: 1 / R,
        "jk1": lambda: (R - 1) / R,
        "jk2": lambda: 1.0,
        "bootstrap": lambda: 1 / (R - 1),
    }
    return rules[method]() if method in rules else None


def _multiplier(spec: ReplicateSpec) -> str:
    """The variance multiplier ``c`` of the replicates, in words: the method's rule when the
    multipliers are the method's own, else the values given."""
    default = _method_multiplier(spec.method, spec.n_replicates, spec.fay_k)
    if spec.rscales is not None or spec.scale is not None:
        values = np.asarray(spec.rscales if spec.rscales is not None else [1.0]) * (spec.scale or 1.0)
        if not np.allclose(values, values[0]):
            return f"given per replicate ({float(values.min()):.4g} to {float(values.max()):.4g})"
        if default is None or not np.isclose(values[0], default):
            return f"{_fraction(float(values[0]))} (given)"
    if spec.method == "jkn":
        return "(n_h \u2212 1)/n_h per replicate"
    rule, shown = _MULTIPLIERS[spec.method], _fraction(default)
    return rule if rule == shown else f"{rule} = {shown}"


def _errors(result: MixResult, options: FitOptions) -> StandardErrors:
    top = str(result.ngroups.index[-1]) if len(result.ngroups) > 1 else "rows"
    n_top = int(result.ngroups.iloc[-1])
    spec = options.replicates
    if spec is not None:
        return StandardErrors(
            kind="replicate",
            cluster=top,
            n_clusters=n_top,
            method=spec.method,
            n_replicates=spec.n_replicates,
            fay_k=spec.fay_k if spec.method == "fay" else None,
            multiplier=_multiplier(spec),
            mse=spec.mse,
            replicate_columns=tuple(spec.columns[0]),
            replicate_levels=tuple(spec.levels),
        )
    design = None if result.frame is None else result.frame.sampling
    if design is None:
        return StandardErrors(kind="sandwich", cluster=top, n_clusters=n_top)
    return StandardErrors(
        kind="linearization",
        cluster=top,
        n_clusters=n_top,
        strata=design.strata,
        n_strata=design.n_strata if design.strata is not None else None,
        psu=design.psu_column,
        n_psu=design.n_psu,
        fpc=design.fpc,
        nest=bool(options.design is not None and options.design.nest),
        lonely_adjusted=int(np.sum(design.psus_per_stratum == 1)),
    )


def _pv(result: MixResult, options: FitOptions) -> PlausibleValues | None:
    fits = getattr(result, "fits", None)
    rubin = getattr(result, "rubin", None)
    if not fits or rubin is None:
        return None
    fmi = rubin["fmi"].to_numpy(dtype=float)
    spec = options.replicates
    return PlausibleValues(
        M=len(fits),
        columns=tuple(str(c) for c in getattr(result, "pv", []) or []),
        sampling="all" if spec is None else spec.pv_sampling,
        fmi_low=float(np.nanmin(fmi)),
        fmi_high=float(np.nanmax(fmi)),
    )


def _df(result: MixResult, kind: str) -> DegreesOfFreedom:
    from wemix_nb.results.diagnostics import linearization_design
    from wemix_nb.results.extras import degrees_of_freedom

    values = degrees_of_freedom(result, kind).to_numpy(dtype=float)
    n_top = int(result.ngroups.iloc[-1])
    n_psu, n_strata = linearization_design(result) or (None, None)
    few = n_top < FEW_GROUPS if n_psu is None else n_psu - n_strata < FEW_GROUPS
    return DegreesOfFreedom(
        kind=kind,
        low=float(values.min()),
        high=float(values.max()),
        n_top=n_top,
        n_fixed=len(result.coef),
        few_groups=few,
        n_psu=n_psu,
        n_strata=n_strata,
    )


def package_version() -> str:
    """wemix_nb's version (read from the loaded package: importing it here would reach up the
    stages)."""
    return str(sys.modules["wemix_nb"].__version__)


def _software() -> tuple[str, str]:
    return f"wemix_nb {package_version()}", platform.python_version()


def check_df(df: str | None) -> None:
    """Raise :class:`~wemix_nb.errors.ArgumentError` unless ``df`` is ``None`` or one of
    :data:`DF_KINDS`."""
    if df is not None and df not in DF_KINDS:
        raise ArgumentError(f"df must be None or one of {', '.join(map(repr, DF_KINDS))}; got {df!r}.")


def method_facts(result: MixResult, df: str | None = None, conf_level: float = 0.95) -> MethodFacts:
    """The :class:`MethodFacts` of a fit.

    Parameters
    ----------
    result
        A fitted model (:class:`~wemix_nb.MixResult`, a plausible-value or a replicate result).
    df
        The reference distribution of the report's tests (``None``: the one ``tidy()`` uses by
        default for this fit).
    conf_level
        The confidence level of the report's intervals.

    Returns
    -------
    MethodFacts
    """
    check_df(df)
    options = _options(result)
    frame = result.frame
    levels = _levels(result, options)
    software, python = _software()
    dropped_missing = int(frame.n_dropped_missing) if frame is not None else 0
    dropped_zero = int(frame.n_dropped_zero_weight) if frame is not None else 0
    dropped_pv = int(getattr(result, "n_dropped_pv", 0) or 0)
    family = result.family
    return MethodFacts(
        formula=str(result.formula),
        response=str(frame.parsed.response)
        if frame is not None
        else str(result.formula).split("~")[0].strip(),
        family="gaussian" if family is None else family.name,
        link="identity" if family is None else family.link,
        offsets=_offsets(result),
        nquad=None if family is None else int(result.nquad or options.nquad),
        adaptive=bool(result.is_adaptive),
        laplace_rounding=bool(options.laplace_rounding) and family is not None,
        random=_random(result),
        levels=levels,
        weighting=_weighting(levels),
        conditional=bool(options.cweights),
        scaling=frame.weight_scaling if frame is not None else options.scale_weights,
        center_group=tuple(sorted((options.center_group or {}).items())),
        center_grand=options.center_grand,
        errors=_errors(result, options),
        pv=_pv(result, options),
        df=_df(result, default_df(result) if df is None else df),
        conf_level=float(conf_level),
        rows_given=levels[0].n + dropped_missing + dropped_zero + dropped_pv,
        dropped_missing=dropped_missing,
        dropped_missing_pv=dropped_pv,
        dropped_zero_weight=dropped_zero,
        software=software,
        python=python,
    )
