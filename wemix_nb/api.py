"""The public entry points: :func:`mix` (one model, or one per plausible value) and
:func:`fit_many` (many models, in parallel).

Both validate their options once into :class:`~wemix_nb.options.FitOptions`; the fitting itself is
:func:`wemix_nb.pipeline.fit_single`, which plausible values and parallel workers call directly.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wemix_nb.distributed.parallel import map_fits
from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.likelihood import LogLikelihood
from wemix_nb.options import FitOptions
from wemix_nb.pipeline import fit_single, likelihood_function
from wemix_nb.results.diagnostics import warn_diagnostics
from wemix_nb.results.result import MixResult
from wemix_nb.survey.pv import fit_plausible_values, has_pv_range, pv_formulas
from wemix_nb.survey.replicate_fit import fit_with_replicates
from wemix_nb.survey.replicates import ReplicateWeights


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
        (most groups) to the top. One column weights the rows only, every higher level having
        weight 1 (lme4's ``weights=``). ``None``: unit weights (an unweighted ML fit).
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
        Plausible values and replicate weights: fit them on ``n_jobs`` local processes (``-1``: one
        per CPU) or on a Dask ``distributed.Client`` (see :func:`wemix_nb.fit_many`).
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
    replicate_weights
        Replicate-weight standard errors for every estimate (fixed effects, variance components,
        ICC, and the Wald tests on them): the replicate columns, as a pattern
        (``"W_FSTR{1..80}"``), a list of names or a :class:`~wemix_nb.ReplicateWeights`. They are
        level-1 unconditional weights; a higher level's replicate weight is its weight times the
        rows' replicate factor (replicate / full weight), which must be constant within its groups.
        Otherwise give each level's own (unconditional) replicate columns as a dict,
        ``{1: "W_FSTR{1..80}", 2: "W_FSCH{1..80}"}`` (levels left out are derived). The model is
        fitted on the full sample and once per replicate; the result is a
        :class:`~wemix_nb.survey.replicate_result.ReplicateResult`.
    replicate_method
        ``"fay"`` (PISA), ``"brr"``, ``"jk1"``, ``"jkn"``, ``"jk2"`` (TIMSS/PIRLS) or
        ``"bootstrap"``: the variance is ``sum_r c_r (theta_r - theta)^2`` with ``c_r`` ``1 / (R (1 -
        k)^2)``, ``1 / R``, ``(R - 1) / R``, ``(n_h - 1) / n_h`` (give them in ``replicate_scale``),
        ``1`` (one replicate per zone; ``replicate_scale=0.5`` when both halves of every zone are
        replicates) and ``1 / (R - 1)``.
    fay_k
        Fay's k for ``replicate_method="fay"`` (default 0.5), in [0, 1).
    mse
        Centre the replicate estimates on the full-sample estimate (default); False: on their mean.
    replicate_scale
        The multipliers documented by the data (R survey's ``scale``/``rscales``): a number (the
        method's scale replaced) or one ``c_r`` per replicate.
    pv_sampling
        Plausible values with replicate weights: the sampling variance is the mean over plausible
        values of the replicate variance (``"all"``) or the first plausible value's (``"first"``).
    strata, psu, fpc
        Design-based (linearization) sandwich: the per-top-group scores are summed to PSUs
        (``psu``; default the top-level groups, which PSUs must contain whole), centred within
        strata, with ``n_h / (n_h - 1)`` and, with ``fpc`` (population sizes or sampling fractions
        of the PSUs per stratum), ``1 - f_h``. Without them: clustered on the top level (WeMix).
    nest
        PSU labels restart within strata (PISA's ``VARUNIT`` in ``VARSTRAT``).
    lonely_psu
        A stratum with a single PSU: ``"fail"`` (an error) or ``"adjust"`` (its total is centred on
        the grand mean, R survey's ``lonely.psu = "adjust"``).
    offset
        A known term added to the linear predictor with coefficient 1, besides the formula's
        ``offset(...)`` terms (they add up): a column name, or one value per row of ``data`` (an
        array, or a Series aligned with ``data`` by index). Poisson rates: ``offset(log(exposure))``
        in the formula, or ``offset=np.log(data["exposure"])``. For a linear model the fit
        regresses ``y - offset``. ``predict`` on new data reads the same columns from ``newdata``
        (an array offset must be passed again: ``predict(newdata, offset=...)``).

    Returns
    -------
    MixResult
        A :class:`~wemix_nb.pv.PVResult` with plausible values, a ``ReplicateResult`` with
        replicate weights (a ``PVResult`` of them with both).

    Notes
    -----
    The options are validated once, into a frozen :class:`~wemix_nb.options.FitOptions` kept as
    ``result.options``. The fit runs with one BLAS thread: its matrices are tiny per-group blocks,
    for which threaded BLAS only adds synchronisation (about 3x slower on two cores).
    """
    if pv is not None or has_pv_range(formula):
        pv_names, _ = pv_formulas(formula, pv)
    else:
        pv_names = None
    if isinstance(replicate_weights, ReplicateWeights):
        data, replicate_weights, replicate_method, fay_k, replicate_scale = _with_replicate_columns(
            data, replicate_weights, replicate_method, fay_k, replicate_scale
        )
    options = FitOptions.from_arguments(
        weights,
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
        progress=progress,
        laplace_rounding=laplace_rounding,
        pv=pv_names,
        replicate_weights=replicate_weights,
        replicate_method=replicate_method,
        fay_k=fay_k,
        mse=mse,
        replicate_scale=replicate_scale,
        pv_sampling=pv_sampling,
        strata=strata,
        psu=psu,
        fpc=fpc,
        nest=nest,
        lonely_psu=lonely_psu,
        offset=offset,
    )
    result = _fit(formula, data, options, n_jobs=n_jobs, client=client)
    warn_diagnostics(result)  # few top-level groups, boundary fit: said at fit time too
    return result


def likelihood(
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
    scale_weights: str = "none",
    laplace_rounding: bool = False,
    profiled: bool = False,
    offset: Any = None,
) -> LogLikelihood:
    """The weighted log pseudo-likelihood of a model as a function of its parameters, without
    fitting (WeMix's ``mix(..., run = FALSE)``): for teaching, profiling, or another optimiser.

    The function is the one :func:`mix` maximises (the same model frame and estimator code), so at
    a fit's estimate it returns the fit's ``lnl``: ``loglik(loglik.params_of(fit)) == fit.lnl``.

    Parameters
    ----------
    formula, data, weights
        As in :func:`mix`.
    family, link, cweights, center_group, center_grand, nquad, scale_weights, laplace_rounding, offset
        As in :func:`mix`.
    profiled
        Linear models only: the profiled likelihood, a function of ``theta`` alone (beta and sigma
        at their maximising values given theta), which is what the linear optimiser maximises and
        WeMix's linear ``lnlf`` is.

    Returns
    -------
    LogLikelihood
        ``loglik(params)`` is the log pseudo-likelihood; ``loglik.names`` the parameters' names in
        the order it takes them, ``loglik.start`` a start vector, ``loglik.by_group(params)`` the
        top-level groups' contributions, ``loglik.params_of(fit)`` a fit's parameters. The order:

        * linear models: ``(beta, theta, sigma)``, ``theta`` relative to sigma (the fit's
          ``theta``: ``Sigma_l = sigma^2 Lambda_l Lambda_l'``), ``sigma`` the residual SD;
          ``profiled=True``: ``theta``;
        * GLMMs: ``(beta, theta)``, ``theta`` the absolute factors (``Sigma_l = Lambda_l
          Lambda_l'``; WeMix's GLMM ``lnlf`` takes ``(beta, vars)`` instead).

        ``theta`` is in lme4's order and named like a fit's ``theta``.

    Examples
    --------
    >>> loglik = wemix_nb.likelihood("y ~ x + (1|g)", data, weights=["w1", "w2"])
    >>> loglik.names
    ('Intercept', 'x', 'g.Intercept', 'sigma')
    >>> from scipy.optimize import minimize
    >>> best = minimize(lambda x: -loglik(x), loglik.start, method="Nelder-Mead")
    """
    options = FitOptions.from_arguments(
        weights,
        family=family,
        link=link,
        cweights=cweights,
        center_group=center_group,
        center_grand=center_grand,
        nquad=nquad,
        scale_weights=scale_weights,
        laplace_rounding=laplace_rounding,
        offset=offset,
    )
    if not isinstance(profiled, bool):
        raise ArgumentError(f"profiled must be True or False, got {profiled!r}.")
    return likelihood_function(formula, data, options, profiled)


def _with_replicate_columns(
    data: pd.DataFrame, replicates: ReplicateWeights, method: Any, fay_k: Any, scale: Any
) -> tuple[pd.DataFrame, list[str], str, float | None, Any]:
    """The data with the columns of a :class:`ReplicateWeights` (joined on the index), and its
    method, Fay's k and multipliers as ``mix()`` arguments."""
    if method is not None or fay_k is not None:
        raise ArgumentError(
            "replicate_method and fay_k come with the ReplicateWeights given as replicate_weights; "
            "do not repeat them."
        )
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    columns = replicates.columns
    if not data.index.isin(replicates.weights.index).all():
        raise ArgumentError(
            "The ReplicateWeights do not cover every row of the data (they are matched by index); build "
            "them on this data (or on the data it was taken from)."
        )
    weights = replicates.weights.reindex(data.index)
    clash = [c for c in columns if c in data.columns and not np.allclose(data[c], weights[c], equal_nan=True)]
    if clash:
        raise ArgumentError(
            f"The data already have column(s) {clash[:3]} with other values than the ReplicateWeights; "
            "build them with another prefix=."
        )
    data = pd.concat([data.drop(columns=[c for c in columns if c in data.columns]), weights], axis=1)
    multipliers = replicates.multipliers if scale is None else scale
    return (
        data,
        columns,
        replicates.method,
        replicates.fay_k if replicates.method == "fay" else None,
        multipliers,
    )


def _fit(formula: str, data: pd.DataFrame, options: FitOptions, n_jobs=None, client=None) -> MixResult:
    """One model, or one per plausible value combined by Rubin's rules; with replicate weights,
    also one per replicate."""
    if options.replicates is not None:
        return fit_with_replicates(formula, data, options, n_jobs=n_jobs, client=client)
    if options.pv is None:
        if n_jobs is not None or client is not None:
            warnings.warn(
                "n_jobs and client spread the fits of plausible values; a single fit ignores them.",
                UserWarning,
                stacklevel=3,
            )
        return fit_single(formula, data, options)
    return fit_plausible_values(formula, data, options, n_jobs=n_jobs, client=client)


def _fit_spec(data: pd.DataFrame, formula: str, options: FitOptions) -> MixResult:
    """The task of one :func:`fit_many` entry (module level, so worker processes can run it)."""
    return _fit(formula, data, options)


def fit_many(
    specs: Sequence[Mapping[str, Any] | tuple],
    client: Any = None,
    processes: int | None = None,
    progress: bool | None = None,
    *,
    desc: str = "fits",
) -> list:
    """Fit many models, in parallel.

    Parameters
    ----------
    specs
        One entry per fit: a dict of :func:`~wemix_nb.mix` keyword arguments (with ``formula``
        and ``data``), or a ``(formula, data)`` / ``(formula, data, kwargs)`` tuple. Every entry is
        validated before any fit starts.
    client
        A Dask ``distributed.Client``: the fits run on its workers (``client.map``; each data set
        is scattered once). ``None``: local worker processes.
    processes
        Number of local worker processes (default: one per CPU, at most one per fit). ``1`` fits
        sequentially in this process. Ignored when ``client`` is given.
    progress
        Show a progress bar (``None``: only in an interactive session).
    desc
        Label of the progress bar.

    Returns
    -------
    list of MixResult
        In the order of ``specs``; identical to fitting them one by one.

    Examples
    --------
    >>> specs = [{"formula": f"{pv} ~ escs + (1|schoolid)", "data": data,
    ...           "weights": ["w_fstuwt", "w_fschwt"]} for pv in pvs]
    >>> fits = wemix_nb.fit_many(specs, processes=4)
    >>> from distributed import Client
    >>> fits = wemix_nb.fit_many(specs, client=Client())
    """
    if isinstance(specs, str | bytes | Mapping) or not isinstance(specs, Iterable):
        raise ArgumentError(
            "specs must be a list with one entry per fit (a dict of mix() arguments or a "
            f"(formula, data[, kwargs]) tuple); got {type(specs).__name__}."
        )
    tasks = [_task(spec, position) for position, spec in enumerate(specs)]
    return map_fits(_fit_spec, tasks, client=client, processes=processes, progress=progress, desc=desc)


_MIX_ARGUMENTS = set(inspect.signature(mix).parameters)


def _task(spec: Any, position: int) -> tuple[pd.DataFrame, str, FitOptions]:
    """``(data, formula, options)`` of one :func:`fit_many` entry, validated."""
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
    elif isinstance(spec, tuple | list) and len(spec) in (2, 3):
        if len(spec) == 3 and not isinstance(spec[2], Mapping):
            raise ArgumentError(
                f"specs[{position}]: the third item must be a dict of mix() arguments; "
                f"got {type(spec[2]).__name__}."
            )
        kwargs = {"formula": spec[0], "data": spec[1], **(dict(spec[2]) if len(spec) == 3 else {})}
    else:
        raise ArgumentError(
            f"specs[{position}] must be a dict of mix() arguments or a (formula, data[, kwargs]) tuple; "
            f"got {type(spec).__name__}."
        )
    for key in ("formula", "data"):
        if key not in kwargs:
            raise ArgumentError(f"specs[{position}] has no {key!r}.")
    unknown = sorted(set(kwargs) - _MIX_ARGUMENTS)
    if unknown:
        raise ArgumentError(
            f"specs[{position}] has argument(s) {', '.join(map(repr, unknown))} that mix() does not "
            f"take; it takes {', '.join(sorted(_MIX_ARGUMENTS - {'n_jobs', 'client'}))}."
        )
    formula, data = kwargs.pop("formula"), kwargs.pop("data")
    if "n_jobs" in kwargs or "client" in kwargs:
        raise ArgumentError(f"specs[{position}]: fit_many itself spreads the fits; drop n_jobs/client.")
    kwargs.setdefault("progress", False)  # no nested bars inside workers
    weights = kwargs.pop("weights", None)
    if isinstance(kwargs.get("replicate_weights"), ReplicateWeights):
        data, *replicates = _with_replicate_columns(
            data,
            kwargs.pop("replicate_weights"),
            kwargs.pop("replicate_method", None),
            kwargs.pop("fay_k", None),
            kwargs.pop("replicate_scale", None),
        )
        kwargs.update(
            zip(
                ("replicate_weights", "replicate_method", "fay_k", "replicate_scale"), replicates, strict=True
            )
        )
    pv = kwargs.pop("pv", None)
    if pv is not None or has_pv_range(formula):
        kwargs["pv"] = pv_formulas(formula, pv)[0]
    return data, formula, FitOptions.from_arguments(weights, **kwargs)
