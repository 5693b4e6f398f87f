"""``fit_linear``: the linear estimator's entry point."""

from __future__ import annotations

import numpy as np

from wemix_nb.errors import ArgumentError, DataError, RankDeficiencyError
from wemix_nb.estimation.linear.problem import LinearProblem
from wemix_nb.estimation.linear.solution import LinearSolution
from wemix_nb.model.frame import ModelFrame
from wemix_nb.model.identification import check_top_level_groups


def fit_linear(
    frame: ModelFrame, start: np.ndarray | None = None
) -> tuple[LinearProblem, LinearSolution, dict]:
    """Fit a weighted linear mixed model.

    Parameters
    ----------
    frame
        The model frame.
    start
        Optional theta to start from (relative Cholesky entries, lme4 order).

    Returns
    -------
    problem, solution, info
        The likelihood, the estimate, and the optimiser's report (see
        :meth:`LinearProblem.optimize`).

    Raises
    ------
    ArgumentError
        A ``start`` with non-finite values.
    RankDeficiencyError
        A numerically singular system for the fixed effects.
    DataError
        A single top-level group (robust SEs need at least 2), or a log-likelihood that is not
        finite at the estimate.
    """
    check_top_level_groups(frame)
    problem = LinearProblem(frame)
    if start is not None and not np.all(np.isfinite(start)):
        raise ArgumentError(f"start must hold finite numbers, got {list(np.asarray(start))}.")
    try:
        theta, info = problem.optimize(start)
        solution = problem.solution(theta)
    except np.linalg.LinAlgError as exc:
        raise RankDeficiencyError(
            "The weighted least-squares system of the fixed effects is numerically singular "
            "(nearly collinear fixed-effect columns, or a response fitted exactly)."
        ) from exc
    if not np.isfinite(solution.lnl):
        raise DataError("The log-likelihood is not finite at the estimate: check the response and weights.")
    return problem, solution, info
