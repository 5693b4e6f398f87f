"""One fit, end to end: model frame -> estimator -> result.

:func:`fit_single` is the single-fit path that :func:`wemix_nb.mix`, plausible values and parallel
fits all call with already validated :class:`~wemix_nb.options.FitOptions`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.glmm import fit_glmm
from wemix_nb.estimation.likelihood import LogLikelihood, log_likelihood
from wemix_nb.estimation.linear import fit_linear
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.design import offset_input
from wemix_nb.model.frame import ModelFrame, build_model_frame, check_linear_identifiable
from wemix_nb.model.identification import check_fixed_interpolation, check_residual_variance
from wemix_nb.model.sampling import sampling_design
from wemix_nb.options import FitOptions
from wemix_nb.results.assemble import glmm_result, linear_result
from wemix_nb.results.conditioning import condition
from wemix_nb.results.result import MixResult


@threadpool_limits.wrap(limits=1, user_api="blas")
def fit_single(formula: str, data: pd.DataFrame, options: FitOptions) -> MixResult:
    """Fit one model to one data set.

    Parameters
    ----------
    formula
        lme4-style model formula.
    data
        The data (not modified).
    options
        Validated options (:meth:`FitOptions.from_arguments`).

    Returns
    -------
    MixResult

    Notes
    -----
    The fit runs with one BLAS thread: its matrices are tiny per-group blocks, for which threaded
    BLAS only adds synchronisation (about 3x slower on two cores).
    """
    return fit_frame(formula, model_frame(formula, data, options), options)


def fit_frame(formula: str, frame: ModelFrame, options: FitOptions) -> MixResult:
    """Fit one model to its model frame (:func:`model_frame`); what :func:`fit_single` runs after
    building the frame, for callers that build or reuse frames themselves."""
    if options.is_linear:
        return _fit_linear_model(formula, frame, options)
    # the estimator sees columns and weights of order one (wemix_nb.results.conditioning)
    scales = condition(frame, weights=not options.laplace_rounding)
    fit = fit_glmm(
        scales.frame(frame),
        options.family,
        nquad=options.nquad,
        start=scales.glmm_start(options.start),
        max_iteration=options.max_iteration,
        verbose=options.verbose,
        progress=options.progress,
        laplace_rounding=options.laplace_rounding,
    )
    return glmm_result(formula, frame, options.family, scales.glmm(fit), options)


def likelihood_function(
    formula: str, data: pd.DataFrame, options: FitOptions, profiled: bool = False
) -> LogLikelihood:
    """The log pseudo-likelihood that :func:`fit_single` maximises, as a function of the
    parameters (:class:`~wemix_nb.estimation.likelihood.LogLikelihood`)."""
    frame = model_frame(formula, data, options)
    # the function the estimator maximises: on the conditioned frame (wemix_nb.results.conditioning)
    scales = condition(frame, weights=options.is_linear or not options.laplace_rounding)
    if options.is_linear:
        check_linear_identifiable(frame)
        return scales.likelihood(log_likelihood(scales.frame(frame), profiled=profiled))
    return scales.likelihood(
        log_likelihood(scales.frame(frame), options.family, options.nquad, options.laplace_rounding, profiled)
    )


def model_frame(formula: str, data: pd.DataFrame, options: FitOptions) -> ModelFrame:
    """The model frame of a fit with these options (weights scaled if asked), with its sampling
    design when ``strata``/``psu``/``fpc`` were given."""
    frame = build_model_frame(
        formula,
        data,
        None if options.weights is None else list(options.weights),
        cweights=options.cweights,
        center_group=options.center_group,
        center_grand=options.center_grand,
        scale_weights=options.scale_weights,
        binomial_response=options.binomial_response,
        offset=offset_input(options.offset),
    )
    if options.design is None:
        return frame
    spec, top = options.design, frame.top
    design = sampling_design(
        rows_of_fit(data, frame, spec.columns),
        top.group_index,
        top.labels,
        top.name,
        strata=spec.strata,
        psu=spec.psu,
        fpc=spec.fpc,
        nest=spec.nest,
        lonely_psu=spec.lonely_psu,
    )
    return replace(frame, sampling=design)


def rows_of_fit(data: pd.DataFrame, frame: ModelFrame, columns: list[str]) -> pd.DataFrame:
    """The columns ``columns`` (those present) of the rows a fit used, in the frame's order.

    Raises
    ------
    ArgumentError
        If the data's index repeats a label (the rows of the fit cannot be found by label).
    """
    if not data.index.is_unique:
        raise ArgumentError(
            "The data's index repeats labels, so the rows of the fit cannot be matched to the design "
            "or replicate weight columns; use data.reset_index(drop=True)."
        )
    return data.loc[frame.row_index, [c for c in columns if c in data.columns]]


def _fit_linear_model(formula: str, frame: ModelFrame, options: FitOptions) -> MixResult:
    check_linear_identifiable(frame)
    check_fixed_interpolation(frame)
    start = None
    if options.start is not None:
        names = CovarianceStructure(frame.levels).names
        if len(options.start) != len(names):
            raise ArgumentError(
                f"start for this linear model is theta, {len(names)} value(s) in the order "
                f"{names}; got {len(options.start)}."
            )
        start = np.asarray(options.start)
    scales = condition(frame)
    problem, solution, info = fit_linear(scales.frame(frame), scales.linear_start(start))
    check_residual_variance(frame, solution.sigma**2)
    return linear_result(
        formula,
        frame,
        scales.problem(frame, problem),
        scales.linear(solution, frame.fixed_names),
        info,
        options,
        se_beta=scales.beta_se(solution.cov_beta),
    )
