"""The public entry point :func:`mix`: builds the model frame, fits, and assembles the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ._covariance import CovarianceStructure
from ._frame import ModelFrame, build_model_frame, check_linear_identifiable
from ._linear import LinearProblem, LinearSolution, fit_linear
from .errors import ArgumentError
from .results import VARDF_COLUMNS, MixResult


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
    from .pv import fit_plausible_values, has_pv_range

    if pv is not None or has_pv_range(formula):
        return fit_plausible_values(
            formula, data, weights, pv=pv, n_jobs=n_jobs, client=client, progress=progress, family=family,
            link=link, cweights=cweights, center_group=center_group, center_grand=center_grand, nquad=nquad,
            max_iteration=max_iteration, start=start, keep_adapting=keep_adapting, verbose=verbose,
            scale_weights=scale_weights, laplace_rounding=laplace_rounding,
        )
    fam = None
    if family is not None and family != "gaussian":
        from .families import get_family

        fam = get_family(family, link)
    if isinstance(nquad, bool) or not isinstance(nquad, int | np.integer) or nquad < 1:
        raise ArgumentError(f"nquad must be a positive integer, got {nquad!r}.")
    if fam is None and link not in (None, "identity"):
        raise ArgumentError(
            f"link={link!r} needs a GLMM family (family='binomial' or 'poisson'); the linear model has "
            "the identity link."
        )
    if isinstance(max_iteration, bool) or not isinstance(max_iteration, int | np.integer) \
            or max_iteration < 1:
        raise ArgumentError(f"max_iteration must be a positive integer, got {max_iteration!r}.")
    if scale_weights != "none":
        from .scaling import scaled_data

        data = scaled_data(
            formula, data, weights, scale_weights, cweights=cweights, center_group=center_group,
            center_grand=center_grand, binomial_response=fam is not None and fam.name == "binomial",
        )
    frame = build_model_frame(
        formula, data, weights, cweights=cweights, center_group=center_group,
        center_grand=center_grand, binomial_response=fam is not None and fam.name == "binomial",
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
    from ._glmm import fit_glmm
    from ._glmm_result import glmm_result

    fit = fit_glmm(frame, fam, nquad=int(nquad), start=start, max_iteration=max_iteration,
                   keep_adapting=keep_adapting, verbose=verbose, progress=progress,
                   laplace_rounding=laplace_rounding)
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
    return _linear_result(formula, frame, problem, solution, info, options)


# -------------------------------------------------------------------------------------------------
# assembling results


def group_tables(frame: ModelFrame) -> tuple[pd.Series, pd.DataFrame]:
    """``ngroups`` and ``wgtStats`` of a model frame."""
    ngroups = pd.Series(
        {"Number of obs": frame.n, **{lv.name: lv.n_groups for lv in frame.levels}}, name="ngroups"
    )
    rows = [frame.weight1] + [lv.weight for lv in frame.levels]
    wgt = pd.DataFrame(
        {"mean": [r.mean() for r in rows], "sum": [r.sum() for r in rows],
         "min": [r.min() for r in rows], "max": [r.max() for r in rows]},
        index=pd.RangeIndex(1, len(rows) + 1, name="level"),
    )
    return ngroups, wgt


def random_effect_tables(frame: ModelFrame, b: list[np.ndarray], sd: list[np.ndarray]):
    """Per grouping factor: DataFrames of the modes and of their conditional SDs (``(G, q)`` arrays)."""
    ranef, ranef_sd = {}, {}
    for level, modes, sds in zip(frame.levels, b, sd, strict=True):
        index = pd.Index(level.labels, name=level.name)
        ranef[level.name] = pd.DataFrame(modes, index=index, columns=level.terms)
        ranef_sd[level.name] = pd.DataFrame(sds, index=index, columns=level.terms)
    return ranef, ranef_sd


def _linear_result(formula, frame, problem: LinearProblem, sol: LinearSolution, info, options) -> MixResult:
    st = problem.structure
    names = frame.fixed_names
    sigma2 = sol.sigma**2
    covs = st.covariances(sol.theta, sigma2)
    var_rows, vars_ = [], {}
    for k, level in enumerate(frame.levels):
        for a, term in enumerate(level.terms):
            vars_[f"{level.name}.{term}"] = covs[k][a, a]
            var_rows.append((level.name, term, None, covs[k][a, a], level.n_groups, level.number,
                             sol.var_se.get((k, a, a)), f"{level.name}.{term}"))
        in_block = {(a, c) for block in level.blocks for a in block for c in block if a < c}
        for a, c in sorted(in_block):
            var_rows.append((level.name, level.terms[a], level.terms[c], covs[k][a, c], level.n_groups,
                             level.number, sol.var_se.get((k, a, c)), f"{level.name}.{level.terms[a]}"))
    vars_["Residual"] = sigma2
    var_rows.sort(key=lambda row: row[5])
    var_rows.append(("Residual", None, None, sigma2, frame.n, 1, sol.var_se.get(("residual",)), "Residual"))
    varDF = pd.DataFrame(var_rows, columns=VARDF_COLUMNS)
    re_total = sum(np.trace(c) for c in covs)
    ngroups, wgt = group_tables(frame)
    sd = [np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None)) for cov in sol.b_cov]
    ranef, ranef_sd = random_effect_tables(frame, sol.b, sd)
    theta_names = st.names
    return MixResult(
        formula=formula,
        family=None,
        coef=pd.Series(sol.beta, index=names, name="coef"),
        SE=pd.Series(np.sqrt(np.diag(sol.cov_beta)), index=names, name="SE"),
        cov_mat=pd.DataFrame(sol.cov_beta, index=names, columns=names),
        model_cov=pd.DataFrame(sol.model_cov, index=names, columns=names),
        theta=pd.Series(sol.theta, index=theta_names, name="theta"),
        vars=pd.Series(vars_, name="vars"),
        sigma=sol.sigma,
        lnl=sol.lnl,
        ICC=float(re_total / (re_total + sigma2)),
        ngroups=ngroups,
        wgtStats=wgt,
        var_theta=pd.DataFrame(sol.var_theta, index=theta_names, columns=theta_names),
        varDF=varDF,
        ranef=ranef,
        ranef_sd=ranef_sd,
        resid=pd.Series(sol.resid, index=frame.row_index, name="resid"),
        fitted=pd.Series(sol.fitted, index=frame.row_index, name="fitted"),
        converged=info["converged"],
        n_iterations=info["iterations"],
        message=info["message"],
        options=options,
        frame=frame,
        extra={"problem": problem, "solution": sol},
    )
