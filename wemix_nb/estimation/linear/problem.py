"""The profiled pseudo-log-likelihood of a weighted linear mixed model, by nested block elimination.

Everything is computed from per-level-2-group weighted cross-products of ``[Z, X, r0]``
(``r0 = y - X beta0`` for a weighted least-squares ``beta0``; subtracting it keeps the sums of
squares small and exact). One pass over the rows builds them; afterwards an evaluation of the
likelihood costs O(groups * m^3) with ``m = Q + p + 1`` and never touches the rows again.

The nested penalised least squares problem is solved by block elimination, level by level:
at a level-``l`` group the augmented quadratic form ``G`` (cross-products of its rows, or the sum
of its children's Schur complements times their conditional weights) gets ``I`` added to its first
``q_l`` coordinates (the group's spherical random effects), which are eliminated; the Schur
complement is passed up. The log-determinants of the eliminated blocks, weighted by the group's
unconditional weight, make up ``D(theta)``; at the top the remaining ``(p+1) x (p+1)`` forms,
summed with the top-level weights, give the GLS system for beta and the residual sum of squares.

Derivatives with respect to theta are carried through the same elimination in forward mode, so
the gradient of the profiled deviance and the per-top-group scores are exact (no finite
differences), and computed for all groups at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from wemix_nb.estimation.linear.batched import _small_matmul, _spd_inverse_logdet, _swap
from wemix_nb.estimation.linear.optimize import _optimize
from wemix_nb.estimation.linear.solution import LinearSolution, _solution
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame

LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class _LevelSolve:
    """What one level's elimination leaves behind for back-substitution."""

    K: np.ndarray  # (G, q, r): M^{-1} B, maps the rest of the unknowns to the group's u
    M_inv: np.ndarray  # (G, q, q)


@dataclass
class _Evaluation:
    """The random effects eliminated at ``theta``: what the likelihood, its derivatives and the
    solution need of the top level, and each level's solve for back-substitution."""

    theta: np.ndarray
    D_top: np.ndarray  # (G_top,) 0.5 * sum of weighted log-determinants inside each top group
    top_C: np.ndarray  # (G_top, p+1, p+1): the top level's form on (beta, 1) before elimination
    top_B: np.ndarray  # (G_top, q_top, p+1): its cross block with the top level's u
    dD_top: np.ndarray | None  # (k, G_top)
    dA_top: np.ndarray | None  # (k, G_top, m_top, m_top): tangents of the top level's form
    solves: list[_LevelSolve]
    LT: np.ndarray | None = None  # two-level models: Lambda~' T, from which dA_top follows
    rows: np.ndarray | None = None  # positions of the theta entries in Lambda~
    cols: np.ndarray | None = None

    def top_quadratic(self, ext: np.ndarray) -> np.ndarray:
        """``ext' S_h ext`` per top group, with ``S_h = C_h - B_h' K_h`` the eliminated form."""
        K = self.solves[-1].K
        return np.einsum("i,gij,j->g", ext, self.top_C, ext) - np.einsum(
            "gqi,i,gqj,j->g", self.top_B, ext, K, ext, optimize=True
        )

    def top_linear(self, ext: np.ndarray, p: int) -> np.ndarray:
        """``S_h[:p, :] ext`` per top group: shape (G_top, p)."""
        K = self.solves[-1].K
        return self.top_C[:, :p, :] @ ext - np.einsum("gqi,gq->gi", self.top_B[:, :, :p], K @ ext)

    def tangent_quadratic(self, ext: np.ndarray) -> np.ndarray:
        """``ext' dS_top ext`` for every theta direction and top group: shape (k, G_top).

        Only this contraction of the top-level Schur complement's derivative is ever needed. With
        ``y = [-K ext, ext]`` it equals ``y' dA_top y``; for two-level models ``dA`` has the
        structure ``E' T~ + T~' E`` and the contraction reduces to two columns of ``y' Lambda' T``.
        """
        top = self.solves[-1]
        y = np.concatenate([-(top.K @ ext), np.broadcast_to(ext, (len(top.K), len(ext)))], axis=1)
        if self.LT is not None:
            yLT = np.einsum("gi,gir->gr", y, self.LT)
            return 2.0 * (y[:, self.cols] * yLT[:, self.rows]).T
        dA = self.dA_top
        Ay = np.einsum("kgij,gj->kgi", dA, y)
        return np.einsum("kgi,gi->kg", Ay, y)


@dataclass
class CrossProducts:
    """The sufficient statistics of a weighted linear mixed model.

    Attributes
    ----------
    T
        ``(G2, m, m)`` per-level-2-group cross-products of ``[Z, X, -r0]`` with the conditional
        level-1 weights, ``r0 = y - X beta0``.
    beta0
        ``(p,)`` the weighted least-squares coefficients subtracted from ``y``.
    n_weighted
        Sum of the unconditional level-1 weights.
    n_weighted_top
        ``(G_top,)`` the same sum within each top-level group.
    cond_weight_sums
        ``(G2,)`` sum of the conditional level-1 weights in each level-2 group (to rescale ``T``
        group by group; ``None`` if unknown).
    """

    T: np.ndarray
    beta0: np.ndarray
    n_weighted: float
    n_weighted_top: np.ndarray
    cond_weight_sums: np.ndarray | None = None


def cross_products(frame: ModelFrame, beta0: np.ndarray | None = None) -> CrossProducts:
    """One pass over the rows: the :class:`CrossProducts` of a model frame.

    ``beta0`` defaults to the weighted least-squares fit; subtracting ``X beta0`` from ``y`` keeps
    the sums of squares small, so the profiled residual sum of squares loses no digits.
    """
    X, y, w1 = frame.X, frame.y_less_offset, frame.weight1
    if beta0 is None:
        sw = np.sqrt(w1)
        beta0 = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    r0 = y - X @ beta0
    columns = np.column_stack([frame.Z, X, -r0])  # rows of Z b + X delta - r0 = -residual
    m = columns.shape[1]
    level2, top = frame.levels[0], frame.levels[-1]
    g2, n2 = level2.group_index, level2.n_groups
    c1 = frame.cond_weight1
    # per-level-2-group cross-products, one weighted bincount per upper-triangle pair
    T = np.empty((n2, m, m))
    for a in range(m):
        weighted = c1 * columns[:, a]
        for b in range(a, m):
            T[:, a, b] = np.bincount(g2, weighted * columns[:, b], minlength=n2)
            T[:, b, a] = T[:, a, b]
    top_of_row = g2
    for level in frame.levels[:-1]:
        top_of_row = level.parent_index[top_of_row]
    return CrossProducts(
        T,
        beta0,
        float(w1.sum()),
        np.bincount(top_of_row, w1, minlength=top.n_groups),
        np.bincount(g2, c1, minlength=n2),
    )


class LinearProblem:
    """The sufficient statistics of a weighted linear mixed model and its likelihood.

    Parameters
    ----------
    frame
        The model frame (its levels; its rows only if ``statistics`` is not given).
    statistics
        Precomputed sufficient statistics (e.g. combined over the partitions of a Dask frame).
    """

    def __init__(self, frame: ModelFrame, statistics: CrossProducts | None = None):
        self.frame = frame
        self.structure = CovarianceStructure(frame.levels)
        levels = frame.levels
        self.p = frame.X.shape[1]
        self.Q = self.structure.Q
        stats = cross_products(frame) if statistics is None else statistics
        self.T, self.beta0 = stats.T, stats.beta0
        self.n_weighted, self.n_weighted_top = stats.n_weighted, stats.n_weighted_top
        self.cond_weight_sums = stats.cond_weight_sums
        self.m = self.T.shape[1]

        # aggregation from each level to its parent, with the child's conditional weight
        self.aggregators = []
        for level in levels[:-1]:
            G = level.n_groups
            parent_count = int(level.parent_index.max()) + 1
            self.aggregators.append(
                scipy.sparse.csr_matrix(
                    (level.cond_weight, (level.parent_index, np.arange(G))), shape=(parent_count, G)
                )
            )
        # index of each group's top-level group, per level
        self.top_of = []
        for k in range(len(levels)):
            idx = np.arange(levels[k].n_groups)
            for upper in levels[k:-1]:
                idx = upper.parent_index[idx]
            self.top_of.append(idx)
        top = levels[-1]
        self.n_top = top.n_groups
        self.top_weight = top.weight

    # -- the likelihood ----------------------------------------------------------------------------

    def evaluate(self, theta: np.ndarray, tangents: bool = False) -> _Evaluation:
        """Eliminate all random effects at ``theta``; optionally carry d/dtheta along.

        Parameters
        ----------
        theta
            ``(k,)`` relative Cholesky entries (lme4 order).
        tangents
            Also propagate the derivatives in theta (for gradients and scores).
        """
        st = self.structure
        theta = np.asarray(theta, dtype=float)
        lam = np.eye(self.m)
        lam[: self.Q, : self.Q] = st.stacked(theta)
        n2, m = self.T.shape[:2]
        LT = _swap((self.T.reshape(-1, m) @ lam).reshape(n2, m, m))  # Lambda~' T  (T symmetric)
        A = (LT.reshape(-1, m) @ lam).reshape(n2, m, m)
        levels = self.frame.levels
        last = len(levels) - 1
        # Level 2's tangents d(Lambda' T Lambda)/d theta_j = e_c l' + l e_c' (l = column r of
        # Lambda' T, (r, c) = the entry's position) are never stored: they are used through this
        # rank-2 structure. Higher levels receive dense tangents (aggregated Schur complements).
        dA = None
        D_top = np.zeros(self.n_top)
        dD_top = np.zeros((st.size, self.n_top)) if tangents else None
        solves = []
        for k_level, level in enumerate(levels):
            q = level.q
            M = A[:, :q, :q] + np.eye(q)
            B = A[:, :q, q:]
            M_inv, logdet = _spd_inverse_logdet(M)
            K = _small_matmul(M_inv, B)
            top_of = self.top_of[k_level]
            D_top += np.bincount(top_of, 0.5 * level.weight * logdet, minlength=self.n_top)
            solves.append(_LevelSolve(K=K, M_inv=M_inv))
            if tangents:
                if k_level == 0:
                    dlogdet = _level2_dlogdet(st, M_inv, LT, q)
                else:
                    dlogdet = (M_inv[None] * dA[:, :, :q, :q]).sum(axis=(-1, -2))
                for j, row in enumerate(dlogdet):
                    dD_top[j] += np.bincount(top_of, 0.5 * level.weight * row, minlength=self.n_top)
            if k_level == last:  # the top's Schur complement is only ever needed contracted
                C = A[:, q:, q:]
                if last == 0:
                    return _Evaluation(
                        theta, D_top, C, B, dD_top, None, solves, LT if tangents else None, st.rows, st.cols
                    )
                return _Evaluation(theta, D_top, C, B, dD_top, dA, solves)
            S = A[:, q:, q:] - np.einsum("gqi,gqj->gij", B, K)
            agg = self.aggregators[k_level]
            r = S.shape[-1]
            A = (agg @ S.reshape(len(S), -1)).reshape(-1, r, r)
            if tangents and k_level == 0:
                dA = _level2_tangents(st, LT, K, agg, q, A.shape[0])
            elif tangents:
                dA = _aggregated_tangents(dA, K, agg, q)
        raise AssertionError("unreachable")

    def top_system(self, ev: _Evaluation) -> np.ndarray:
        """``sum_h w_h S_h``: the GLS system for beta (and the residual sum of squares)."""
        w = self.top_weight
        r = ev.top_C.shape[-1]
        weighted_B = (w[:, None, None] * ev.top_B).reshape(-1, r)
        return np.tensordot(w, ev.top_C, axes=1) - weighted_B.T @ ev.solves[-1].K.reshape(-1, r)

    def gls(self, ev: _Evaluation) -> tuple[np.ndarray, np.ndarray, float]:
        """beta and sigma^2 that maximise the likelihood at the evaluation ``ev``'s theta.

        Returns the GLS system ``sum_h w_h S_h``, ``ext = (beta - beta0, 1)`` and
        ``sigma^2 = r2 / N_w`` (``r2``: the weighted residual sum of squares at that beta).
        """
        total = self.top_system(ev)
        p = self.p
        delta = np.linalg.solve(total[:p, :p], -total[:p, p])
        ext = np.append(delta, 1.0)
        return total, ext, float(ext @ total @ ext) / self.n_weighted

    def deviance(self, theta: np.ndarray, gradient: bool = False) -> float | tuple[float, np.ndarray]:
        """Profiled deviance ``-2 lnl(theta)``, beta and sigma at their optimum given theta.

        Parameters
        ----------
        theta
            ``(k,)`` relative Cholesky entries (lme4 order).
        gradient
            Also return the exact gradient in theta.

        Returns
        -------
        float or (float, ndarray)
            The deviance, or the deviance and its ``(k,)`` gradient.
        """
        ev = self.evaluate(theta, tangents=gradient)
        total = self.top_system(ev)
        p = self.p
        delta = np.linalg.solve(total[:p, :p], -total[:p, p])
        r2 = total[p, p] + total[:p, p] @ delta
        D = ev.D_top.sum()
        Nw = self.n_weighted
        dev = 2.0 * D + Nw * (LOG_2PI + np.log(r2 / Nw) + 1.0)
        if not gradient:
            return dev
        ext = np.append(delta, 1.0)
        d_r2 = ev.tangent_quadratic(ext) @ self.top_weight
        grad = 2.0 * ev.dD_top.sum(axis=1) + Nw * d_r2 / r2
        return dev, grad

    def group_lnl(
        self, ev: _Evaluation, ext: np.ndarray, sigma2: float
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Per-top-group log-likelihood at ``ext = (beta - beta0, 1)`` and ``sigma2``.

        Returns the contributions ``(G_top,)``, their derivatives in theta ``(k, G_top)`` (None
        if ``ev`` carries no tangents) and the weighted residual sums of squares ``(G_top,)``.
        """
        r2_h = self.top_weight * ev.top_quadratic(ext)
        lnl_h = -ev.D_top - 0.5 * self.n_weighted_top * (LOG_2PI + np.log(sigma2)) - r2_h / (2 * sigma2)
        if ev.dD_top is None:
            return lnl_h, None, r2_h
        d_r2 = self.top_weight[None, :] * ev.tangent_quadratic(ext)
        return lnl_h, (-ev.dD_top - d_r2 / (2 * sigma2)), r2_h

    def profiled_lnl(self, ev: _Evaluation, sigma2: float) -> float:
        """The log-likelihood at the evaluation ``ev`` with residual variance ``sigma2``, beta at
        its GLS value (so that the weighted residual sum of squares is ``N_w sigma2``)."""
        return -ev.D_top.sum() - 0.5 * self.n_weighted * (LOG_2PI + np.log(sigma2) + 1.0)

    # -- the estimate ------------------------------------------------------------------------------

    def optimize(self, start: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """Minimise the profiled deviance over theta (diagonal entries bounded below by 0).

        Returns the canonical theta and a dict with ``converged``, ``iterations``,
        ``evaluations`` and ``message``; warns (:class:`~wemix_nb.errors.ConvergenceWarning`)
        if the optimum is not stationary.
        """
        return _optimize(self, start)

    def solution(self, theta: np.ndarray) -> LinearSolution:
        """beta, sigma, random effects and all SEs at ``theta``."""
        return _solution(self, theta)


def _level2_dlogdet(st: CovarianceStructure, M_inv: np.ndarray, LT: np.ndarray, q: int) -> np.ndarray:
    """``(k, G2)`` derivatives of the level-2 log-determinants, from the rank-2 tangents:
    ``tr(M^-1 dM_j) = 2 (M^-1 LT[:q, r_j])[c_j]`` when ``c_j < q``, else 0."""
    MLT = np.einsum("gab,gbr->gar", M_inv, LT[:, :q, :])
    own = st.cols < q
    dlogdet = np.zeros((st.size, len(M_inv)))
    dlogdet[own] = 2.0 * MLT[:, st.cols[own], st.rows[own]].T
    return dlogdet


def _level2_tangents(
    st: CovarianceStructure, LT: np.ndarray, K: np.ndarray, agg, q: int, n_parents: int
) -> np.ndarray:
    """``(k, G3, r, r)`` tangents of the level-3 forms: the level-2 Schur complements' rank-2
    tangents, aggregated with the conditional weights.

    With ``a = (e_c)_s - K'(e_c)_u`` and ``b = l_s - K' l_u``, ``dS_j = a b' + b a'``.
    """
    r = K.shape[-1]
    dA = np.empty((st.size, n_parents, r, r))
    for j, (row, col) in enumerate(zip(st.rows, st.cols, strict=True)):
        l_u, l_s = LT[:, :q, row], LT[:, q:, row]
        b = l_s - np.einsum("gqr,gq->gr", K, l_u)
        if col < q:
            a = -K[:, col, :]
            ab = a[:, :, None] * b[:, None, :]
        else:
            ab = np.zeros((len(b), r, r))
            ab[:, col - q, :] = b
        dS = ab + _swap(ab)
        dA[j] = (agg @ dS.reshape(len(dS), -1)).reshape(-1, r, r)
    return dA


def _aggregated_tangents(dA: np.ndarray, K: np.ndarray, agg, q: int) -> np.ndarray:
    """Dense tangents of the next level's forms: the Schur complement's differential
    ``dS = dC - K' dB - dB' K + K' dM K``, aggregated with the conditional weights."""
    r = K.shape[-1]
    dM = dA[:, :, :q, :q]
    dB = dA[:, :, :q, q:]
    KtdB = _swap(K) @ dB
    dS = dA[:, :, q:, q:] - KtdB - _swap(KtdB) + _swap(K) @ dM @ K
    kk, G = dS.shape[:2]
    flat = np.moveaxis(dS, 1, 0).reshape(G, -1)
    return np.moveaxis((agg @ flat).reshape(-1, kk, r, r), 0, 1)
