"""``fit_glmm``: start values, input checks, the sequence of optimisation phases and the result.

Start values come from a weighted GLM (IRLS) and identity factors, not from an unweighted
``glmer`` fit as in WeMix; the optimiser runs to a tight optimum instead of stopping after 10
Newton steps. ``keep_adapting`` is accepted for compatibility and has no effect: the nodes are
re-adapted at every evaluation, which keeps the objective smooth.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from wemix_nb._progress import iteration_bar
from wemix_nb.errors import ArgumentError, ConvergenceWarning, FormulaError, NumericalWarning
from wemix_nb.estimation.families import Family, get_family
from wemix_nb.estimation.glmm.degenerate import (
    OutcomeSummary,
    check_group_separation,
    check_single_row_groups,
    variance_runaway,
)
from wemix_nb.estimation.glmm.optimize import (
    _gradient_tolerance,
    _newton_polish,
    _Objective,
    _quasi_newton,
    _step_in_standard_errors,
)
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes, QuadratureModel
from wemix_nb.estimation.glmm.sandwich import _robust_covariance, _top_group_scores
from wemix_nb.estimation.glmm.three_level import _ThreeLevel
from wemix_nb.estimation.glmm.two_level import _TwoLevel
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.identification import check_top_level_groups


@dataclass
class GlmmFit:
    """A fitted weighted GLMM (what :func:`fit_glmm` returns).

    Attributes
    ----------
    family
        The :class:`~wemix_nb.estimation.families.Family`.
    nquad
        Quadrature points per random-effect dimension (1 = Laplace).
    fixed_names
        Names of the fixed effects (``p``).
    beta
        ``(p,)`` fixed effects.
    theta
        ``(k,)`` free entries of the factors ``Lambda_l`` on the absolute scale, in the layout of
        :class:`~wemix_nb.model.covariance.CovarianceStructure` (lme4 order); diagonal entries
        >= 0.
    theta_names
        Names of ``theta`` (``"<group>.<term>"``, ``"<group>.<row>.<col>"``).
    lnl
        Weighted pseudo-log-likelihood at the estimate (with rounded level-1 weights when
        ``laplace_rounding`` was used).
    lnl_by_group
        ``(G_top,)`` per-top-level-group contributions (exact weights).
    var_params
        ``(k,)`` variance parameters: per level the variances, then the covariances
        (column-major lower triangle), WeMix's ``vars`` order.
    var_names
        Their names: ``"<group>:<term>"`` and ``"<group>:<col term>:<row term>"``.
    covariances
        Per level the ``q x q`` matrix ``Sigma_l = Lambda_l Lambda_l'``.
    cov_beta
        ``(p, p)`` robust (sandwich, clustered on the top level, ``G/(G-1)``) covariance of beta.
    se_beta
        ``(p,)`` its square-root diagonal.
    vcov_full
        ``(p+k, p+k)`` sandwich covariance of ``(beta, var_params)``.
    var_params_se
        ``(k,)`` robust standard errors of ``var_params``.
    hessian
        ``(p+k, p+k)`` Hessian of the total log-likelihood in ``(beta, var_params)`` at the estimate
        (WeMix stores the same matrix as ``invHessian``).
    scores
        ``(G_top, p+k)`` per-top-group score vectors in ``(beta, var_params)``.
    modes
        One :class:`GlmmLevelModes` per level, level 2 first.
    eta, mu
        ``(n,)`` linear predictor ``X beta + sum_l Z_l b_l`` and mean at the modes, in the model
        frame's row order.
    converged
        Whether the optimiser met its criterion.
    n_iterations
        Quasi-Newton iterations used (Laplace pre-fit plus quadrature phase).
    n_evaluations
        Likelihood evaluations used.
    gradient_norm
        Max absolute gradient of ``lnl`` in ``(beta, theta)`` at the estimate.
    message
        Human-readable optimiser status.
    laplace_rounding
        Whether WeMix's rounded binomial Laplace objective was used.
    extra
        Room for further diagnostics (empty from :func:`fit_glmm`).
    """

    family: Family
    nquad: int
    fixed_names: list[str]
    beta: np.ndarray
    theta: np.ndarray
    theta_names: list[str]
    lnl: float
    lnl_by_group: np.ndarray
    var_params: np.ndarray
    var_names: list[str]
    covariances: list[np.ndarray]
    cov_beta: np.ndarray
    se_beta: np.ndarray
    vcov_full: np.ndarray
    var_params_se: np.ndarray
    hessian: np.ndarray
    scores: np.ndarray
    modes: list[GlmmLevelModes]
    eta: np.ndarray
    mu: np.ndarray
    converged: bool
    n_iterations: int
    n_evaluations: int
    gradient_norm: float
    message: str
    laplace_rounding: bool = False
    extra: dict = field(default_factory=dict)


def fit_glmm(
    frame: ModelFrame,
    family: str | Family,
    nquad: int = 13,
    start: np.ndarray | None = None,
    max_iteration: int = 100,
    keep_adapting: bool = False,
    verbose: bool = False,
    laplace_rounding: bool = False,
    progress: bool | None = None,
    model_factory: Callable[[int, bool], QuadratureModel] | None = None,
    outcome: OutcomeSummary | None = None,
) -> GlmmFit:
    """Fit a weighted GLMM by adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    frame
        Model frame from :func:`wemix_nb.model.frame.build_model_frame` (with
        ``binomial_response=True`` for binomial models).
    family
        ``"binomial"``, ``"poisson"`` or a :class:`~wemix_nb.estimation.families.Family`.
    nquad
        Quadrature points per random-effect dimension, an integer >= 1; 1 = Laplace. The cost
        per group grows like ``nquad ** q`` (2 levels) or ``nquad ** (q2 + q3)`` (3 levels).
    start
        Start values: ``beta`` (``p`` values) or ``(beta, theta)`` (``p + k`` values, theta in the
        :class:`~wemix_nb.model.covariance.CovarianceStructure` layout, absolute scale).
    max_iteration
        Maximum quasi-Newton iterations per phase (Laplace pre-fit, quadrature).
    keep_adapting
        Accepted for WeMix compatibility; no effect (nodes are re-adapted at every evaluation).
    verbose
        Print the optimiser's progress.
    laplace_rounding
        Binomial with ``nquad=1`` only: use WeMix's objective with rounded level-1 weights, for
        compatibility with WeMix's numbers. Default: exact weights.
    progress
        Progress bar over the optimiser's iterations, shown only if the fit takes more than about
        two seconds (``None``: only in an interactive session; ``False``: never).
    model_factory
        ``(nquad, laplace_rounding) -> QuadratureModel``: the likelihood when the rows are not in
        ``frame`` (:func:`~wemix_nb.mix_dask` sums it over partitions on Dask workers); ``frame``
        then describes the model (levels, names) without rows. Its ``eta_rows`` returns ``None``
        and ``eta``, ``mu`` of the fit are empty.
    outcome
        The summary of the rows that the checks of degenerate models need, when the rows are not
        in ``frame`` (summed over the partitions); computed from ``frame`` by default.

    Returns
    -------
    GlmmFit

    Raises
    ------
    ArgumentError
        ``nquad`` not an integer >= 1 (``7.0`` included), or a ``start`` of the wrong length.
    FormulaError
        More than three levels, or several random-effect bars on one grouping factor.
    DataError
        A response the family cannot model, or a single top-level group (robust SEs need at
        least 2).
    """
    del keep_adapting  # documented no-op
    family = get_family(family)
    nquad, outcome = _check_inputs(frame, family, nquad, outcome)
    structure = CovarianceStructure(frame.levels)
    p = frame.X.shape[1]
    make = model_factory or (lambda nq, rounding: _make_model(frame, family, nq, rounding))
    model = make(nquad, laplace_rounding)
    weight_unit = float(np.mean(frame.top.weight))  # lnl scales with the top-level weights
    tol = _gradient_tolerance(model, weight_unit)
    x = _start_values(frame, family, structure, start)

    # Laplace pre-fit, quadrature phase, Newton polish
    bar = iteration_bar(2 * max_iteration, progress=progress)  # shown only if the fit is slow
    prefit = _laplace_prefit(make, p, model, x, max_iteration, verbose, (tol, 2e-4 * weight_unit), bar)
    obj = _Objective(model, p)
    aghq = _quasi_newton(obj, prefit.x, prefit.Hneg, max_iteration, verbose, f"AGHQ({nquad})", tol, bar)
    bar.close()
    polished = _newton_polish(obj, aghq, max_iteration - aghq.iterations, tol)
    iterations = prefit.iterations + aghq.iterations + polished.steps

    # the estimate, with the diagonal of each Lambda >= 0
    beta, theta, H = _canonical(structure, polished.x, polished.hessian)
    x = np.r_[beta, theta]
    ev = obj.full(x)
    gradient = obj.value_grad(x)[1]
    gnorm = float(np.max(np.abs(gradient)))

    # robust covariance, fitted values and modes
    score_obj = _score_objective(make, nquad, model, obj)
    scores, lnl_by_group = _top_group_scores(obj, score_obj, x, ev)
    lnl_by_group = lnl_by_group + score_obj.model.constant_by_group
    # converged only if the polished point is stationary by a fresh Hessian, or (where rounding
    # noise holds the Newton decrement up) within 1e-3 robust SEs of the optimum -- a yardstick
    # only when the scores of the top-level groups can vary in every direction: with no more
    # groups than parameters some robust SEs are arbitrary and would excuse any gradient
    step_se = _step_in_standard_errors(gradient, H, scores)
    converged = polished.stationary or (step_se < 1e-3 and scores.shape[0] > len(x))
    runaway = variance_runaway(frame, family, structure.covariances(theta), outcome)
    message = _convergence_message(converged, iterations, gnorm, polished.decrement, step_se, runaway)
    converged = converged and runaway is None
    levels = [lev.name for lev in frame.levels]
    robust = _robust_covariance(structure, levels, theta, H, gradient, scores, frame.sampling)
    eta, mu = _fitted_values(model, family, ev)
    return GlmmFit(
        family=family,
        nquad=nquad,
        fixed_names=list(frame.fixed_names),
        beta=beta,
        theta=theta,
        theta_names=list(structure.names),
        lnl=float(ev["value"] + np.sum(model.constant_by_group)),
        lnl_by_group=np.asarray(lnl_by_group),
        var_params=robust.var_params,
        var_names=robust.var_names,
        covariances=structure.covariances(theta),
        cov_beta=robust.vcov[:p, :p],
        se_beta=robust.se[:p],
        vcov_full=robust.vcov,
        var_params_se=robust.se[p:],
        hessian=robust.hessian,
        scores=robust.scores,
        modes=model.level_modes(frame, theta, ev),
        eta=eta,
        mu=mu,
        converged=bool(converged),
        n_iterations=int(iterations),
        n_evaluations=int(prefit.evaluations + model.n_evaluations),
        gradient_norm=gnorm,
        message=message,
        laplace_rounding=bool(model.rounding),
    )


def glmm_likelihood(
    frame: ModelFrame, family: str | Family, nquad: int = 13, laplace_rounding: bool = False
) -> tuple[QuadratureModel, np.ndarray]:
    """The likelihood :func:`fit_glmm` maximises, and its start values.

    Parameters are checked as :func:`fit_glmm` checks them. Returns the
    :class:`~wemix_nb.estimation.glmm.protocol.QuadratureModel` (its ``evaluate(beta, theta)``
    gives the value ``fit_glmm`` reports as ``lnl`` at the estimate) and the start
    ``(beta, theta)`` of the fit: a weighted GLM and identity factors.
    """
    family = get_family(family)
    nquad, _ = _check_inputs(frame, family, nquad)
    model = _make_model(frame, family, nquad, laplace_rounding)
    return model, _start_values(frame, family, CovarianceStructure(frame.levels), None)


# =============================================================================================
# the steps of fit_glmm


def _check_inputs(
    frame: ModelFrame, family: Family, nquad: int, outcome: OutcomeSummary | None = None
) -> tuple[int, OutcomeSummary]:
    """``nquad`` as an int and the summary of the rows (``outcome``, or computed from the frame);
    the model's levels and response checked against what GLMMs support."""
    # user options are validated once, by FitOptions (wemix_nb.options), with the same message;
    # a non-integer reaching this point, 7.0 included, is a caller's mistake, not a value to round
    if isinstance(nquad, bool) or not isinstance(nquad, int | np.integer) or nquad < 1:
        raise ArgumentError(f"nquad must be a positive integer (1 = Laplace), got {nquad!r}.")
    L = frame.n_levels
    if L < 2:
        raise FormulaError("A GLMM needs at least one random-effect term such as '(1 | group)'.")
    if L > 3:
        raise FormulaError(
            f"GLMMs with more than three levels are not supported; this model has {L} levels "
            f"({', '.join(repr(lev.name) for lev in frame.levels)})."
        )
    for lev in frame.levels:
        if len(lev.blocks) > 1:
            raise FormulaError(
                f"GLMMs support one random-effect term per grouping factor; {lev.name!r} has "
                f"{len(lev.blocks)} uncorrelated blocks (several bars or '||'). Combine them into "
                f"one term such as '(1 + x | {lev.name})'."
            )
    check_top_level_groups(frame)
    if frame.trials is None:  # proportions with trials were checked when the frame was built
        family.check_response(frame.y, frame.parsed.response)
    outcome = OutcomeSummary.of(frame, family) if outcome is None else outcome
    check_single_row_groups(frame, family, outcome)
    check_group_separation(frame, family, outcome)
    return int(nquad), outcome


def _make_model(frame: ModelFrame, family: Family, nquad: int, laplace_rounding: bool) -> QuadratureModel:
    """The likelihood of a 2- or 3-level frame."""
    model_class = _TwoLevel if frame.n_levels == 2 else _ThreeLevel
    return model_class(frame, family, nquad, laplace_rounding)


def _start_values(
    frame: ModelFrame, family: Family, structure: CovarianceStructure, start: np.ndarray | None
) -> np.ndarray:
    """``(beta, theta)`` to start from: the user's, or a weighted GLM and identity factors."""
    p, k = frame.X.shape[1], structure.size
    theta0 = structure.start()
    if start is None:
        # a row of n trials counts n times in the GLM, as in the likelihood
        w = frame.weight1 if frame.trials is None else frame.weight1 * frame.trials
        return np.r_[_weighted_glm(frame.X, frame.y, w, family, frame.offset), theta0]
    start = np.asarray(start, dtype=float).ravel()
    if start.size not in (p, p + k):
        raise ArgumentError(
            f"start must hold {p} fixed effects {frame.fixed_names} or those followed by "
            f"{k} theta values {structure.names}; got {start.size} values."
        )
    return np.r_[start[:p], start[p:] if start.size == p + k else theta0]


def _weighted_glm(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    family: Family,
    offset: np.ndarray | None = None,
    max_iter: int = 50,
) -> np.ndarray:
    """Weighted GLM by IRLS (start values for beta)."""
    offset = np.zeros(len(y)) if offset is None else offset
    if family.name == "binomial":
        ybar = np.sum(w * y) / np.sum(w)
        mu = 0.5 * (y + ybar)
    else:
        mu = y + 0.1 * max(np.sum(w * y) / np.sum(w), 0.1)
    eta = family.linkfun(mu)
    beta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        me = family.mu_eta(eta)
        mu = family.linkinv(eta)
        var = np.maximum(family.variance(mu), 1e-300)
        wk = w * me**2 / var
        zk = eta - offset + (y - mu) / np.maximum(me, 1e-300)
        sw = np.sqrt(wk)
        new = np.linalg.lstsq(X * sw[:, None], zk * sw, rcond=None)[0]
        done = np.max(np.abs(new - beta)) < 1e-10 * (1.0 + np.max(np.abs(new)))
        beta = new
        eta = offset + X @ beta
        if done:
            break
    if not np.all(np.isfinite(beta)):
        beta = np.zeros(X.shape[1])
    return beta


@dataclass
class _Prefit:
    """Where the Laplace pre-fit leaves the quadrature phase."""

    x: np.ndarray
    Hneg: np.ndarray | None  # its quasi-Newton matrix, a start for the next phase
    iterations: int
    evaluations: int


def _laplace_prefit(
    make: Callable[[int, bool], QuadratureModel],
    p: int,
    model: QuadratureModel,
    x: np.ndarray,
    max_iteration: int,
    verbose: bool,
    tols: tuple[float, float],
    bar,
) -> _Prefit:
    """Maximise the (cheap) Laplace approximation first, when the objective is anything else.

    The result is only a start for the quadrature phase, so the pre-fit stops when the expected
    gain is below the larger of ``tols`` (the fit's tolerance, and 1e-4 in units of the mean
    top-level weight); its modes become the warm start of ``model``.
    """
    if not (model.nquad > 1 or model.rounding):
        return _Prefit(x, None, 0, 0)
    pre = make(1, False)
    res = _quasi_newton(_Objective(pre, p), x, None, max_iteration, verbose, "Laplace", max(tols), bar)
    model.restore_modes(pre.save_modes())
    return _Prefit(res.x, res.Hneg, res.iterations, pre.n_evaluations)


def _canonical(
    structure: CovarianceStructure, x: np.ndarray, H: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``beta``, canonical ``theta`` (diagonal entries >= 0) and the Hessian in those signs.

    lnl is even in each column of ``Lambda``, so flipping a column's sign flips the sign of the
    Hessian's rows and columns of that column's entries.
    """
    p, k = len(x) - structure.size, structure.size
    beta = x[:p].copy()
    theta = structure.canonical(x[p:])
    flip = np.ones(p + k)
    flip[p:] = np.where(np.isclose(theta, x[p:]), 1.0, -1.0)
    flip[p:][theta == 0] = 1.0
    return beta, theta, flip[:, None] * H * flip[None, :]


def _convergence_message(
    converged: bool, iterations: int, gnorm: float, decrement: float, step_se: float, runaway: str | None
) -> str:
    """The optimiser's status; a :class:`ConvergenceWarning` if it did not converge."""
    status = (
        f"max |gradient| = {gnorm:.3g}, Newton decrement = {decrement:.3g}, Newton step = "
        f"{step_se:.3g} robust SEs"
    )
    if runaway is not None and converged:  # converged, but on the way to infinity
        warnings.warn(
            f"The GLMM fit did not converge: {runaway}. Estimates and standard errors are not reliable.",
            ConvergenceWarning,
            stacklevel=3,
        )
        return f"not converged: {runaway}; {status}"
    if not converged:
        warnings.warn(
            f"The GLMM optimiser did not converge after {iterations} iterations ({status}); "
            "estimates may be inaccurate. Try a larger max_iteration or other start values.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return (
        "converged" if converged else "not converged"
    ) + f" after {iterations} quasi-Newton iterations; {status}"


def _score_objective(
    make: Callable[[int, bool], QuadratureModel], nquad: int, model: QuadratureModel, obj: _Objective
) -> _Objective:
    """The objective whose per-group gradients are the scores: ``obj``, or with WeMix's rounded
    Laplace weights the same model with exact weights (WeMix also takes the scores with exact
    weights), warm-started at the modes of ``model``."""
    if not model.rounding:
        return obj
    exact = make(nquad, False)
    exact.restore_modes(model.save_modes())
    return _Objective(exact, obj.p)


def _fitted_values(model: QuadratureModel, family: Family, ev: dict) -> tuple[np.ndarray, np.ndarray]:
    """``eta`` and ``mu`` at the modes (frame row order; empty when the model keeps its rows
    elsewhere); warns about fitted probabilities of numerically 0 or 1 (separation)."""
    eta = model.eta_rows(ev)
    if eta is None:
        return np.empty(0), np.empty(0)
    mu = family.linkinv(eta)
    if family.name == "binomial":
        warn_extreme_fitted(int(np.sum((mu < 1e-8) | (mu > 1 - 1e-8))), stacklevel=4)
    return eta, mu


def warn_extreme_fitted(extreme: int, stacklevel: int) -> None:
    """The :class:`NumericalWarning` about ``extreme`` binomial rows fitted at probabilities of
    numerically 0 or 1 (separation), if there are any."""
    if extreme:
        warnings.warn(
            f"Fitted probabilities are numerically 0 or 1 for {extreme} row(s): the predictors "
            "(or the groups) may separate the outcome, so some estimates diverge and their "
            "standard errors are unreliable.",
            NumericalWarning,
            stacklevel=stacklevel,
        )
