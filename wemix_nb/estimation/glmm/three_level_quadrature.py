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
``Omega_g = sum_km omega zeta zeta'``; the ``(rows, M3 M2)`` arrays are never kept.

Speed
    The ``(rows, M3 M2)`` work is done chunk by chunk of whole level-3 groups in two reused
    buffers (fresh large temporaries cost page faults). For canonical links
    (``log f = y eta - b(eta) + const``) the part linear in ``eta`` is summed per group from
    per-group sums of ``c y``, ``c y a2``, ``c y a3``, so a node costs one ``b`` (an ``exp`` and a
    ``log1p`` for the logit, one ``exp`` for the Poisson); weighted group sums over rows are
    sparse products (no threaded BLAS, which only adds synchronisation on blocks this small).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse

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
        self.K = self.M2 * self.M3
        q2, q3 = self.nodes2.shape[1], self.nodes3.shape[1]
        self.n_zeta = 1 + q2 + q3
        k3, m2 = np.divmod(np.arange(self.K), self.M2)
        self.logw2_tiled = self.logw2[m2]
        zeta = np.concatenate([np.ones((self.K, 1)), self.nodes2[m2], self.nodes3[k3]], axis=1)
        self.zeta = zeta  # (K, n_zeta)
        self.zeta_outer = (zeta[:, :, None] * zeta[:, None, :]).reshape(self.K, -1)
        zeta3 = np.concatenate([np.ones((self.M3, 1)), self.nodes3], axis=1)
        self.zeta3_outer = (zeta3[:, :, None] * zeta3[:, None, :]).reshape(self.M3, -1)


@dataclass(frozen=True)
class ChunkIndex:
    """Rows ``r0:r1``, level-2 groups ``g0:g1`` and level-3 groups ``h0:h1`` of one chunk, with
    chunk-local indices: level-2 group of each row ``gl``, level-3 group of each row ``hl`` and
    of each level-2 group ``par``, first rows of the level-2 groups ``starts2`` and first
    level-2 groups of the level-3 groups ``starts3``; ``node_weights`` (sparse, groups x rows)
    sums rows weighted by ``c_node`` into their level-2 groups."""

    r0: int
    r1: int
    g0: int
    g1: int
    h0: int
    h1: int
    gl: np.ndarray
    hl: np.ndarray
    par: np.ndarray
    starts2: np.ndarray
    starts3: np.ndarray
    node_weights: scipy.sparse.csr_array


def chunk_indices(model, chunks: list[tuple[int, int, int, int]]) -> list[ChunkIndex]:
    """:class:`ChunkIndex` of chunks ``(h0, h1, r0, r1)`` of whole level-3 groups of ``model``."""
    out = []
    for h0, h1, r0, r1 in chunks:
        g0 = int(model.starts3[h0])
        g1 = int(model.starts3[h1]) if h1 < model.G3 else model.G2
        out.append(
            ChunkIndex(
                r0,
                r1,
                g0,
                g1,
                h0,
                h1,
                model.g2[r0:r1] - g0,
                model.h_row[r0:r1] - h0,
                model.parent[g0:g1] - h0,
                model.starts2[g0:g1] - r0,
                model.starts3[h0:h1] - g0,
                scipy.sparse.csr_array(
                    (model.c_node[r0:r1], np.arange(r1 - r0), np.r_[model.starts2[g0:g1] - r0, r1 - r0]),
                    shape=(g1 - g0, r1 - r0),
                ),
            )
        )
    return out


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


class NestedPass:
    """One evaluation's pass over the nodes (see the module docstring); :meth:`run` returns the
    :class:`QuadraturePass`.

    ``model`` is the :class:`~wemix_nb.estimation.glmm.three_level._ThreeLevel` (rows, groups,
    weights, family, chunks); the other arguments are at the modes.

    A level-2 node offset is a sum of a level-3 part and a level-2 part,
    ``U_gkm - u_g = alpha_gk + beta_gm`` with ``alpha = -B22 R23 dv_k`` and ``beta = B22 z2_m``,
    so the linear predictors at the nodes are one broadcast sum of ``(rows, M3)`` and
    ``(rows, M2)`` arrays, and the node terms that do not depend on the rows are sums of
    ``(groups, M3)`` and ``(groups, M2)`` arrays but for the cross term of the prior,
    ``-(u + alpha_gk) . beta_gm``.
    """

    def __init__(self, model, u, v, A2, A3, eta, B22, R23, B33, logdet22, grad: bool):
        self.m, self.grid = model, model.grid
        self.u, self.A2, self.A3, self.eta = u, A2, A3, eta
        self.B22, self.logdet22, self.grad = B22, logdet22, grad
        self.T = B22 @ R23  # alpha = -T dv
        grid = self.grid
        self.dv = _apply(B33, np.broadcast_to(grid.nodes3, (model.G3,) + grid.nodes3.shape))  # (G3, M3, q3)
        V = v[:, None, :] + self.dv
        self.prior3 = -0.5 * np.einsum("hkq,hkq->hk", V, V) + grid.logw3
        self.family = model.family
        self.canonical = self.family.has_cumulant()
        if self.canonical:  # per-group sums of the part of sum_i c_i log f linear in eta
            cy = model.c_node * model.y
            self.lin_eta = model.sum2(cy * eta)
            self.lin_a2 = model.sum2(cy[:, None] * A2)
            self.lin_a3 = model.sum2(cy[:, None] * A3)
        self.buffer_size = max((ch.r1 - ch.r0) for ch in model.chunk_index) * grid.K

    def run(self, threads: int = 1) -> QuadraturePass:
        """The pass over all chunks, on ``threads`` threads (contiguous runs of chunks; NumPy
        releases the GIL in the array work, and every thread writes its own slices of the
        results)."""
        m, grid = self.m, self.grid
        out = QuadraturePass(np.empty(m.G3))
        if self.grad:
            out.s_rows = np.empty((len(m.y), grid.n_zeta))
            out.omega = np.empty((m.G2, grid.n_zeta, grid.n_zeta))
            out.P3 = np.empty((m.G3, grid.M3))
        chunks = m.chunk_index
        threads = max(1, min(threads, len(chunks)))

        def work(part: np.ndarray) -> None:
            # node predictors; their mean (canonical links); node weights per row; the level-3
            # and level-2 parts of the predictors (buffers: fresh arrays would cost page faults)
            buffers = [np.empty(self.buffer_size if self.grad or k == 0 else 0) for k in range(3)]
            rows = self.buffer_size // grid.K
            buffers += [np.empty((rows, grid.M3)), np.empty((rows, grid.M3)), np.empty((rows, grid.M2))]
            for i in part:
                self._chunk(chunks[i], out, buffers)

        parts = np.array_split(np.arange(len(chunks)), threads)
        if threads == 1:
            work(parts[0])
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, parts))
        return out

    def _chunk(self, ch: ChunkIndex, out: QuadraturePass, buffers) -> None:
        m, grid = self.m, self.grid
        g0, g1, h0, h1 = ch.g0, ch.g1, ch.h0, ch.h1
        val, E_mu = self._node_values(ch, buffers)
        inner, scaled = _logsumexp_keep(val)  # (g, M3); val becomes exp(val - max) / sum
        outer = np.add.reduceat(m.c2[g0:g1, None] * (inner - self.logdet22[g0:g1, None]), ch.starts3, axis=0)
        outer += self.prior3[h0:h1]
        lse = _logsumexp_rows(outer)
        out.lse3[h0:h1] = lse
        if not self.grad:
            return
        n_g, n_r, K = g1 - g0, ch.r1 - ch.r0, grid.K
        p3 = np.exp(outer - lse[:, None])
        out.P3[h0:h1] = p3
        w_node = scaled
        w_node *= (m.c2[g0:g1, None] * p3[ch.par])[:, :, None]
        w_node = w_node.reshape(n_g, K)
        Wn = buffers[2][: n_r * K].reshape(n_r, K)
        np.take(w_node, ch.gl, axis=0, out=Wn, mode="clip")  # "raise" would buffer out
        Wn *= E_mu
        cn = m.c_node[ch.r0 : ch.r1, None]
        s_rows = cn * (Wn @ grid.zeta)
        if self.canonical:  # d log f / d eta = y - mu: the y part per group
            s_rows = cn * m.y[ch.r0 : ch.r1, None] * (w_node @ grid.zeta)[ch.gl] - s_rows
        out.s_rows[ch.r0 : ch.r1] = s_rows
        out.omega[g0:g1] = (w_node @ grid.zeta_outer).reshape(n_g, grid.n_zeta, grid.n_zeta)

    def _node_values(self, ch: ChunkIndex, buffers: list) -> tuple[np.ndarray, np.ndarray | None]:
        """``(g, M3, M2)`` log integrand of the inner sums at every node, and per row and node
        the derivative the gradient needs (``mu`` for canonical links, where the ``y`` part is
        added per group, else ``d log f / d eta``)."""
        m, grid = self.m, self.grid
        g0, g1, r0, r1 = ch.g0, ch.g1, ch.r0, ch.r1
        dv_g = self.dv[ch.h0 : ch.h1][ch.par]  # (g, M3, q3)
        alpha = -_apply(self.T[g0:g1], dv_g)  # (g, M3, q2)
        beta = _apply(self.B22[g0:g1], np.broadcast_to(grid.nodes2, (g1 - g0,) + grid.nodes2.shape))
        ua = self.u[g0:g1, None, :] + alpha
        part3 = m.const2[g0:g1, None] - 0.5 * np.einsum("gkq,gkq->gk", ua, ua)  # (g, M3)
        part2 = grid.logw2 - 0.5 * np.einsum("gmq,gmq->gm", beta, beta)  # (g, M2)
        cross = ua @ np.swapaxes(beta, 1, 2)  # (g, M3, M2)
        E = self._node_predictors(ch, alpha, beta, buffers)
        if self.canonical:
            part3 += self.lin_eta[g0:g1, None] + _dot(self.lin_a2[g0:g1], alpha)
            part3 += _dot(self.lin_a3[g0:g1], dv_g)
            part2 += _dot(self.lin_a2[g0:g1], beta)
            mean_out = buffers[1][: E.size].reshape(E.shape) if self.grad else None
            b, deriv = self.family.cumulant(E, mean=self.grad, out=mean_out)
            node = -(ch.node_weights @ b)
        else:
            ll, deriv = self.family.loglik_d1(m.y[r0:r1, None], E)
            node = ch.node_weights @ ll
        val = node.reshape(cross.shape)
        val -= cross
        val += part3[:, :, None]
        val += part2[:, None, :]
        return val, deriv

    def _node_predictors(self, ch: ChunkIndex, alpha, beta, buffers: list) -> np.ndarray:
        """``(rows, M3 M2)`` linear predictors at the nodes, in ``buffers[0]``:
        ``eta_i + a2_i (alpha_gk + beta_gm) + a3_i dv_hk``."""
        grid = self.grid
        r0, r1 = ch.r0, ch.r1
        n_r = r1 - r0
        A2 = self.A2[r0:r1]
        level3 = _rows_dot(A2, alpha, ch.gl, buffers[3][:n_r])
        level3 += _rows_dot(self.A3[r0:r1], self.dv[ch.h0 : ch.h1], ch.hl, buffers[4][:n_r])
        level3 += self.eta[r0:r1, None]
        level2 = _rows_dot(A2, beta, ch.gl, buffers[5][:n_r])
        E = buffers[0][: n_r * grid.K].reshape(n_r, grid.M3, grid.M2)
        np.add(level3[:, :, None], level2[:, None, :], out=E)
        return E.reshape(n_r, grid.K)


def _logsumexp_keep(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log sum exp`` over the last axis (as ``_logsumexp_rows``) and the normalised terms
    ``exp(a - lse)``, computed in ``a``'s memory (one ``exp`` for both)."""
    mx = np.max(a, axis=-1)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    a -= mx[..., None]
    np.exp(a, out=a)
    total = np.sum(a, axis=-1)
    a /= total[..., None]
    return mx + np.log(total), a


def _dot(a: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``a_g . U_gj`` for ``a (G, q)``, ``U (G, J, q)`` -> ``(G, J)``."""
    if a.shape[1] == 1:
        return a * U[:, :, 0]
    return np.einsum("gq,gjq->gj", a, U)


def _rows_dot(A: np.ndarray, U: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``A_i . U_{index_i, j}`` for rows ``A (n, q)`` and group arrays ``U (G, J, q)``, into
    ``out (n, J)``."""
    if A.shape[1] == 1:
        np.take(U[:, :, 0], index, axis=0, out=out, mode="clip")  # "raise" would buffer out
        out *= A
        return out
    return np.einsum("nq,njq->nj", A, U[index], out=out)
