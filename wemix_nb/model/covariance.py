"""Parameterisation of the random-effect covariances by lower-triangular factors (theta).

Per level ``l``, ``Lambda_l`` is lower triangular with free entries inside each bar's block.
The free entries are ``theta``, in lme4's order: levels from 2 up, bars in formula order, and
inside a bar the lower triangle column by column.

One naming rule for a (co)variance parameter, used by theta, ``vars``, ``varDF``, ``var_theta`` and
the Wald tests (:func:`parameter_name`): WeMix's ``"<group>.<term>"`` for a diagonal entry and
``"<group>.<row term>.<column term>"`` below the diagonal. Displays use :func:`parameter_label`
under the group's name instead (``"Intercept × Days"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wemix_nb.model.frame import RandomLevel


def parameter_name(group: str, terms: Sequence[str], row: int, col: int) -> str:
    """The name of the entry ``(row, col)`` (``row >= col``) of a level's covariance matrix.

    Parameters
    ----------
    group
        The grouping factor of the level.
    terms
        The level's random-effect terms.
    row, col
        Position of the entry; ``row == col`` for a variance.

    Returns
    -------
    str
        ``"<group>.<term>"`` for a variance, ``"<group>.<row term>.<column term>"`` for a
        covariance (e.g. ``"Subject.Days.Intercept"``).
    """
    if row == col:
        return f"{group}.{terms[row]}"
    return f"{group}.{terms[row]}.{terms[col]}"


def parameter_label(terms: Sequence[str], row: int, col: int) -> str:
    """The display label of the entry ``(row, col)`` (``row >= col``), shown under its group.

    Returns
    -------
    str
        The term for a variance (``"Days"``), the two terms in formula order joined by ``×`` for a
        covariance (``"Intercept × Days"``).
    """
    if row == col:
        return str(terms[row])
    return f"{terms[min(row, col)]} × {terms[max(row, col)]}"


@dataclass(frozen=True)
class ThetaEntry:
    level: int  # position in the list of levels (0 = level 2)
    row: int  # row inside the level's Lambda
    col: int
    offset: int  # first column of this level in the stacked random-effect design

    @property
    def diagonal(self) -> bool:
        return self.row == self.col


class CovarianceStructure:
    """Maps theta to the per-level factors ``Lambda_l`` and to (co)variances.

    Parameters
    ----------
    levels
        The model frame's random levels, level 2 first.
    """

    def __init__(self, levels: list[RandomLevel]):
        self.level_names = [level.name for level in levels]
        self.q = [level.q for level in levels]
        self.terms = [list(level.terms) for level in levels]
        self.blocks = [[list(block) for block in level.blocks] for level in levels]
        self.offsets = np.concatenate([[0], np.cumsum(self.q)])[:-1].astype(int).tolist()
        self.Q = int(sum(self.q))
        entries: list[ThetaEntry] = []
        names: list[str] = []
        for k, level in enumerate(levels):
            for block in level.blocks:
                for c_pos, col in enumerate(block):
                    for row in block[c_pos:]:
                        entries.append(ThetaEntry(k, row, col, self.offsets[k]))
                        names.append(parameter_name(level.name, level.terms, row, col))
        self.entries = entries
        self.names = names
        self.rows = np.array([e.offset + e.row for e in entries], dtype=int)
        self.cols = np.array([e.offset + e.col for e in entries], dtype=int)
        self.diagonal = np.array([e.diagonal for e in entries])
        self.entry_level = np.array([e.level for e in entries], dtype=int)

    @property
    def size(self) -> int:
        return len(self.entries)

    def start(self) -> np.ndarray:
        """Identity factors: 1 on the diagonal, 0 below."""
        return self.diagonal.astype(float)

    def lower_bounds(self) -> list[tuple[float | None, float | None]]:
        return [(0.0, None) if d else (None, None) for d in self.diagonal]

    def stacked(self, theta: np.ndarray) -> np.ndarray:
        """Block-diagonal ``(Q, Q)`` factor of all levels."""
        lam = np.zeros((self.Q, self.Q))
        lam[self.rows, self.cols] = theta
        return lam

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-level ``Lambda_l``."""
        lam = self.stacked(theta)
        return [lam[o : o + q, o : o + q] for o, q in zip(self.offsets, self.q, strict=True)]

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """Theta with every column sign chosen so the diagonal is >= 0 (``Lambda Lambda'`` unchanged)."""
        theta = np.asarray(theta, dtype=float).copy()
        lam = self.stacked(theta)
        signs = np.where(np.diag(lam) < 0, -1.0, 1.0)
        return (lam * signs[None, :])[self.rows, self.cols]

    def covariances(self, theta: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Per-level covariance matrices ``scale * Lambda_l Lambda_l'``."""
        return [scale * lam @ lam.T for lam in self.factors(theta)]

    def theta_from_covariances(self, covariances: list[np.ndarray]) -> np.ndarray:
        """Theta (diagonal >= 0) whose factors reproduce the given per-level covariance matrices.

        Entries between different bars of a level are ignored (they are fixed at 0). A
        positive semi-definite block on the boundary (a zero variance) is factorised too.
        """
        lam = np.zeros((self.Q, self.Q))
        for k, cov in enumerate(covariances):
            o, q = self.offsets[k], self.q[k]
            lam[o : o + q, o : o + q] = block_cholesky(cov, self.blocks[k])
        return lam[self.rows, self.cols]


def block_cholesky(cov: np.ndarray, blocks: Sequence[Sequence[int]]) -> np.ndarray:
    """Lower-triangular factor ``L`` of one level with ``L L' = cov`` on each bar's block.

    Parameters
    ----------
    cov
        ``(q, q)`` covariance matrix of the level's random effects.
    blocks
        The terms of each bar (entries between bars are ignored: they are fixed at 0).

    Returns
    -------
    numpy.ndarray
        ``(q, q)``, zero outside the bars' blocks, diagonal >= 0. A positive semi-definite block
        on the boundary (a zero variance) is factorised too.
    """
    cov = np.asarray(cov, dtype=float)
    lam = np.zeros(cov.shape)
    for block in blocks:
        index = np.array(block)
        lam[np.ix_(index, index)] = _psd_cholesky(cov[np.ix_(index, index)])
    return lam


def _psd_cholesky(S: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = S for a symmetric positive semi-definite S."""
    S = 0.5 * (S + S.T)
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        eig, vec = np.linalg.eigh(S)
        root = np.sqrt(np.clip(eig, 0.0, None))[:, None] * vec.T  # root' root = S
        R = np.linalg.qr(root, mode="r")
        L = R.T
        return L * np.where(np.diag(L) < 0, -1.0, 1.0)[None, :]
