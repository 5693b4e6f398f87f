"""The public entry point :func:`mix`: builds the model frame, fits, and assembles the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.linear import fit_linear
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame, build_model_frame, check_linear_identifiable
from wemix_nb.results.assemble import glmm_result, linear_result
from wemix_nb.results.result import MixResult


@threadpool_limits.wrap(limits=1, user_api="blas")
def mix(
    formula: str,
    data: pd.DataFrame,
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
    pv: Sequence[str] | None = None,
    n_jobs: int | None = None,
    client: Any = None,
    scale_weights: str = "none",
    progress: bool | None = None,
    laplace_rounding: bool = False,
) -> MixResult:
    """Fit a mixed model with survey weights at every level (multilevel pseudo-ML).

    Parameters
    ----------
    formula
        lme4-style formula: ``"y ~ x1 + x2 + (1 + x1 | school)"``. Nested levels are separate
        bars, ``(1 | school) + (1 | school:class)`` or ``(1 | school/class)``.
    data
        A pandas DataFrame. Rows with a missing value in any used column, or with a zero
        weight, are dropped with a :class:`~wemix_nb.errors.DroppedRowsWarning` that counts them.
    weights
        Weight column names, level 1 (rows) first, then one per grouping level from the lowest
        (most groups) to the top. ``None``: unit weights (an unweighted ML fit).
    family
        ``None`` or ``"gaussian"`` for the linear model; ``"binomial"`` or ``"poisson"`` (or a
        :mod:`wemix_nb.families` object) for a GLMM fitted by adaptive Gauss-Hermite quadrature.
    link
        Link for a GLMM family given by name (``"logit"``/``"probit"`` for binomial).
    cweights
        True if the weight columns are conditional (each level given the one above); by default
        they are unconditional (inverse overall selection probabilities).
    center_group
        ``{grouping factor: "~ x1 + x2"}``: centre variables at their weighted group means.
    center_grand
        ``"~ x1 + x2"``: centre variables at their weighted grand means.
    nquad
        Quadrature points per random effect for GLMMs (1 = Laplace).
    max_iteration
        GLMMs: maximum quasi-Newton iterations of each phase (a Laplace fit that supplies start
        values, then the quadrature fit; a few final Newton steps follow).
    start
        Starting values: theta for linear models; (beta[, theta]) for GLMMs.
    keep_adapting
        Accepted for compatibility with WeMix, where it has no effect either: the quadrature is
        always re-centred at the modes for every likelihood evaluation.
    verbose
        Print optimiser progress (GLMMs).
    pv
        Plausible-value columns (``["pv1math", ..., "pv5math"]``): the model is fitted once per
        plausible value (replacing the formula's response) and the fits combined by Rubin's rules
        into a :class:`~wemix_nb.pv.PVResult`. A response with a range, ``"pv{1..5}math ~ ..."``,
        does the same.
    n_jobs, client
        Plausible values only: fit them on ``n_jobs`` local processes (``-1``: one per CPU) or on
        a Dask ``distributed.Client`` (see :func:`wemix_nb.fit_many`).
    scale_weights
        ``"none"`` (default, as WeMix), ``"cluster"`` or ``"effective"``: rescale the conditional
        level-1 weights within each level-2 group to sum to its size or its effective size (see
        :func:`wemix_nb.scale_weights`).
    progress
        Progress bar over plausible values, and over the iterations of a GLMM fit that takes more
        than about two seconds (``None``: only in an interactive session; ``False``: never).
    laplace_rounding
        Binomial GLMMs with ``nquad=1`` only: reproduce WeMix's Laplace objective, which rounds
        non-integer level-1 weights (a WeMix quirk; the default uses the weights exactly).

    Returns
    -------
    MixResult

    Notes
    -----
    The fit runs with one BLAS thread: its matrices are tiny per-group blocks, for which threaded
    BLAS only adds synchronisation (about 3x slower on two cores).
    """
    from wemix_nb.survey.pv import fit_plausible_values, has_pv_range

    if pv is not None or has_pv_range(formula):
        return fit_plausible_values(
            formula,
            data,
            weights,
            pv=pv,
            n_jobs=n_jobs,
            client=client,
            progress=progress,
            family=family,
            link=link,
            cweights=cweights,
            center_group=center_group,
            center_grand=center_grand,
            nquad=nquad,
            max_iteration=max_iteration,
            start=start,
            keep_adapting=keep_adapting,
            verbose=verbose,
            scale_weights=scale_weights,
            laplace_rounding=laplace_rounding,
        )
    fam = None
    if family is not None and family != "gaussian":
        from wemix_nb.estimation.families import get_family

        fam = get_family(family, link)
    if isinstance(nquad, bool) or not isinstance(nquad, int | np.integer) or nquad < 1:
        raise ArgumentError(f"nquad must be a positive integer, got {nquad!r}.")
    if fam is None and link not in (None, "identity"):
        raise ArgumentError(
            f"link={link!r} needs a GLMM family (family='binomial' or 'poisson'); the linear model has "
            "the identity link."
        )
    if (
        isinstance(max_iteration, bool)
        or not isinstance(max_iteration, int | np.integer)
        or max_iteration < 1
    ):
        raise ArgumentError(f"max_iteration must be a positive integer, got {max_iteration!r}.")
    if scale_weights != "none":
        from wemix_nb.survey.scaling import scaled_data

        data = scaled_data(
            formula,
            data,
            weights,
            scale_weights,
            cweights=cweights,
            center_group=center_group,
            center_grand=center_grand,
            binomial_response=fam is not None and fam.name == "binomial",
        )
    frame = build_model_frame(
        formula,
        data,
        weights,
        cweights=cweights,
        center_group=center_group,
        center_grand=center_grand,
        binomial_response=fam is not None and fam.name == "binomial",
    )
    options = {
        "weights": list(weights) if weights is not None else None,
        "cweights": cweights,
        "center_group": dict(center_group) if center_group else None,
        "center_grand": center_grand,
    }
    if scale_weights != "none":
        options["scale_weights"] = scale_weights
    if fam is None:
        return _fit_linear_model(formula, frame, start, options)
    from wemix_nb.estimation.glmm import fit_glmm

    fit = fit_glmm(
        frame,
        fam,
        nquad=int(nquad),
        start=start,
        max_iteration=max_iteration,
        keep_adapting=keep_adapting,
        verbose=verbose,
        progress=progress,
        laplace_rounding=laplace_rounding,
    )
    options.update(nquad=int(nquad), max_iteration=max_iteration, keep_adapting=keep_adapting)
    return glmm_result(formula, frame, fam, fit, options)


def _fit_linear_model(formula: str, frame: ModelFrame, start, options: dict) -> MixResult:
    check_linear_identifiable(frame)
    if start is not None:
        start = np.asarray(start, dtype=float)
        names = CovarianceStructure(frame.levels).names
        if start.shape != (len(names),):
            raise ArgumentError(
                f"start for this linear model is theta, {len(names)} value(s) in the order "
                f"{names}; got {start.size}."
            )
    problem, solution, info = fit_linear(frame, start)
    return linear_result(formula, frame, problem, solution, info, options)
