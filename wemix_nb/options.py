"""The options of one fit, validated once: :class:`FitOptions`.

:func:`wemix_nb.mix` turns its keyword arguments into a frozen :class:`FitOptions` before anything
is computed, so every later stage (the model frame, the estimators, plausible values, parallel
fits, the reports) reads checked, typed values instead of re-validating loose arguments. A result
keeps the options it was fitted with (``result.options``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.families import Family, get_family
from wemix_nb.model.weights import check_scaling_method


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
    ) -> FitOptions:
        """Validate :func:`~wemix_nb.mix`'s keyword arguments (raising
        :class:`~wemix_nb.errors.ArgumentError` or :class:`~wemix_nb.errors.FamilyError` with
        what is wrong) and freeze them."""
        return cls(
            weights=_weight_columns(weights),
            cweights=_flag(cweights, "cweights"),
            center_group=_center_group(center_group),
            center_grand=_formula_text(center_grand, "center_grand"),
            scale_weights=_scaling(scale_weights),
            family=_family(family, link),
            nquad=_positive_int(nquad, "nquad", "(1 = Laplace)"),
            max_iteration=_positive_int(max_iteration, "max_iteration"),
            start=_start(start),
            keep_adapting=_flag(keep_adapting, "keep_adapting"),
            verbose=_flag(verbose, "verbose"),
            progress=None if progress is None else _flag(progress, "progress"),
            laplace_rounding=_flag(laplace_rounding, "laplace_rounding"),
            pv=None if pv is None else tuple(pv),
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
        return out

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
# validation of single arguments


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ArgumentError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def _positive_int(value: Any, name: str, note: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer{' ' + note if note else ''}, got {value!r}.")
    return int(value)


def _weight_columns(weights: Any) -> tuple[str, ...] | None:
    if weights is None:
        return None
    if (
        isinstance(weights, str)
        or not isinstance(weights, Sequence)
        or not all(isinstance(w, str) for w in weights)
    ):
        raise ArgumentError(
            "weights must be a list of column names, level 1 first, e.g. ['w_student', 'w_school']; "
            f"got {weights!r}."
        )
    return tuple(weights)


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
    try:
        values = np.asarray(start, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ArgumentError(f"start must be a sequence of numbers, got {start!r}.") from None
    if not all(math.isfinite(v) for v in values):
        raise ArgumentError(f"start must hold finite numbers, got {list(values)}.")
    return tuple(float(v) for v in values)
