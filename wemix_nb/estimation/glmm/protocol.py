"""What the optimiser and the sandwich need from a GLMM likelihood: :class:`QuadratureModel`,
implemented by the 2-level and the 3-level models, and the conditional modes they report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from wemix_nb.model.frame import ModelFrame


@dataclass
class GlmmLevelModes:
    """Conditional modes of one grouping level at the estimate.

    Attributes
    ----------
    name
        Grouping factor.
    labels
        Group labels (``n_groups``), in the model frame's order.
    terms
        Random-effect component names (``q``).
    u
        ``(n_groups, q)`` spherical modes ``u_hat``.
    b
        ``(n_groups, q)`` random effects on the data scale, ``b = Lambda u``.
    u_sd, b_sd
        ``(n_groups, q)`` conditional standard deviations from the curvature at the mode: the
        inverse of ``I + Lambda' Z_g' diag(c1 W) Z_g Lambda`` (conditional level-1 weights, so the
        scale of the weights does not shrink them). For level 2 of a 3-level model the
        uncertainty of the level-3 mode is propagated.
    """

    name: str
    labels: object
    terms: list[str]
    u: np.ndarray
    b: np.ndarray
    u_sd: np.ndarray
    b_sd: np.ndarray


class QuadratureModel(Protocol):
    """A weighted GLMM pseudo-log-likelihood by AGHQ, as a function of ``(beta, theta)``.

    The conditional modes are solved inside every evaluation, warm-started from the modes of the
    previous one; that state is what :meth:`save_modes` and :meth:`restore_modes` carry (finite
    differences must not leave the warm start at a perturbed point, and a Laplace pre-fit hands
    its modes on to the quadrature phase).

    Attributes
    ----------
    analytic_gradient
        Whether :meth:`evaluate` with ``grad=True`` returns the exact gradient (``"grad"``,
        ``"grad_by_group"``); otherwise gradients are taken by finite differences of the values.
    nquad
        Quadrature points per random-effect dimension (1 = Laplace).
    rounding
        Whether the objective uses WeMix's rounded level-1 weights (binomial, ``nquad = 1``).
    k
        Number of free entries of ``theta``.
    n_evaluations
        Likelihood evaluations so far.
    constant_by_group
        ``(G_top,)`` the part of each top-level group's log-likelihood that does not depend on
        the parameters (the weighted ``log f(y | mu = y)`` of its rows, see
        :meth:`~wemix_nb.estimation.families.Family.log_constant`). It is left out of
        :meth:`evaluate`, so that the optimiser's objective stays O(1) per group however large the
        counts; the reported log-likelihood adds it back.
    """

    analytic_gradient: bool
    nquad: int
    rounding: bool
    k: int
    n_evaluations: int
    constant_by_group: np.ndarray

    def evaluate(self, beta: np.ndarray, theta: np.ndarray, grad: bool = False) -> dict:
        """The likelihood at ``(beta, theta)``.

        Returns a dict with at least ``"value"`` (the total without :attr:`constant_by_group`,
        ``-inf`` where it cannot be evaluated) and ``"by_group"`` (``(G_top,)`` contributions of
        the top-level groups, likewise); when finite also ``"eta"`` and what
        :meth:`level_modes` needs; with ``grad=True`` on a model with an analytic gradient
        ``"grad"`` (``(p + k,)``) and ``"grad_by_group"`` (``(G_top, p + k)``).
        """
        ...

    def level_modes(self, frame: ModelFrame, theta: np.ndarray, ev: dict) -> list[GlmmLevelModes]:
        """Conditional modes and their standard deviations per level (level 2 first) from the
        evaluation ``ev`` at ``theta``."""
        ...

    def eta_rows(self, ev: dict) -> np.ndarray | None:
        """The linear predictor at the modes of ``ev``, in the model frame's row order (``None``
        for a model whose rows are elsewhere, such as Dask partitions)."""
        ...

    def save_modes(self) -> object:
        """A copy of the warm-start modes."""
        ...

    def restore_modes(self, saved: object) -> None:
        """Set the warm-start modes to ``saved`` (from :meth:`save_modes` of a model of the same
        frame)."""
        ...
