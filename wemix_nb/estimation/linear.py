"""Weighted linear mixed models: the profiled pseudo-log-likelihood, its optimum and robust SEs.

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

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse

from wemix_nb.errors import (
    ArgumentError,
    ConvergenceWarning,
    DataError,
    NumericalWarning,
    RankDeficiencyError,
)
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame

LOG_2PI = np.log(2.0 * np.pi)


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


@dataclass
class _LevelSolve:
    """What one level's elimination leaves behind for back-substitution."""

    K: np.ndarray  # (G, q, r): M^{-1} B, maps the rest of the unknowns to the group's u
    M_inv: np.ndarray  # (G, q, q)


@dataclass
class _Evaluation:
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
    """

    T: np.ndarray
    beta0: np.ndarray
    n_weighted: float
    n_weighted_top: np.ndarray


def cross_products(frame: ModelFrame, beta0: np.ndarray | None = None) -> CrossProducts:
    """One pass over the rows: the :class:`CrossProducts` of a model frame.

    ``beta0`` defaults to the weighted least-squares fit; subtracting ``X beta0`` from ``y`` keeps
    the sums of squares small, so the profiled residual sum of squares loses no digits.
    """
    X, y, w1 = frame.X, frame.y, frame.weight1
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
    return CrossProducts(T, beta0, float(w1.sum()), np.bincount(top_of_row, w1, minlength=top.n_groups))


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
        """Eliminate all random effects at ``theta``; optionally carry d/dtheta along."""
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
                    # tr(M^-1 dM_j) = 2 (M^-1 LT[:q, r_j])[c_j] when c_j < q, else 0
                    MLT = np.einsum("gab,gbr->gar", M_inv, LT[:, :q, :])
                    own = st.cols < q
                    dlogdet = np.zeros((st.size, len(M)))
                    dlogdet[own] = 2.0 * MLT[:, st.cols[own], st.rows[own]].T
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
                # with a = (e_c)_s - K'(e_c)_u and b = l_s - K' l_u, dS_j = a b' + b a'
                dA = np.empty((st.size, A.shape[0], r, r))
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
            elif tangents:
                dM = dA[:, :, :q, :q]
                dB = dA[:, :, :q, q:]
                KtdB = _swap(K) @ dB
                dS = dA[:, :, q:, q:] - KtdB - _swap(KtdB) + _swap(K) @ dM @ K
                kk, G = dS.shape[:2]
                flat = np.moveaxis(dS, 1, 0).reshape(G, -1)
                dA = np.moveaxis((agg @ flat).reshape(-1, kk, r, r), 0, 1)
        raise AssertionError("unreachable")

    def _top_system(self, ev: _Evaluation) -> np.ndarray:
        """``sum_h w_h S_h``: the GLS system for beta (and the residual sum of squares)."""
        w = self.top_weight
        r = ev.top_C.shape[-1]
        weighted_B = (w[:, None, None] * ev.top_B).reshape(-1, r)
        return np.tensordot(w, ev.top_C, axes=1) - weighted_B.T @ ev.solves[-1].K.reshape(-1, r)

    def deviance(self, theta: np.ndarray, gradient: bool = False):
        """Profiled deviance ``-2 lnl(theta)`` (and its gradient)."""
        ev = self.evaluate(theta, tangents=gradient)
        total = self._top_system(ev)
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

    # -- optimisation ------------------------------------------------------------------------------

    def optimize(self, start: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """Minimise the profiled deviance over theta (diagonal entries bounded below by 0)."""
        st = self.structure
        x0 = st.start() if start is None else np.asarray(start, dtype=float)
        scale = 1.0 / max(abs(self.deviance(x0)), 1.0)  # keep the objective O(1) for the line search

        def objective(x):
            dev, grad = self.deviance(x, gradient=True)
            return dev * scale, grad * scale

        def run(x):
            return scipy.optimize.minimize(
                objective,
                x,
                jac=True,
                method="L-BFGS-B",
                bounds=st.lower_bounds(),
                options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8, "maxcor": 20},
            )

        res = run(x0)
        # A diagonal entry at its bound of 0 has a zero gradient even when it is a saddle (theta
        # enters as theta^2 there), so the bounded search can stop on it: restart away from 0
        # and keep the restart if it is better.
        for _ in range(3):
            at_zero = st.diagonal & (res.x < 1e-4)
            if not at_zero.any():
                break
            trial = res.x.copy()
            trial[at_zero] = 0.5
            other = run(trial)
            if other.fun >= res.fun - 1e-12 * abs(res.fun):
                break
            res = other
        x = res.x
        # a few Newton steps on the exact gradient polish the flat optimum
        x, polished = self._newton_polish(x)
        converged = polished  # judged by the gradient at the point returned, whatever L-BFGS-B said
        gradient = float(np.max(np.abs(self.deviance(x, gradient=True)[1]), initial=0.0))
        info = {
            "converged": converged,
            "iterations": int(res.nit),
            "evaluations": int(res.nfev),
            "message": (
                f"profiled deviance minimised; largest gradient entry {gradient:.1e}"
                if converged
                else f"stopped: {res.message}"
            ),
        }
        if not info["converged"]:
            warnings.warn(
                f"The optimiser did not converge after {res.nit} iterations: {res.message}",
                ConvergenceWarning,
                stacklevel=3,
            )
        return st.canonical(x), info

    def _free(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Parameters not resting on their bound (a diagonal entry at 0 pushed further down)."""
        return ~(self.structure.diagonal & (x <= 1e-12) & (grad > 0))

    def _newton_polish(self, x: np.ndarray, steps: int = 4) -> tuple[np.ndarray, bool]:
        """A few Newton steps on the exact gradient; returns the point and whether it is stationary
        (largest free gradient entry below 1e-8 of the deviance's size)."""
        bounds = self.structure.diagonal
        for _ in range(steps):
            dev, grad = self.deviance(x, gradient=True)
            free = self._free(x, grad)
            if not free.any():
                break
            H = _jacobian(lambda t: self.deviance(t, gradient=True)[1], x)
            Hf = 0.5 * (H + H.T)[np.ix_(free, free)]
            try:
                if np.linalg.eigvalsh(Hf).min() <= 0:
                    break
                step = np.zeros_like(x)
                step[free] = -np.linalg.solve(Hf, grad[free])
            except np.linalg.LinAlgError:
                break
            candidate = np.where(bounds, np.maximum(x + step, 0.0), x + step)
            if self.deviance(candidate) > dev:  # no further progress at machine precision
                break
            x = candidate
            if np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(x))):
                break
        dev, grad = self.deviance(x, gradient=True)
        free = self._free(x, grad)
        stationary = not free.any() or np.max(np.abs(grad[free])) < 1e-8 * max(abs(dev), 1.0)
        return x, bool(stationary)

    # -- quantities at the estimate -------------------------------------------------------------------

    def solution(self, theta: np.ndarray) -> LinearSolution:
        """beta, sigma, random effects and all SEs at ``theta``."""
        ev = self.evaluate(theta, tangents=True)
        total = self._top_system(ev)
        p = self.p
        A = total[:p, :p]
        delta = np.linalg.solve(A, -total[:p, p])
        beta = self.beta0 + delta
        ext = np.append(delta, 1.0)
        r2 = float(ext @ total @ ext)
        Nw = self.n_weighted
        sigma2 = r2 / Nw
        lnl = -ev.D_top.sum() - 0.5 * Nw * (LOG_2PI + np.log(sigma2) + 1.0)

        # random effects (spherical u, then b = Lambda u), top level down
        levels = self.frame.levels
        lambdas = self.structure.factors(theta)
        u = [None] * len(levels)
        rest = np.broadcast_to(ext, (self.n_top, p + 1))
        cond_cov = [None] * len(levels)
        ancestor_cov = np.zeros((self.n_top, 0, 0))
        for k in range(len(levels) - 1, -1, -1):
            solve = ev.solves[k]
            if k < len(levels) - 1:
                parent = levels[k].parent_index
                rest = rest[parent]
                ancestor_cov = ancestor_cov[parent]
            u[k] = -np.einsum("gqr,gr->gq", solve.K, rest)
            # conditional covariance of (u_k, ancestors) given the data, beta fixed
            n_anc = ancestor_cov.shape[-1]
            K_anc = solve.K[:, :, :n_anc]
            own = sigma2 * solve.M_inv + K_anc @ ancestor_cov @ _swap(K_anc)
            cross = -K_anc @ ancestor_cov
            cond_cov[k] = own
            ancestor_cov = np.concatenate(
                [np.concatenate([own, cross], axis=2), np.concatenate([_swap(cross), ancestor_cov], axis=2)],
                axis=1,
            )
            rest = np.concatenate([u[k], rest], axis=1)
        b = [uk @ lam.T for uk, lam in zip(u, lambdas, strict=True)]
        b_cov = [lam @ cov @ lam.T for cov, lam in zip(cond_cov, lambdas, strict=True)]

        frame = self.frame
        fitted_fixed = frame.X @ beta
        fitted = fitted_fixed.copy()
        for level, bk in zip(levels, b, strict=True):
            fitted += np.einsum("nq,nq->n", level.Z, bk[level.group_index])
        resid = frame.y - fitted

        # robust covariance of beta: per-top-group scores from the envelope of each group's r2
        w_top = self.top_weight
        scores_beta = -(w_top[:, None] / sigma2) * ev.top_linear(ext, p)
        G = self.n_top
        model_cov = sigma2 * np.linalg.inv(A)
        J_beta = G / (G - 1) * scores_beta.T @ scores_beta
        cov_beta = model_cov @ J_beta @ model_cov

        var_cov, var_theta, var_se = self._variance_sandwich(theta, ev, ext, sigma2)
        return LinearSolution(
            theta=theta,
            beta=beta,
            sigma=float(np.sqrt(sigma2)),
            lnl=float(lnl),
            model_cov=model_cov,
            cov_beta=cov_beta,
            u=u,
            b=b,
            b_cov=b_cov,
            fitted=fitted,
            fitted_fixed=fitted_fixed,
            resid=resid,
            phi_cov=var_cov,
            var_theta=var_theta,
            var_se=var_se,
        )

    def per_group_lnl(
        self, theta: np.ndarray, beta: np.ndarray, sigma: float, tangents: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-top-group log-likelihood at (beta, theta, sigma), random effects profiled out."""
        ev = self.evaluate(theta, tangents=tangents)
        lnl_h, d_theta, _ = self._group_lnl(ev, np.append(beta - self.beta0, 1.0), sigma**2)
        return lnl_h, d_theta

    def _group_lnl(self, ev: _Evaluation, ext: np.ndarray, sigma2: float):
        r2_h = self.top_weight * ev.top_quadratic(ext)
        lnl_h = -ev.D_top - 0.5 * self.n_weighted_top * (LOG_2PI + np.log(sigma2)) - r2_h / (2 * sigma2)
        if ev.dD_top is None:
            return lnl_h, None, r2_h
        d_r2 = self.top_weight[None, :] * ev.tangent_quadratic(ext)
        return lnl_h, (-ev.dD_top - d_r2 / (2 * sigma2)), r2_h

    def _phi_scores(self, theta: np.ndarray, ext: np.ndarray, sigma: float, ev=None) -> np.ndarray:
        """Per-top-group scores of (theta, sigma), beta fixed: shape (G_top, k + 1)."""
        if ev is None:
            ev = self.evaluate(theta, tangents=True)
        _, d_theta, r2_h = self._group_lnl(ev, ext, sigma**2)
        d_sigma = -self.n_weighted_top / sigma + r2_h / sigma**3
        return np.column_stack([d_theta.T, d_sigma])

    def _variance_sandwich(self, theta, ev, ext, sigma2):
        """Robust covariance of (theta, sigma) per level and of the (co)variance estimates.

        Follows WeMix's construction (each level separately, beta held fixed): scores of the
        per-top-group likelihood, the Hessian of the total likelihood, and the delta method to
        ``Sigma_l = sigma^2 Lambda_l Lambda_l'``. Both derivatives are exact here (WeMix uses
        finite differences).
        """
        st = self.structure
        sigma = np.sqrt(sigma2)
        phi = np.append(theta, sigma)
        scores = self._phi_scores(theta, ext, sigma, ev)
        G = self.n_top
        J = G / (G - 1) * scores.T @ scores

        def total_gradient(x):
            return self._phi_scores(x[:-1], ext, x[-1]).sum(axis=0)

        H = _jacobian(total_gradient, phi)
        H = -0.5 * (H + H.T)
        k = st.size
        n_levels = len(st.q)
        phi_cov = {}
        var_theta = np.zeros((k, k))
        var_se: dict[tuple[int, int, int], float] = {}
        lambdas = st.factors(theta)
        for level in range(n_levels):
            idx = np.append(np.flatnonzero(st.entry_level == level), k)
            A = H[np.ix_(idx, idx)]
            A = _positive_definite(A, f"level {level + 2}")
            A_inv = np.linalg.inv(A)
            V = A_inv @ J[np.ix_(idx, idx)] @ A_inv
            phi_cov[level] = V
            lam = lambdas[level]
            q = st.q[level]
            entries = [st.entries[j] for j in idx[:-1]]
            # gradients of every Sigma entry (a <= c) w.r.t. (free entries of this level, sigma)
            grads = {}
            for a in range(q):
                for c in range(a, q):
                    g = np.zeros(len(idx))
                    for pos, e in enumerate(entries):
                        g[pos] = sigma2 * ((e.row == a) * lam[c, e.col] + (e.row == c) * lam[a, e.col])
                    g[-1] = 2.0 * sigma * (lam[a] @ lam[c])
                    grads[(a, c)] = g
                    var_se[(level, a, c)] = float(np.sqrt(max(g @ V @ g, 0.0)))
            # var_theta: rows in the order of the level's theta entries (the free Sigma entries)
            rows = [grads[(min(e.row, e.col), max(e.row, e.col))] for e in entries]
            Dl = np.array(rows)
            pos = idx[:-1]
            var_theta[np.ix_(pos, pos)] = Dl @ V @ Dl.T
            if level == 0:
                var_se[("residual",)] = float(2.0 * sigma * np.sqrt(V[-1, -1]))
        return phi_cov, var_theta, var_se


@dataclass
class LinearSolution:
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    lnl: float
    model_cov: np.ndarray
    cov_beta: np.ndarray
    u: list[np.ndarray]
    b: list[np.ndarray]
    b_cov: list[np.ndarray]
    fitted: np.ndarray
    fitted_fixed: np.ndarray
    resid: np.ndarray
    phi_cov: dict
    var_theta: np.ndarray
    var_se: dict


def _jacobian(func, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector function (used on exact gradients)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(len(x)):
        h = 1e-5 * (abs(x[j]) + 1e-3)
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        cols.append((func(up) - func(down)) / (2 * h))
    return np.column_stack(cols)


def _positive_definite(A: np.ndarray, where: str) -> np.ndarray:
    eig, vec = np.linalg.eigh(A)
    if eig.min() > 0 and eig.max() / eig.min() < np.finfo(float).eps ** -0.25:
        return A
    warnings.warn(
        f"The information matrix of the variance parameters at {where} is not well conditioned "
        f"(eigenvalues {eig.min():.3g} to {eig.max():.3g}); their standard errors are approximate.",
        NumericalWarning,
        stacklevel=4,
    )
    floor = max(abs(eig.max()), 1.0) * 400 * np.sqrt(np.finfo(float).eps)
    return (vec * np.maximum(eig, floor)) @ vec.T


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
    """
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
