"""Replicate-weight standard errors, alone or with plausible values: ``mix(replicate_weights=...)``.

The model is fitted once on the full sample (per plausible value), through
:func:`wemix_nb.pipeline.fit_single`. The replicate fits then reuse that fit's model frame: the
same rows and designs with each replicate's weights (:mod:`~wemix_nb.survey.replicate_frames`),
started from the full-sample estimate, and computing only the estimates:

* linear models reuse the full sample's per-group cross-products when the replicates keep the
  conditional weights (only the top-level weights change), or compute all replicates'
  cross-products in one batched pass; quasi-Newton steps on the exact gradient start with the
  full-sample Hessian (:mod:`wemix_nb.estimation.linear.refit`);
* GLMMs run the quasi-Newton phase from the full-sample estimate, modes and Hessian
  (:mod:`wemix_nb.estimation.glmm.refit`).

``n_jobs``/``client`` spread the replicate fits (and the plausible values' full-sample fits) with
:func:`~wemix_nb.distributed.parallel.map_fits`. With plausible values the per-PV results are
combined by Rubin's rules (:func:`~wemix_nb.survey.pv.combine_pv`): the sampling variance is the
mean over plausible values of the replicate variance (``pv_sampling="all"``) or the first plausible
value's (``"first"``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from wemix_nb.distributed.parallel import map_fits
from wemix_nb.errors import ArgumentError
from wemix_nb.estimation.glmm.refit import GlmmStart, glmm_start, refit_glmm
from wemix_nb.estimation.linear.problem import CrossProducts, LinearProblem
from wemix_nb.estimation.linear.refit import (
    deviance_hessian,
    refit_linear,
    replicate_cross_products,
    reweighted_problem,
)
from wemix_nb.estimation.linear.stacked import StackedTwoLevel, refit_stacked
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.design import response
from wemix_nb.model.formula import parse_formula
from wemix_nb.options import FitOptions
from wemix_nb.pipeline import fit_frame, fit_single, rows_of_fit
from wemix_nb.results.result import MixResult
from wemix_nb.survey.pv import PVResult, combine_pv, complete_pv_rows, pv_formulas, worker_processes
from wemix_nb.survey.replicate_frames import Recentred, ReplicateFrames, recentred, replicate_frames
from wemix_nb.survey.replicate_result import ReplicateResult, refit_statistics, replicate_result

# variance of the latent residual on the link scale, for the ICC of a binomial GLMM
_LATENT_RESIDUAL = {"logit": np.pi**2 / 3, "probit": 1.0}


@dataclass(eq=False)
class _LinearJob:
    """Everything a worker needs to refit the replicates of one linear full-sample fit."""

    frames: ReplicateFrames
    problem: LinearProblem
    theta: np.ndarray
    hessian: np.ndarray
    T: np.ndarray | None  # (R, G2, m, m) when the replicates change the level-1 conditional weights
    rebuild: Recentred | None = None  # replicates whose covariates are centred again

    def refit_many(self, replicates: range) -> tuple[np.ndarray, np.ndarray]:
        """Refit several replicates: two-level models all at once (:mod:`.stacked`), the replicates
        it does not settle and deeper models one by one."""
        if len(self.problem.frame.levels) != 1 or self.rebuild is not None:
            return _one_by_one(self, replicates)
        idx = np.asarray(replicates)
        T = None if self.T is None else self.T[idx]
        stack = StackedTwoLevel(
            self.problem, self.frames.groups[0][:, idx], self.frames.rows[:, idx].sum(axis=0), T
        )
        fit = refit_stacked(stack, self.theta, self.hessian)
        st = self.problem.structure
        values = np.array(
            [
                refit_statistics(st, b, t, s2, None)
                for b, t, s2 in zip(fit.beta, fit.theta, fit.sigma2, strict=True)
            ]
        )
        converged = fit.converged.copy()
        for j in np.flatnonzero(~converged):  # the general optimiser for these
            values[j], converged[j] = self.refit(int(idx[j]))
        return values, converged

    def refit(self, r: int) -> tuple[np.ndarray, bool]:
        """Refit replicate ``r`` alone."""
        if self.rebuild is not None:
            fit = refit_linear(LinearProblem(self.rebuild.frame_of(self.frames, r)), self.theta, self.hessian)
            values = refit_statistics(self.problem.structure, fit.beta, fit.theta, fit.sigma2, None)
            return values, fit.converged
        frame = self.frames.frame_of(r)
        statistics = None
        if self.T is not None:
            top_of_row = self.problem.top_of[0][frame.levels[0].group_index]
            totals = np.bincount(top_of_row, frame.weight1, minlength=frame.levels[-1].n_groups)
            statistics = CrossProducts(self.T[r], self.problem.beta0, float(frame.weight1.sum()), totals)
        problem = reweighted_problem(self.problem, frame, statistics)
        fit = refit_linear(problem, self.theta, self.hessian)
        values = refit_statistics(self.problem.structure, fit.beta, fit.theta, fit.sigma2, None)
        return values, fit.converged


@dataclass(eq=False)
class _GlmmJob:
    """Everything a worker needs to refit the replicates of one GLMM full-sample fit."""

    frames: ReplicateFrames
    options: FitOptions
    start: GlmmStart
    rebuild: Recentred | None = None  # replicates whose covariates are centred again

    def refit_many(self, replicates: range) -> tuple[np.ndarray, np.ndarray]:
        """Refit several replicates, one by one."""
        return _one_by_one(self, replicates)

    def refit(self, r: int) -> tuple[np.ndarray, bool]:
        """Refit replicate ``r``."""
        opts = self.options
        if self.rebuild is None:
            frame, start = self.frames.frame_of(r), self.start
        else:  # its groups may differ from the full sample's: no warm-start modes
            frame, start = self.rebuild.frame_of(self.frames, r), replace(self.start, modes=None)
        fit = refit_glmm(frame, opts.family, opts.nquad, start, opts.max_iteration, opts.laplace_rounding)
        latent = _LATENT_RESIDUAL.get(opts.family.link) if opts.family.name == "binomial" else None
        values = refit_statistics(CovarianceStructure(frame.levels), fit.beta, fit.theta, None, latent)
        return values, fit.converged


def _one_by_one(job: _LinearJob | _GlmmJob, replicates: range) -> tuple[np.ndarray, np.ndarray]:
    out = [job.refit(r) for r in replicates]
    return np.array([v for v, _ in out]), np.array([c for _, c in out], dtype=bool)


@threadpool_limits.wrap(limits=1, user_api="blas")
def _refit_chunk(job: _LinearJob | _GlmmJob, replicates: range) -> tuple[np.ndarray, np.ndarray]:
    """Refit a range of replicates (module level, so worker processes can run it), with one BLAS
    thread as in the workers and in :func:`~wemix_nb.pipeline.fit_single`."""
    return job.refit_many(replicates)


def _fit_full(data: pd.DataFrame, formula: str, options: FitOptions) -> MixResult:
    """One full-sample fit (module level, so worker processes can run it)."""
    return fit_single(formula, data, options)


def _same_rows_other_response(
    data: pd.DataFrame, first: MixResult, formula: str, name: str, options: FitOptions
):
    """The first plausible value's frame with the response of another (same rows, designs and
    weights), or ``None`` when the response is not a plain column or enters the centering."""
    frame = first.frame
    centred = [*(options.center_group or {}).values(), options.center_grand or ""]
    if (
        frame.parsed.response not in data.columns
        or name not in data.columns
        or any(name in c for c in centred)
    ):
        return None
    rows = rows_of_fit(data, frame, [name])
    y, levels = response(rows, name, binomial=options.binomial_response)
    if levels != frame.response_levels:
        return None
    return replace(frame, y=y, parsed=parse_formula(formula))


def _full_fits(
    data: pd.DataFrame, formulas: list[str], names: list[str] | None, options: FitOptions, processes, client
) -> list[MixResult]:
    """The full-sample fit of each plausible value (or the one fit). Linear models: the first
    plausible value's model frame with each other response, warm-started at its estimate; GLMMs
    (seconds per fit): spread with ``map_fits``."""
    if names is None or not options.is_linear:
        tasks = [(data, f, options) for f in formulas]
        return map_fits(
            _fit_full, tasks, client=client, processes=processes if len(tasks) > 1 else 1, progress=False
        )
    first = fit_single(formulas[0], data, options)
    warm = options.with_changes(start=tuple(first.details.solution.theta))
    fulls = [first]
    for formula, name in zip(formulas[1:], names[1:], strict=True):
        frame = _same_rows_other_response(data, first, formula, name, options)
        fulls.append(fit_single(formula, data, options) if frame is None else fit_frame(formula, frame, warm))
    return fulls


def _job(
    full: MixResult, frames: ReplicateFrames, options: FitOptions, rebuild: Recentred | None
) -> _LinearJob | _GlmmJob:
    """The replicate job of one full-sample fit."""
    if full.family is None:
        problem = full.details.problem
        theta = full.details.solution.theta
        T = None
        if not frames.same_conditional and rebuild is None:
            T = replicate_cross_products(full.frame, problem.beta0, frames.cond_rows)
        return _LinearJob(frames, problem, theta, deviance_hessian(problem, theta), T, rebuild)
    fit = full.details.fit
    start = glmm_start(
        full.frame, options.family, options.nquad, fit.beta, fit.theta, options.laplace_rounding
    )
    return _GlmmJob(frames, options, start, rebuild)


def _chunks(R: int, linear: bool) -> list[range]:
    """Replicates per task: one per GLMM fit (a fraction of a second each); ten per task for linear
    fits (milliseconds each), enough to balance workers and move a progress bar. The chunks do not
    depend on the number of workers, so every run computes the same stacks: results are identical
    however the fits are spread."""
    size = 10 if linear else 1
    return [range(start, min(start + size, R)) for start in range(0, R, size)]


def fit_with_replicates(
    formula: str,
    data: pd.DataFrame,
    options: FitOptions,
    *,
    n_jobs: int | None = None,
    client=None,
) -> ReplicateResult | PVResult:
    """Fit a model with replicate-weight standard errors (per plausible value if ``options.pv``).

    Parameters
    ----------
    formula
        The model (with ``options.pv``: its response is replaced by each plausible value).
    data
        The data, with the replicate weight columns of ``options.replicates``.
    options
        Validated options with ``replicates``.
    n_jobs, client
        Spread the fits over local processes (``-1``: one per CPU) or a Dask client.

    Returns
    -------
    ReplicateResult, or PVResult of ReplicateResults with plausible values.
    """
    spec = options.replicates
    dropped = 0
    if options.pv is not None:
        names, formulas = pv_formulas(formula, options.pv)
        complete = complete_pv_rows(data, names)
        dropped, data = len(data) - len(complete), complete
    else:
        names, formulas = None, [formula]
    processes = worker_processes(n_jobs, client)
    single = options.with_changes(replicates=None, pv=None, progress=False)
    fulls = _full_fits(data, formulas, names, single, processes, client)
    frames = replicate_frames(data, fulls[0].frame, options)
    for name, full in zip(formulas, fulls, strict=True):
        if not full.frame.row_index.equals(fulls[0].frame.row_index):
            raise ArgumentError(f"The fit of {name!r} uses other rows than the first plausible value's.")
    jobs = [
        _job(full, frames.with_frame(full.frame), single, recentred(data, full.frame, f, options))
        for full, f in zip(fulls, formulas, strict=True)
    ]
    chunks = _chunks(spec.n_replicates, options.is_linear)
    tasks = [(job, chunk) for job in jobs for chunk in chunks]
    outputs = map_fits(
        _refit_chunk,
        tasks,
        client=client,
        processes=processes,
        progress=options.progress,
        desc="replicate fits",
        delay=0.0 if options.progress else 1.0,  # automatic bars only for runs over a second
    )
    results = []
    for m, full in enumerate(fulls):
        parts = outputs[m * len(chunks) : (m + 1) * len(chunks)]
        estimates = np.concatenate([p[0] for p in parts])
        converged = np.concatenate([p[1] for p in parts])
        opts = options.with_changes(pv=None)
        results.append(replicate_result(full, estimates, converged, opts, formulas[m]))
    if names is None:
        return results[0]
    combined = combine_pv(results, pv=names, formula=formula, options=options, within=spec.pv_sampling)
    combined.n_dropped_pv = dropped
    return combined
