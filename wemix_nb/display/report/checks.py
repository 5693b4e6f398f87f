"""The diagnostics section of a report: what a reader must know before trusting a fit's numbers.

Per fit, one statement each on convergence (and that of replicate and plausible-value refits),
the number of top-level groups behind the standard errors, boundary (singular) variance
estimates, separation in binomial models, what the ICC means, and the weights' design effects.
Where a fit carries structured diagnostics (``result.diagnostics``) their facts and sentences are
used, so that the report and the notebook view say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

import wemix_nb.display.report.style as style
from wemix_nb.display.report.content import Inline, bold, code, inline, italic
from wemix_nb.display.report.facts import FEW_GROUPS, MethodFacts

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult

__all__ = ["EXTREME_PROBABILITY", "SINGULAR_TOL", "diagnostic_items", "separated_rows"]

#: fitted probabilities closer than this to 0 or 1 are a sign of separation
EXTREME_PROBABILITY = 1e-8
#: lme4's ``isSingular`` tolerance on relative standard deviations
SINGULAR_TOL = 1e-4
#: a correlation this close to +/-1 is on the boundary
CORRELATION_ONE = 0.9995


def _convergence(result: MixResult) -> Inline:
    message = str(getattr(result, "message", "") or "").rstrip(".")
    fits = getattr(result, "fits", None)
    if fits:
        failed = [str(name) for name, fit in zip(result.pv, fits, strict=True) if not fit.converged]
        if failed:
            listed = ", ".join(failed)
            return inline(
                f"The fits of {len(failed)} of the {len(fits)} plausible values did not converge: {listed}."
            )
        return inline(f"The fits of all {len(fits)} plausible values converged.")
    if result.converged:
        return inline(f"The optimiser converged ({message}).")
    return inline(bold("The optimiser did not converge"), f" ({message}): the estimates may be unreliable.")


def _replicate_fits(result: MixResult) -> Inline | None:
    fits = getattr(result, "fits", None) or [result]
    flags = [getattr(fit, "replicate_converged", None) for fit in fits]
    flags = [np.asarray(f, dtype=bool) for f in flags if f is not None]
    if not flags:
        return None
    total = sum(f.size for f in flags)
    failed = sum(int((~f).sum()) for f in flags)
    if failed:
        return inline(
            bold(f"{failed} of {total:,} replicate refits did not converge"),
            "; their estimates enter the replicate variance as they stopped.",
        )
    return inline(f"All {total:,} replicate refits converged.")


def _psus(f: MethodFacts) -> Inline:
    """The PSUs and strata behind design-based (linearized) standard errors."""
    df = f.df
    strata = "stratum" if df.n_strata == 1 else "strata"
    psus = f"{style.count(df.n_psu)} PSUs in {style.count(df.n_strata)} {strata}"
    if not df.few_groups:
        return inline(
            f"The design-based standard errors rest on {psus} "
            f"({style.count(df.n_psu - df.n_strata)} degrees of freedom)."
        )
    text = inline(bold(f"Only {psus}"), " behind the design-based standard errors")
    if df.kind == "normal":
        return inline(
            text,
            ": with fewer than 30 degrees of freedom (PSUs minus strata), normal-based ",
            italic("p"),
            " values are too small (a t reference with PSUs minus strata degrees of freedom is safer).",
        )
    return inline(text, f": tests use a t reference with {style.df_value(df.low)} degrees of freedom.")


def _clusters(result: MixResult, f: MethodFacts) -> Inline:
    diagnostics = getattr(result, "diagnostics", None)
    note = getattr(diagnostics, "few_groups_note", None)
    if note and f.df.kind != "normal":
        return inline(note)
    if f.df.n_psu is not None:
        return _psus(f)
    n, top = f.df.n_top, f.errors.cluster
    if n >= FEW_GROUPS:
        return inline(f"The standard errors rest on {style.count(n)} top-level groups (", code(top), ").")
    text = inline(
        bold(f"Only {style.count(n)} top-level groups"), " (", code(top), ") behind the standard errors"
    )
    if f.df.kind == "normal":
        return inline(
            text,
            ": with fewer than 30 clusters, normal-based ",
            italic("p"),
            " values are too small (a t reference with top-level groups minus fixed effects degrees of "
            "freedom is safer).",
        )
    return inline(text, f": tests use a t reference with {style.df_value(f.df.low)} degrees of freedom.")


def _boundary_fallback(result: MixResult) -> list[str]:
    """Boundary estimates as lme4's ``isSingular`` finds them (when the fit has no diagnostics)."""
    residual = result.variance.residual if result.family is None else 1.0
    scale = math.sqrt(residual) if residual and residual > 0 else 1.0
    found = []
    for level in result.variance.levels:
        sd = np.sqrt(np.clip(np.diag(level.sigma), 0, None))
        for term, s in zip(level.terms, sd, strict=True):
            if s / scale < SINGULAR_TOL:
                found.append(f"{level.group}: the variance of {term} is numerically 0")
        for block in level.blocks:
            for a, i in enumerate(block):
                for j in block[a + 1 :]:
                    if sd[i] / scale >= SINGULAR_TOL and sd[j] / scale >= SINGULAR_TOL:
                        r = level.sigma[i, j] / (sd[i] * sd[j])
                        if abs(r) >= CORRELATION_ONE:
                            pair = f"{level.terms[i]} \u00d7 {level.terms[j]}"
                            found.append(f"{level.group}: the correlation {pair} is {r:+.3f}")
    return found


def _boundary(result: MixResult) -> Inline:
    diagnostics = getattr(result, "diagnostics", None)
    if diagnostics is not None:
        found = [b.describe() for b in diagnostics.boundary]
    else:
        found = _boundary_fallback(result)
    if not found:
        return inline("No variance component is on the boundary of the parameter space (not a singular fit).")
    return inline(
        bold("Boundary (singular) fit"),
        f": {'; '.join(found)}. The data do not support this part of the random-effect structure; "
        "standard errors and tests of these (co)variances are unreliable.",
    )


def separated_rows(result: MixResult) -> int | None:
    """Rows of a binomial fit whose fitted probability is numerically 0 or 1 (``None`` for other
    families)."""
    if result.family is None or result.family.name != "binomial":
        return None
    fits = getattr(result, "fits", None) or [result]
    mu = np.concatenate([np.asarray(fit.fitted, dtype=float) for fit in fits])
    return int(np.sum((mu < EXTREME_PROBABILITY) | (mu > 1 - EXTREME_PROBABILITY)))


def _separation(result: MixResult) -> Inline | None:
    n = separated_rows(result)
    if n is None:
        return None
    if n == 0:
        return inline("No fitted probability is numerically 0 or 1 (no sign of separation).")
    return inline(
        bold(f"Fitted probabilities of {n:,} row(s) are numerically 0 or 1"),
        ": the predictors or the groups may separate the outcome, so some estimates diverge and "
        "their standard errors are unreliable.",
    )


def _icc(result: MixResult) -> Inline | None:
    note = getattr(getattr(result, "diagnostics", None), "icc_note", None)
    return inline(note) if note else None


def _design_effects(result: MixResult, table_number: int) -> Inline:
    from wemix_nb.display.tables import level_frame

    frame = level_frame(result)
    parts = [
        f"{style.fixed(r.deff, 2)} at level {r.level} ({'rows' if r.level == 1 else r.unit})"
        for r in frame.itertuples(index=False)
        if np.isfinite(r.deff)
    ]
    if not parts:
        return inline(f"The model is unweighted (Table {table_number}).")
    listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return inline(f"Kish design effects of the weights: {listed} (Table {table_number}).")


def diagnostic_items(
    fits: Sequence[MixResult], facts: Sequence[MethodFacts], names: Sequence[str], weights_table: int
) -> list[Inline]:
    """The diagnostics of each fit as list items (led by the fit's name when there are several).

    Parameters
    ----------
    fits, facts, names
        The fits, their method facts and their names.
    weights_table
        The number of the weights table the design-effect item refers to.
    """
    items = []
    several = len(fits) > 1
    for result, f, name in zip(fits, facts, names, strict=True):
        found = [
            _convergence(result),
            _replicate_fits(result),
            _clusters(result, f),
            _boundary(result),
            _separation(result),
            _icc(result),
            _design_effects(result, weights_table),
        ]
        for item in found:
            if item is not None:
                items.append(inline(bold(f"{name}: "), item) if several else item)
    return items
