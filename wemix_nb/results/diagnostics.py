"""What a reader of a fit must know before trusting its p-values and variance components.

:func:`diagnose` turns a :class:`~wemix_nb.MixResult` into a :class:`Diagnostics` value: plain
facts (how many top-level groups the robust standard errors rest on, which (co)variances sit on
the boundary, what the ICC means here) with the sentences that say them. The HTML report,
``summary()``, ``tidy()``'s default reference distribution and the warning at fit time all read
it, so they say the same thing.

Few top-level groups
    The sandwich standard errors are clustered on the top level. With fewer than
    :data:`FEW_GROUPS` clusters they are themselves noisy and normal-based p-values are too small,
    so the default reference becomes the t distribution with (top-level groups - fixed effects)
    degrees of freedom (``tidy(df="normal")`` still gives WeMix's normal reference).
    With fewer than :data:`VERY_FEW_GROUPS` the top level's variance itself is barely identified
    (it is estimated from that many random effects: with 2 groups, equivalent weightings of one
    3-level binomial data set put it at 0.1 and at 150), which the sentence and the warning add.
Few PSUs
    Design-based (linearized) standard errors (``mix(..., strata=, psu=)``) rest on the PSU totals
    centred within strata: their degrees of freedom are PSUs - strata (one stratum without
    ``strata``; R ``survey``'s ``degf()``). Below :data:`FEW_GROUPS` of them the default reference
    is the t distribution with that many degrees of freedom, as for few top-level groups.
    Replicate-weight standard errors are not flagged.
Boundary (singular) fits
    As lme4's ``isSingular``: a diagonal entry of a level's relative Cholesky factor below
    :data:`SINGULAR_TOL` (a variance numerically zero, or a correlation at +/-1).
ICC
    With random slopes the share of the variance between groups depends on the covariates; the
    ICC reported is the share at covariate values 0 (intercept variances only). GLMM ICCs are on
    the latent scale (residual pi^2/3 for logit, 1 for probit).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wemix_nb.errors import FewGroupsWarning, SingularFitWarning
from wemix_nb.model.variance import VarianceLevel
from wemix_nb.results.notes import se_method

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = [
    "FEW_GROUPS",
    "SINGULAR_TOL",
    "VERY_FEW_GROUPS",
    "BoundaryEstimate",
    "Diagnostics",
    "design_df",
    "diagnose",
    "linearization_design",
    "warn_diagnostics",
]

#: below this many top-level groups the default reference distribution is t, not normal
FEW_GROUPS = 30
#: below this many top-level groups the top level's variance is barely identified
VERY_FEW_GROUPS = 5
#: lme4's ``isSingular`` tolerance on the diagonal of the relative Cholesky factors
SINGULAR_TOL = 1e-4
#: a correlation this close to +/-1 on a singular level is reported as +/-1
CORRELATION_ONE = 0.9995
#: latent residual variance of binomial links (logistic: pi^2/3; standard normal: 1)
LATENT_RESIDUAL = {"logit": math.pi**2 / 3, "probit": 1.0}
INTERCEPT = "Intercept"


@dataclass(frozen=True)
class BoundaryEstimate:
    """One (co)variance on the boundary of the parameter space.

    Attributes
    ----------
    group
        The grouping factor.
    kind
        ``"variance"`` (numerically zero), ``"correlation"`` (at +/-1) or ``"covariance"`` (the
        level's covariance matrix is singular otherwise: a combination of its effects has variance
        zero).
    label
        The term (variance) or the two terms (``"Intercept × Days"``).
    value
        The variance, the correlation, or the smallest relative Cholesky diagonal.
    """

    group: str
    kind: str
    label: str
    value: float

    def describe(self) -> str:
        """The estimate in words: ``"Subject: variance of Days is 0"``."""
        if self.kind == "variance":
            return f"{self.group}: the variance of {self.label} is numerically 0"
        if self.kind == "correlation":
            return f"{self.group}: the correlation {self.label} is {self.value:+.3f}"
        return f"{self.group}: a combination of the random effects has variance 0"


@dataclass(frozen=True)
class Diagnostics:
    """Facts about a fit that qualify its inference (``MixResult.diagnostics``).

    Attributes
    ----------
    top_group
        The top-level grouping factor (the clusters of the robust standard errors).
    n_top_groups
        Its number of groups.
    n_fixed
        Number of fixed effects.
    few_groups
        Too few clusters behind the standard errors for a normal reference: fewer than
        :data:`FEW_GROUPS` top-level groups behind clustered sandwich standard errors, or fewer
        than :data:`FEW_GROUPS` design degrees of freedom (PSUs - strata) behind design-based
        (linearized) ones; never for replicate-weight standard errors.
    reference_df
        Degrees of freedom of the default reference distribution of p-values and intervals:
        ``inf`` (normal, as WeMix), top-level groups minus fixed effects, or for design-based
        standard errors PSUs minus strata (at least 1).
    boundary
        The (co)variances on the boundary (empty unless the fit is singular).
    converged
        Whether the optimiser converged.
    icc
        The intraclass correlation as reported (see :attr:`icc_label`); ``None`` if not defined
        (Poisson GLMMs).
    icc_label
        What :attr:`icc` is: ``"ICC"``, ``"ICC at covariate values 0"``, ``"ICC (latent scale)"``...
    icc_note
        One sentence on how to read the ICC (``None`` for a plain random-intercept linear model).
    random_slopes
        The terms with a random slope (any level).
    n_psu, n_strata
        The PSUs and strata of design-based (linearized) standard errors (one stratum without
        ``strata``); ``None`` for clustered sandwich and replicate-weight standard errors.
    """

    top_group: str
    n_top_groups: int
    n_fixed: int
    few_groups: bool
    reference_df: float
    boundary: tuple[BoundaryEstimate, ...]
    converged: bool
    icc: float | None
    icc_label: str
    icc_note: str | None
    random_slopes: tuple[str, ...] = ()
    n_psu: int | None = None
    n_strata: int | None = None

    @property
    def design_based(self) -> bool:
        """The standard errors are design-based (linearized): the clusters are PSUs in strata."""
        return self.n_psu is not None

    @property
    def n_clusters(self) -> int:
        """The number of clusters the standard errors rest on: PSUs or top-level groups."""
        return self.n_psu if self.n_psu is not None else self.n_top_groups

    @property
    def cluster_label(self) -> str:
        """What the clusters are: ``"PSUs"`` or ``"top-level groups"``."""
        return "PSUs" if self.design_based else "top-level groups"

    @property
    def clusters(self) -> str:
        """The clusters in words: ``"24 PSUs in 12 strata"`` or ``"3 top-level groups (school)"``."""
        if self.design_based:
            strata = "stratum" if self.n_strata == 1 else "strata"
            return f"{self.n_psu} PSUs in {self.n_strata} {strata}"
        return f"{self.n_top_groups} top-level groups ({self.top_group})"

    @property
    def df_rule(self) -> str:
        """How :attr:`reference_df` is counted: ``"24 PSUs − 12 strata"`` or ``"3 top-level groups
        − 2 fixed effects"``."""
        if self.design_based:
            return f"{self.n_psu} PSUs − {self.n_strata} {'stratum' if self.n_strata == 1 else 'strata'}"
        return f"{self.n_top_groups} top-level groups − {self.n_fixed} fixed effects"

    @property
    def is_singular(self) -> bool:
        """A boundary (singular) fit, as lme4's ``isSingular``."""
        return bool(self.boundary)

    @property
    def default_df(self) -> str:
        """The ``df`` kind that ``tidy()`` and the report use by default."""
        return "groups" if self.few_groups else "normal"

    @property
    def reference(self) -> str:
        """The default reference distribution in words."""
        if not self.few_groups:
            return "normal reference distribution"
        return f"t reference distribution with {self.reference_df:g} df ({self.df_rule})"

    @property
    def few_groups_note(self) -> str | None:
        """The few-groups sentence, or ``None``."""
        if not self.few_groups:
            return None
        if self.design_based:
            return (
                f"Only {self.clusters} behind the design-based standard errors: with fewer than "
                f"{FEW_GROUPS} design degrees of freedom (PSUs − strata) they are themselves "
                f"uncertain, so p-values and intervals use the t distribution with {self.reference_df:g} "
                f"df ({self.df_rule}) instead of the normal (tidy(df='normal') gives the normal "
                "reference)." + self.top_variance_note
            )
        return (
            f"Only {self.n_top_groups} top-level groups ({self.top_group}) behind the robust "
            f"(sandwich) standard errors: with fewer than {FEW_GROUPS} they are themselves "
            f"uncertain, so p-values and intervals use the t distribution with {self.reference_df:g} "
            f"df ({self.n_top_groups} groups − {self.n_fixed} fixed effects) instead of the normal "
            "(tidy(df='normal') gives WeMix's normal reference)." + self.top_variance_note
        )

    @property
    def top_variance_note(self) -> str:
        """With fewer than :data:`VERY_FEW_GROUPS` top-level groups, the sentence on the top
        level's variance (with a leading space), else ``""``."""
        if self.n_top_groups >= VERY_FEW_GROUPS or self.top_group == "rows":
            return ""
        return (
            f" With only {self.n_top_groups} groups the variance of the random effects of "
            f"{self.top_group} is barely identified: equivalent data or start values can give very "
            f"different estimates of it; consider {self.top_group} as a fixed effect instead."
        )

    @property
    def singular_note(self) -> str | None:
        """The boundary-fit sentence, or ``None``."""
        if not self.boundary:
            return None
        return (
            f"Boundary (singular) fit: {'; '.join(b.describe() for b in self.boundary)}. The data do "
            "not support this part of the random-effect structure (often too complex a model for the "
            "number of groups): consider dropping the term or its correlation; standard errors and "
            "tests of these (co)variances are unreliable."
        )

    def notes(self) -> list[str]:
        """Every sentence that applies: few groups, boundary fit, ICC, convergence."""
        notes = [self.few_groups_note, self.singular_note, self.icc_note]
        if not self.converged:
            notes.append("The optimiser did not converge: the estimates may be unreliable.")
        return [note for note in notes if note]


def _singular_level(level: VarianceLevel, scale: float) -> list[BoundaryEstimate]:
    """The boundary estimates of one level (empty if its relative factor has no tiny diagonal)."""
    lam = level.factor(scale)
    if not np.any(np.diag(lam) < SINGULAR_TOL):
        return []
    sigma = level.sigma
    relative_sd = np.sqrt(np.clip(np.diag(sigma), 0, None) / scale)
    zero = relative_sd < SINGULAR_TOL
    found = [
        BoundaryEstimate(level.group, "variance", level.terms[i], float(sigma[i, i]))
        for i in np.flatnonzero(zero)
    ]
    for block in level.blocks:
        for a, i in enumerate(block):
            for j in block[a + 1 :]:
                if zero[i] or zero[j]:
                    continue
                corr = sigma[i, j] / math.sqrt(sigma[i, i] * sigma[j, j])
                if abs(corr) >= CORRELATION_ONE:
                    label = f"{level.terms[i]} × {level.terms[j]}"
                    found.append(BoundaryEstimate(level.group, "correlation", label, float(corr)))
    if not found:
        found.append(BoundaryEstimate(level.group, "covariance", "", float(np.min(np.diag(lam)))))
    return found


def _residual_scale(result: MixResult) -> float | None:
    """The residual variance the ICC and the relative factors are measured against."""
    if result.family is None:
        return result.variance.residual
    if result.family.name == "binomial":
        return LATENT_RESIDUAL.get(result.family.link)
    return None


def _icc(result: MixResult, slopes: tuple[str, ...]) -> tuple[float | None, str, str | None]:
    """(value, label, note) of the ICC as reported."""
    latent = result.family is not None
    residual = _residual_scale(result)
    scale = f" (latent {result.link} scale)" if latent else ""
    if residual is None:
        return None, "ICC", None
    if not slopes:
        note = (
            f"ICC{scale} = {result.ICC:.4g}: the random-effect variance over itself plus the latent "
            f"residual variance ({residual:.4g})."
            if latent and result.ICC is not None
            else None
        )
        return result.ICC, f"ICC{scale}", note
    intercepts = sum(
        float(level.sigma[i, i])
        for level in result.variance.levels
        for i, term in enumerate(level.terms)
        if term == INTERCEPT
    )
    value = intercepts / (intercepts + residual)
    at = ", ".join(f"{term} = 0" for term in slopes)
    note = (
        f"With random slopes the share of the variance that lies between groups depends on the "
        f"covariates: at covariate values 0 ({at}) it is {value:.4g}{scale}, the ICC the report "
        "shows."
    )
    if result.ICC is not None:
        note += f" WeMix's ICC ({result.ICC:.4g}) adds the slope variances to the intercepts'."
    return value, f"ICC at covariate values 0{scale}", note


def linearization_design(result: MixResult) -> tuple[int, int] | None:
    """(PSUs, strata) behind design-based (linearized) standard errors, one stratum without
    ``strata``; ``None`` for clustered sandwich and replicate-weight standard errors."""
    if getattr(result.options, "replicates", None) is not None:
        return None
    frame = result.frame
    design = None if frame is None else frame.sampling
    if design is None:
        return None
    return design.n_psu, design.n_strata if design.strata is not None else 1


def design_df(result: MixResult) -> int | None:
    """The design degrees of freedom of linearized standard errors, PSUs - strata (at least 1;
    R ``survey``'s ``degf()``), or ``None`` when the standard errors are not design-based."""
    design = linearization_design(result)
    return None if design is None else max(design[0] - design[1], 1)


def diagnose(result: MixResult) -> Diagnostics:
    """The :class:`Diagnostics` of a fitted model."""
    ngroups = result.ngroups
    top = str(ngroups.index[-1]) if len(ngroups) > 1 else "rows"
    n_top = int(ngroups.iloc[-1])
    p = len(result.coef)
    scale = _residual_scale(result) if result.family is None else 1.0
    boundary = []
    for level in result.variance.levels:
        boundary += _singular_level(level, scale if scale else 1.0)
    slopes = tuple(
        dict.fromkeys(term for level in result.variance.levels for term in level.terms if term != INTERCEPT)
    )
    icc, label, note = _icc(result, slopes)
    design = linearization_design(result)
    if design is not None:
        n_psu, n_strata = design
        few = n_psu - n_strata < FEW_GROUPS
        df = float(max(n_psu - n_strata, 1))
    else:
        n_psu = n_strata = None
        # replicate-weight SEs are another matter
        few = n_top < FEW_GROUPS and se_method(result).startswith("Robust (sandwich)")
        df = float(max(n_top - p, 1))
    return Diagnostics(
        top_group=top,
        n_top_groups=n_top,
        n_fixed=p,
        few_groups=few,
        reference_df=df if few else math.inf,
        boundary=tuple(boundary),
        converged=bool(result.converged),
        icc=icc,
        icc_label=label,
        icc_note=note,
        random_slopes=slopes,
        n_psu=n_psu,
        n_strata=n_strata,
    )


#: (category, message, file, line) of the warnings already given
_GIVEN: set[tuple] = set()


def _action(message: str, category: type[Warning], module: str, lineno: int) -> str:
    """The action of the first warning filter that matches (as :mod:`warnings` chooses it)."""
    for action, text, kind, mod, line in warnings.filters:
        if (
            (text is None or text.match(message))
            and issubclass(category, kind)
            and (mod is None or mod.match(module))
            and line in (0, lineno)
        ):
            return action
    return "default"


def _warn_once_per_place(message: str, category: type[Warning], stacklevel: int) -> None:
    """Warn once per message and line of the caller, as Python's ``"default"`` action does.

    Python's own registry is reset whenever the warning filters change, which fitting does
    (``warnings.catch_warnings``), so a loop of fits would repeat the warning at every fit; this
    registry is not. Filters that ask for every occurrence (``"always"``, ``"error"``) are obeyed.
    """
    frame = sys._getframe(stacklevel)
    module = frame.f_globals.get("__name__", "")
    key = (category, message, frame.f_code.co_filename, frame.f_lineno)
    if _action(message, category, module, frame.f_lineno) not in ("always", "error"):
        if key in _GIVEN:
            return
        _GIVEN.add(key)
    warnings.warn(message, category, stacklevel=stacklevel + 1)


def warn_diagnostics(result: MixResult, stacklevel: int = 2) -> None:
    """Warn about a boundary fit (:class:`~wemix_nb.errors.SingularFitWarning`) and about few
    top-level groups (:class:`~wemix_nb.errors.FewGroupsWarning`), once per message and line of
    the caller (``stacklevel``: as for :func:`warnings.warn`, from this function's caller)."""
    diagnostics = result.diagnostics
    if diagnostics.is_singular:
        found = "; ".join(b.describe() for b in diagnostics.boundary)
        message = f"Boundary (singular) fit: {found} (see fit.diagnostics)."
        _warn_once_per_place(message, SingularFitWarning, stacklevel + 1)
    if diagnostics.few_groups and diagnostics.design_based:
        message = (
            f"Only {diagnostics.clusters} behind the design-based standard errors: p-values and "
            f"intervals use the t distribution with {diagnostics.reference_df:g} df (PSUs − strata) "
            "by default (see fit.diagnostics)." + diagnostics.top_variance_note
        )
        _warn_once_per_place(message, FewGroupsWarning, stacklevel + 1)
    elif diagnostics.few_groups:
        message = (
            f"Only {diagnostics.n_top_groups} top-level groups ({diagnostics.top_group}) behind the "
            f"robust standard errors: p-values and intervals use the t distribution with "
            f"{diagnostics.reference_df:g} df by default (see fit.diagnostics)."
            + diagnostics.top_variance_note
        )
        _warn_once_per_place(message, FewGroupsWarning, stacklevel + 1)
