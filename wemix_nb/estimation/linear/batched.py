"""Linear algebra on stacks of small matrices ``(G, q, q)``, one per group.

With thousands of tiny matrices, numpy's per-matrix overhead (LAPACK calls, stacked matmul)
costs more than the arithmetic, so the smallest cases are written out with loops over the matrix
dimension, vectorised over the groups.
"""

from __future__ import annotations

import numpy as np


def _swap(a: np.ndarray) -> np.ndarray:
    """Transpose the last two axes."""
    return np.swapaxes(a, -1, -2)


def _spd_inverse_logdet(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and log-determinants of a stack of small SPD matrices ``(G, q, q)``.

    LAPACK calls per tiny matrix cost more than the arithmetic, so for q <= 4 the Cholesky
    factorisation is written out with loops over q (vectorised over the groups).
    """
    q = M.shape[-1]
    if q == 1:
        return 1.0 / M, np.log(M[:, 0, 0])
    if q > 4:
        return np.linalg.inv(M), np.linalg.slogdet(M)[1]
    L = np.zeros_like(M)
    for j in range(q):
        d = M[:, j, j] - np.einsum("gk,gk->g", L[:, j, :j], L[:, j, :j])
        L[:, j, j] = np.sqrt(d)
        for i in range(j + 1, q):
            L[:, i, j] = (M[:, i, j] - np.einsum("gk,gk->g", L[:, i, :j], L[:, j, :j])) / L[:, j, j]
    L_inv = np.zeros_like(M)
    for j in range(q):
        L_inv[:, j, j] = 1.0 / L[:, j, j]
        for i in range(j + 1, q):
            L_inv[:, i, j] = -np.einsum("gk,gk->g", L[:, i, j:i], L_inv[:, j:i, j]) / L[:, i, i]
    return _small_matmul(_swap(L_inv), L_inv), 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)


def _small_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for stacks of matrices with a tiny inner dimension (numpy's stacked matmul has a
    per-matrix overhead that dominates there)."""
    inner = a.shape[-1]
    if inner > 4:
        return a @ b
    out = a[..., :, 0, None] * b[..., None, 0, :]
    for k in range(1, inner):
        out += a[..., :, k, None] * b[..., None, k, :]
    return out
