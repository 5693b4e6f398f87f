"""Conditional modes of a GLMM at fixed parameters, with the weights of a given model frame.

The modes and their curvature depend on the weights only through the conditional weights of the
units inside each group (see :mod:`wemix_nb.estimation.glmm`), and not on the number of
quadrature points (the nodes are placed around the mode, they do not move it). So
:func:`modes_at` solves the modes once with the Laplace model of ``frame``: nothing is
re-estimated.
"""

from __future__ import annotations

import numpy as np

from wemix_nb.errors import DataError
from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm.fit import _make_model
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes
from wemix_nb.model.frame import ModelFrame

__all__ = ["modes_at"]


def modes_at(frame: ModelFrame, family: Family, beta: np.ndarray, theta: np.ndarray) -> list[GlmmLevelModes]:
    """Conditional modes and their standard deviations per level at ``(beta, theta)``.

    Parameters
    ----------
    frame
        The model frame whose weights to use (e.g. the fitted one with
        :func:`~wemix_nb.model.rescaled.with_scaled_weights`).
    family
        The response family.
    beta, theta
        Fixed effects and the factors' free entries (absolute scale, lme4 order).

    Returns
    -------
    list of GlmmLevelModes
        Level 2 first; standard deviations from the curvature at the mode (for level 2 of a
        3-level model including the uncertainty of the level-3 mode).

    Raises
    ------
    DataError
        If the likelihood cannot be evaluated at these parameters.
    """
    model = _make_model(frame, family, 1, False)
    ev = model.evaluate(np.asarray(beta, dtype=float), np.asarray(theta, dtype=float))
    if not np.isfinite(ev["value"]):
        raise DataError("The conditional modes cannot be computed at these parameters.")
    return model.level_modes(frame, np.asarray(theta, dtype=float), ev)
