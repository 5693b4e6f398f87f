"""The 2-level weighted GLMM likelihood by AGHQ, with its exact gradient.

Modes
    Every level-2 group's mode is a separate q-dimensional problem; all groups are solved at once
    by a damped Newton iteration on ``(groups, q)`` arrays with batched ``q x q`` solves,
    warm-started from the previous evaluation.
Gradient
    Exact analytic derivative of the AGHQ approximation, *including* the movement of the
    adaptive nodes with the parameters (the mode through the implicit function theorem, the
    Cholesky factor through its differential). It is checked against finite differences in the
    tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wemix_nb.errors import DataError
from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes
from wemix_nb.estimation.glmm.quadrature import (
    _chol_upper,
    _chunks,
    _gh_rule,
    _inv_upper,
    _logsumexp_rows,
    _quiet,
)
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame

_BLOCK_ROWS = 1 << 14  # rows per block of whole groups: the mode and gradient arrays stay small


def level2_modes(
    structure: CovarianceStructure, frame: ModelFrame, theta: np.ndarray, ev: dict
) -> list[GlmmLevelModes]:
    """The modes ``ev["u"]`` of a two-level GLMM's groups and their random effects, with SDs from
    the inverse Fisher curvature ``ev["Hf"]`` at the mode (shared by the in-memory and Dask fits)."""
    level = frame.levels[0]
    lam = structure.factors(theta)[0]
    u = ev["u"]
    Hinv = np.linalg.inv(ev["Hf"])
    u_sd = np.sqrt(np.maximum(np.diagonal(Hinv, axis1=1, axis2=2), 0.0))
    bcov = np.einsum("ab,gbc,dc->gad", lam, Hinv, lam)
    b_sd = np.sqrt(np.maximum(np.diagonal(bcov, axis1=1, axis2=2), 0.0))
    return [GlmmLevelModes(level.name, level.labels, list(level.terms), u.copy(), u @ lam.T, u_sd, b_sd)]


class _TwoLevel:
    """Vectorised AGHQ likelihood and exact gradient of a 2-level weighted GLMM.

    Groups are independent, so the rows (sorted by group) are cut into blocks of whole groups,
    each handled by a :class:`_TwoLevelBlock` (modes, quadrature, gradient), and the per-group
    results are concatenated. Blocks keep the temporaries small, which matters more for speed
    than the number of numpy calls. Implements
    :class:`~wemix_nb.estimation.glmm.protocol.QuadratureModel`.

    Parameters
    ----------
    frame
        A 2-level model frame.
    family
        The response family.
    nquad
        Quadrature points per random-effect dimension (1 = Laplace).
    laplace_rounding
        With a binomial family and ``nquad = 1``: WeMix's objective, ``round(w1) log f``.
    """

    analytic_gradient = True

    def __init__(self, frame: ModelFrame, family: Family, nquad: int, laplace_rounding: bool):
        level = frame.levels[0]
        self.family = family
        self.structure = CovarianceStructure(frame.levels)
        order = np.argsort(level.group_index, kind="stable")
        self.order = order
        g = level.group_index[order]
        self.G = level.n_groups
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        if len(starts) != self.G:
            raise DataError(f"Some groups of {level.name!r} have no rows.")
        self.p = frame.X.shape[1]
        self.q = level.q
        self.k = self.structure.size
        self.nquad = nquad
        self.rounding = bool(laplace_rounding and nquad == 1 and family.name == "binomial")
        w2 = np.asarray(level.cond_weight, dtype=float)  # top level: conditional = unconditional
        c1 = frame.cond_weight1[order]
        # WeMix's nQuad = 1 binomial objective: round(w1) log f
        c_node = np.round(frame.weight1[order]) / w2[g] if self.rounding else c1
        y, X, Z = frame.y[order], frame.X[order], level.Z[order]
        trials = None if frame.trials is None else frame.trials[order]
        # each row's constant log f(y | mu = y), kept out of the objective (see families)
        const_rows = c_node * family.log_constant(y, trials)
        if trials is not None:  # a row of n trials: n times the per-trial log-density
            c1, c_node = c1 * trials, c_node * trials
        offset = np.zeros(len(y)) if frame.offset is None else frame.offset[order]
        nodes, logw = _gh_rule(nquad, self.q)
        entries = self.structure.entries
        rows_theta = np.array([e.row for e in entries], dtype=int)
        cols_theta = np.array([e.col for e in entries], dtype=int)
        self.blocks: list[_TwoLevelBlock] = []
        self.group_bounds: list[tuple[int, int]] = []
        for g0, g1, r0, r1 in _chunks(starts, len(y), 1, cells=_BLOCK_ROWS):
            sl = slice(r0, r1)
            self.blocks.append(
                _TwoLevelBlock(
                    family,
                    _BlockRows(y[sl], X[sl], Z[sl], offset[sl], c1[sl], c_node[sl], g[sl] - g0),
                    w2[g0:g1],
                    nodes,
                    logw,
                    rows_theta,
                    cols_theta,
                )
            )
            self.group_bounds.append((g0, g1))
        # the constant part of each group's log-likelihood (not part of the objective)
        self.constant_by_group = w2 * np.bincount(g, weights=const_rows, minlength=self.G)
        self.n_evaluations = 0

    @property
    def u(self) -> np.ndarray:
        """``(G, q)`` warm-start modes (a copy, gathered from the blocks)."""
        return np.concatenate([blk.u for blk in self.blocks])

    @u.setter
    def u(self, value: np.ndarray) -> None:
        for blk, (g0, g1) in zip(self.blocks, self.group_bounds, strict=True):
            blk.u = np.array(value[g0:g1], dtype=float)

    def save_modes(self) -> np.ndarray:
        """A copy of the warm-start modes."""
        return self.u

    def restore_modes(self, saved: np.ndarray) -> None:
        """Set the warm-start modes (copied into the blocks)."""
        self.u = saved

    @_quiet
    def evaluate(self, beta: np.ndarray, theta: np.ndarray, grad: bool = False) -> dict:
        """Per-group log-likelihood contributions (and per-group gradients in ``(beta, theta)``)."""
        self.n_evaluations += 1
        lam = self.structure.factors(theta)[0]
        parts = [blk.evaluate(beta, lam, grad) for blk in self.blocks]
        if any(not np.isfinite(part["value"]) for part in parts):
            return {"value": -np.inf, "by_group": np.full(self.G, -np.inf)}
        out = {key: np.concatenate([part[key] for part in parts]) for key in parts[0] if key != "value"}
        out["value"] = float(out["by_group"].sum())
        if grad:
            out["grad"] = out["grad_by_group"].sum(axis=0)
        return out

    # -- post-estimation ----------------------------------------------------------------------
    def level_modes(self, frame: ModelFrame, theta: np.ndarray, ev: dict) -> list[GlmmLevelModes]:
        """The modes of the level-2 groups, with SDs from the Fisher curvature at the mode."""
        return level2_modes(self.structure, frame, theta, ev)

    def eta_rows(self, ev: dict) -> np.ndarray:
        """The linear predictor at the modes, back in the frame's row order."""
        eta = np.empty_like(ev["eta"])
        eta[self.order] = ev["eta"]
        return eta


@dataclass(frozen=True)
class _BlockRows:
    """The rows of a block of whole level-2 groups, sorted by group.

    ``c1`` multiplies each row's log-density inside the modes and the curvature (the conditional
    level-1 weight, times the trials of a binomial row), ``c_node`` at the quadrature nodes (the
    same, or WeMix's rounded weights); ``gidx`` is the block-local group index of every row.
    """

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    offset: np.ndarray
    c1: np.ndarray
    c_node: np.ndarray
    gidx: np.ndarray


class _TwoLevelBlock:
    """Modes, AGHQ log-likelihood and its exact gradient for a block of whole level-2 groups."""

    def __init__(
        self,
        family: Family,
        rows: _BlockRows,
        w2: np.ndarray,
        nodes: np.ndarray,
        logw: np.ndarray,
        rows_theta: np.ndarray,
        cols_theta: np.ndarray,
    ):
        self.family = family
        self.y, self.X, self.Z, self.offset = rows.y, rows.X, rows.Z, rows.offset
        self.c1, self.c_node, self.gidx, self.w2 = rows.c1, rows.c_node, rows.gidx, w2
        self.G = len(w2)
        self.starts = np.flatnonzero(np.r_[True, self.gidx[1:] != self.gidx[:-1]])
        self.p, self.q, self.k = self.X.shape[1], self.Z.shape[1], len(rows_theta)
        self.nodes, self.logw = nodes, logw
        self.M = len(logw)
        self.rows_theta, self.cols_theta = rows_theta, cols_theta
        self.chunks = _chunks(self.starts, len(self.y), self.M)
        self.u = np.zeros((self.G, self.q))  # warm start of the modes

    def gsum(self, a: np.ndarray) -> np.ndarray:
        """Sums over the rows of each group (rows are sorted by group)."""
        return np.add.reduceat(a, self.starts, axis=0)

    # -- modes ---------------------------------------------------------------------------------
    def _group_objective(self, off: np.ndarray, A: np.ndarray, u: np.ndarray):
        if self.q == 1:
            eta = off + A[:, 0] * u[self.gidx, 0]
        else:
            eta = off + np.einsum("nq,nq->n", A, u[self.gidx])
        d = self.family.eta_derivatives(self.y, eta)
        obj = self.gsum(self.c1 * d["ll"]) - 0.5 * np.einsum("gq,gq->g", u, u)
        return obj, eta, d

    def _warm_start(self, off: np.ndarray, A: np.ndarray, u0: np.ndarray | None):
        """The previous modes, except in the groups where ``u = 0`` is better: a warm start from
        a wild trial point (a variance near 0 leaves modes of 1e4) would otherwise send the
        Newton iteration to overflow."""
        u = self.u.copy() if u0 is None else u0.copy()
        obj, eta, d = self._group_objective(off, A, u)
        if np.any(u):
            obj0 = self._group_objective(off, A, np.zeros_like(u))[0]
            worse = ~(obj >= obj0)
            if worse.any():
                u[worse] = 0.0
                obj, eta, d = self._group_objective(off, A, u)
        return u, obj, eta, d

    def modes(self, beta: np.ndarray, lam: np.ndarray, u0: np.ndarray | None = None):
        """Damped Newton for all groups at once; returns ``u, X beta, Z Lambda, eta, derivatives``
        and whether the iteration converged."""
        off = self.X @ beta + self.offset
        A = self.Z @ lam
        u, obj, eta, d = self._warm_start(off, A, u0)
        q = self.q
        eye = np.eye(q)
        converged = False
        for _ in range(200):
            grad = self.gsum(A * (self.c1 * d["d1"])[:, None]) - u
            wobs = -self.c1 * d["d2"]
            if q == 1:
                step = grad / (1.0 + self.gsum(wobs * A[:, 0] ** 2))[:, None]
            else:
                Hobs = eye + self.gsum(wobs[:, None, None] * A[:, :, None] * A[:, None, :])
                # an overflowing curvature (far from the mode) would make the batched solve fail
                # for every group: those groups head back to 0 below
                overflow = ~np.all(np.isfinite(Hobs), axis=(1, 2))
                Hobs[overflow] = eye
                step = np.linalg.solve(Hobs, grad[:, :, None])[:, :, 0]
                step[overflow] = np.nan
            bad = ~np.all(np.isfinite(step), axis=1)
            if bad.any():  # overflow far from the mode (e.g. a Poisson mean): head back to 0
                step[bad] = -u[bad]
            size = np.max(np.abs(step)) if step.size else 0.0
            if size < 1e-8 * (1.0 + np.max(np.abs(u))):
                # Newton converges quadratically: after this step the error is ~size^2
                u = u + step
                obj, eta, d = self._group_objective(off, A, u)
                converged = bool(np.all(np.isfinite(obj)))
                break
            t = np.ones(self.G)
            for _half in range(60):
                cand = u + t[:, None] * step
                obj_c, eta_c, d_c = self._group_objective(off, A, cand)
                worse = ~(obj_c >= obj - 1e-12 * (1.0 + np.abs(obj)))
                if not worse.any():
                    break
                t[worse] *= 0.5
            u, obj, eta, d = cand, obj_c, eta_c, d_c
        self.u = u
        return u, off, A, eta, d, converged

    # -- likelihood and gradient --------------------------------------------------------------
    def evaluate(self, beta: np.ndarray, lam: np.ndarray, grad: bool = False) -> dict:
        """Per-group AGHQ log-likelihood (and, with ``grad``, its exact per-group gradient)."""
        q = self.q
        u, off, A, eta, d, converged = self.modes(beta, lam)
        if not converged:  # no mode, no approximation: a point the optimiser must avoid
            self.u = np.zeros_like(u)
            return {"value": -np.inf, "by_group": np.full(self.G, -np.inf)}
        Wf = self.c1 * d["w"]
        Hf = np.eye(q) + self.gsum(Wf[:, None, None] * A[:, :, None] * A[:, None, :])
        try:
            R = _chol_upper(Hf)
        except np.linalg.LinAlgError:
            return {"value": -np.inf, "by_group": np.full(self.G, -np.inf)}
        B = _inv_upper(R)  # R^{-1}, upper
        if not (np.all(np.isfinite(R)) and np.all(np.diagonal(B, axis1=1, axis2=2) > 0)):
            # a curvature beyond floating-point range (a wild trial point: a Poisson mean of
            # 1e304 at the mode); the optimiser must avoid it
            return {"value": -np.inf, "by_group": np.full(self.G, -np.inf)}
        logdetR = np.sum(np.log(np.diagonal(R, axis1=1, axis2=2)), axis=1)
        lse, P, r, t = self._quadrature(u, A, eta, B, grad)
        by_group = self.w2 * (lse - logdetR)
        out = {
            "value": float(by_group.sum()),
            "by_group": by_group,
            "u": u,
            "eta": eta,
            "R": R,
            "B": B,
            "Hf": Hf,
        }
        if grad:
            out["grad_by_group"] = self.w2[:, None] * self._gradient(u, A, d, Wf, B, P, r, t)
        return out

    def _quadrature(self, u: np.ndarray, A: np.ndarray, eta: np.ndarray, B: np.ndarray, grad: bool):
        """Log of the adapted quadrature sum per group, chunk by chunk of whole groups.

        With ``grad`` also the pieces of the gradient that need the nodes: the normalised node
        weights ``P`` ``(G, M)`` and, per row, ``r = sum_k c p_k d1_k`` and
        ``t = sum_k c p_k d1_k z_k`` (so that the ``(rows, M)`` arrays are never kept).
        """
        fam = self.family
        q, M = self.q, self.M
        shifts = np.einsum("gab,mb->gma", B, self.nodes)  # (G, M, q)
        U = u[:, None, :] + shifts
        prior = -0.5 * np.einsum("gmq,gmq->gm", U, U) + self.logw
        lse = np.empty(self.G)
        P = r = t = None
        if grad:
            P = np.empty((self.G, M))
            r = np.empty(len(self.y))
            t = np.empty((len(self.y), q))
        for g0, g1, r0, r1 in self.chunks:
            gl = self.gidx[r0:r1] - g0
            sh = shifts[g0:g1]
            if q == 1:
                e = eta[r0:r1, None] + A[r0:r1, 0:1] * sh[gl, :, 0]
            else:
                e = eta[r0:r1, None] + np.einsum("rq,rmq->rm", A[r0:r1], sh[gl])
            ll, d1 = fam.loglik_d1(self.y[r0:r1, None], e)
            cn = self.c_node[r0:r1, None]
            S = np.add.reduceat(cn * ll, self.starts[g0:g1] - r0, axis=0)
            val = S + prior[g0:g1]
            lse_c = _logsumexp_rows(val)
            lse[g0:g1] = lse_c
            if grad:
                pc = np.exp(val - lse_c[:, None])
                P[g0:g1] = pc
                qd = cn * pc[gl] * d1  # (rows, M)
                r[r0:r1] = qd.sum(axis=1)
                t[r0:r1] = qd @ self.nodes
        return lse, P, r, t

    def _gradient(self, u, A, d, Wf, B, P, r, t) -> np.ndarray:
        """Exact derivative of the AGHQ approximation (per group, before the weight ``w2``),
        nodes moving with the parameters: ``(G, p + k)``.

        ``l_g / w2 = L(phi, u_hat, B)``: the partial derivative at fixed nodes, plus
        ``dL/du_hat du_hat/dphi``, plus ``<dL/dB, dB/dphi>`` with ``dB = -B S``,
        ``S = Phi(B' dH B)`` (the differential of the Cholesky factor).
        """
        q, p, k = self.q, self.p, self.k
        eye = np.eye(q)
        gidx = self.gidx
        Z, X = self.Z, self.X
        rt, ct = self.rows_theta, self.cols_theta
        npar = p + k
        pz = P @ self.nodes  # (G, q): sum_k p_k z_k
        ubar = u + np.einsum("gab,gb->ga", B, pz)
        # partial derivative at fixed nodes
        m_row = r[:, None] * u[gidx] + np.einsum("nab,nb->na", B[gidx], t)
        part = np.empty((self.G, npar))
        part[:, :p] = self.gsum(X * r[:, None])
        part[:, p:] = self.gsum(Z[:, rt] * m_row[:, ct])
        dL_du = self.gsum(A * r[:, None]) - ubar
        pzz = np.einsum("gm,ma,mb->gab", P, self.nodes, self.nodes)
        sum_pUz = u[:, :, None] * pz[:, None, :] + np.einsum("gac,gcb->gab", B, pzz)
        dL_dB = self.gsum(A[:, :, None] * t[:, None, :]) - sum_pUz + np.swapaxes(np.linalg.inv(B), 1, 2)
        # mode derivative: du/dphi = Hobs^{-1} d(grad_u h)/dphi
        c1d1 = self.c1 * d["d1"]
        c1d2 = self.c1 * d["d2"]
        Hobs = eye - self.gsum(c1d2[:, None, None] * A[:, :, None] * A[:, None, :])
        rhs = np.empty((self.G, q, npar))
        rhs[:, :, :p] = self.gsum((A * c1d2[:, None])[:, :, None] * X[:, None, :])
        zr = Z[:, rt]  # (n, k): z_i[r_j]
        t1 = self.gsum(zr * c1d1[:, None])  # (G, k)
        t2 = self.gsum((A * c1d2[:, None])[:, :, None] * zr[:, None, :])  # (G, q, k)
        rhs[:, :, p:] = t2 * u[:, ct][:, None, :]
        rhs[:, ct, p + np.arange(k)] += t1
        D = np.linalg.solve(Hobs, rhs)  # (G, q, npar)
        # total derivative of eta_hat
        deta = np.einsum("nq,nqp->np", A, D[gidx])
        deta[:, :p] += X
        deta[:, p:] += zr * u[gidx][:, ct]
        # derivative of the Fisher curvature H = I + sum c1 w a a'
        c1dw = self.c1 * d["dw"]
        AA = A[:, :, None] * A[:, None, :]
        dH = self.gsum((c1dw[:, None] * deta)[:, None, None, :] * AA[:, :, :, None])
        v = self.gsum((Wf[:, None] * zr)[:, None, :] * A[:, :, None])  # (G, q, k)
        for j in range(k):
            cj = ct[j]
            dH[:, cj, :, p + j] += v[:, :, j]
            dH[:, :, cj, p + j] += v[:, :, j]
        Smat = np.einsum("gba,gbcp,gcd->gadp", B, dH, B)
        Smat = np.triu(np.moveaxis(Smat, 3, 1))  # (G, P, q, q), upper
        idx = np.arange(q)
        Smat[:, :, idx, idx] *= 0.5
        dB = -np.einsum("gab,gpbc->gpac", B, Smat)
        return part + np.einsum("ga,gap->gp", dL_du, D) + np.einsum("gab,gpab->gp", dL_dB, dB)
