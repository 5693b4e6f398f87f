"""The nested quadrature pass of the 3-level model: values, and what the gradient needs of the nodes.

For level-3 group ``h`` with ``M3`` nodes ``V_hk = v_h + B33_h z3_k`` and its level-2 groups ``g``
with ``M2`` nodes ``U_gkm = u_g + B22_g (z2_m - R23_g B33_h z3_k)`` (the level-2 nodes follow the
conditional mode as ``v`` moves)::

    inner_gk = log sum_m exp(sum_{i in g} c_i log f(y_i | eta_ikm) + const_g - |U_gkm|^2 / 2 + logw2_m)
    outer_hk = sum_g c2_g (inner_gk - log det R22_g) - |V_hk|^2 / 2 + logw3_k
    l_h / w3_h = log sum_k exp(outer_hk) - log det R33_h

with ``eta_ikm = eta_i + a2_i (U_gkm - u_g) + a3_i (V_hk - v_h)``. Every node is an affine function
of ``zeta_km = (1, z2_m, z3_k)``, so the derivative of ``l_h`` needs only the node weights
``omega_gkm = c2_g P3_hk P2_gkm`` (``P2``, ``P3``: the normalised terms of the two sums) reduced
per row to ``s_i = sum_km omega c_i d log f / d eta zeta_km`` and per group to
``Omega_g = sum_km omega zeta zeta'``; the ``(rows, M3, M2)`` arrays are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wemix_nb.estimation.glmm.quadrature import _logsumexp_rows


class NestedGrid:
    """The product rule of both levels and the node coordinates ``zeta`` (level-3 node outer).

    Parameters
    ----------
    rule2, rule3
        ``(nodes, log-weights)`` of the level-2 and level-3 rules (from ``_gh_rule``).
    """

    def __init__(self, rule2: tuple[np.ndarray, np.ndarray], rule3: tuple[np.ndarray, np.ndarray]):
        self.nodes2, self.logw2 = rule2
        self.nodes3, self.logw3 = rule3
        self.M2, self.M3 = len(self.logw2), len(self.logw3)
        q2, q3 = self.nodes2.shape[1], self.nodes3.shape[1]
        self.n_zeta = 1 + q2 + q3
        k3, m2 = np.divmod(np.arange(self.M3 * self.M2), self.M2)
        zeta = np.concatenate([np.ones((len(k3), 1)), self.nodes2[m2], self.nodes3[k3]], axis=1)
        self.zeta = zeta  # (M3 M2, n_zeta)
        self.zeta_outer = (zeta[:, :, None] * zeta[:, None, :]).reshape(len(k3), -1)
        zeta3 = np.concatenate([np.ones((self.M3, 1)), self.nodes3], axis=1)
        self.zeta3_outer = (zeta3[:, :, None] * zeta3[:, None, :]).reshape(self.M3, -1)


@dataclass
class QuadraturePass:
    """What one pass over the nodes leaves.

    Attributes
    ----------
    lse3
        ``(G3,)`` ``log sum_k exp(outer_hk)``.
    s_rows
        ``(rows, n_zeta)`` per-row node-weighted first derivatives (``None`` without gradient).
    omega
        ``(G2, n_zeta, n_zeta)`` per-group node-weighted second moments of ``zeta``.
    P3
        ``(G3, M3)`` normalised outer terms.
    """

    lse3: np.ndarray
    s_rows: np.ndarray | None = None
    omega: np.ndarray | None = None
    P3: np.ndarray | None = None


def _apply(B: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``B_g z_j`` for batches ``B (G, a, b)`` and ``z (G, J, b)`` -> ``(G, J, a)``."""
    if B.shape[1] == 1 and B.shape[2] == 1:
        return B[:, :, 0][:, None, :] * z
    return np.einsum("gab,gjb->gja", B, z)


def _row_dot(A: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``sum_q A[r, q] U[r, ..., q]`` -> ``U.shape[:-1]``."""
    if A.shape[1] == 1:
        return A[:, 0].reshape((-1,) + (1,) * (U.ndim - 2)) * U[..., 0]
    return np.einsum("rq,r...q->r...", A, U)


def nested_quadrature(model, grid: NestedGrid, u, v, A2, A3, eta, B22, R23, B33, logdet22, grad: bool):
    """Run the nested quadrature chunk by chunk of whole level-3 groups.

    ``model`` is the :class:`~wemix_nb.estimation.glmm.three_level._ThreeLevel` (rows, groups,
    weights, family); the other arguments are at the modes. Returns a :class:`QuadraturePass`.
    """
    M2, M3 = grid.M2, grid.M3
    K = M2 * M3
    dv = _apply(B33, np.broadcast_to(grid.nodes3, (model.G3,) + grid.nodes3.shape))  # (G3, M3, q3)
    V = v[:, None, :] + dv
    prior3 = -0.5 * np.einsum("hkq,hkq->hk", V, V) + grid.logw3
    lse3 = np.empty(model.G3)
    if grad:
        s_rows = np.empty((len(model.y), grid.n_zeta))
        omega = np.empty((model.G2, grid.n_zeta, grid.n_zeta))
        P3 = np.empty((model.G3, M3))
    for h0, h1, r0, r1 in model.chunks:
        ga, gb = model.starts3[h0], (model.starts3[h1] if h1 < model.G3 else model.G2)
        gl = model.g2[r0:r1] - ga
        hl = model.h_row[r0:r1] - h0
        par = model.parent[ga:gb] - h0
        # level-2 node offsets B22 (z2 - R23 dv) of this chunk's groups: (g, M3, M2, q2)
        shift = -_apply(R23[ga:gb], dv[h0:h1][par])  # (g, M3, q2)
        du = _apply(B22[ga:gb], (shift[:, :, None, :] + grid.nodes2).reshape(gb - ga, K, -1))
        Unode = u[ga:gb, None, :] + du
        prior2 = -0.5 * np.einsum("gjq,gjq->gj", Unode, Unode) + np.tile(grid.logw2, M3)
        e = _row_dot(A2[r0:r1], du[gl]).reshape(-1, M3, M2)
        e += (eta[r0:r1, None] + _row_dot(A3[r0:r1], dv[h0:h1][hl]))[:, :, None]
        ll, d1 = model.family.loglik_d1(model.y[r0:r1, None, None], e)
        cn = model.c_node[r0:r1, None, None]
        S = np.add.reduceat(cn * ll, model.starts2[ga:gb] - r0, axis=0).reshape(gb - ga, K)
        val = (S + model.const2[ga:gb, None] + prior2).reshape(gb - ga, M3, M2)
        inner = _logsumexp_rows(val)  # (g, M3)
        starts = model.starts3[h0:h1] - ga
        outer = np.add.reduceat(model.c2[ga:gb, None] * (inner - logdet22[ga:gb, None]), starts, axis=0)
        outer += prior3[h0:h1]
        lse = _logsumexp_rows(outer)
        lse3[h0:h1] = lse
        if grad:
            p3 = np.exp(outer - lse[:, None])
            P3[h0:h1] = p3
            w_node = np.exp(val - inner[:, :, None]) * (model.c2[ga:gb, None] * p3[par])[:, :, None]
            w_node = w_node.reshape(gb - ga, K)
            s_rows[r0:r1] = ((cn * d1).reshape(-1, K) * w_node[gl]) @ grid.zeta
            omega[ga:gb] = (w_node @ grid.zeta_outer).reshape(gb - ga, grid.n_zeta, grid.n_zeta)
    if not grad:
        return QuadraturePass(lse3)
    return QuadraturePass(lse3, s_rows, omega, P3)
