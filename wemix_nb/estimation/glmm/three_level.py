"""The 3-level weighted GLMM likelihood by nested AGHQ, with its exact gradient.

Modes
    Each level-3 group gives a block-arrow Newton system in its own mode and those of its
    level-2 groups, solved by eliminating the level-2 blocks in batch.
Quadrature
    The level-2 nodes are adapted conditionally on each level-3 node: ``u = u_hat + B22 (z2 -
    R23 dv)``, with ``R22' R22 = K22`` the level-2 curvature and ``R23 = R22^{-T} K23`` the
    coupling, so the inner integrals follow the level-2 modes as ``v`` moves.
Gradient
    Exact derivative of the nested AGHQ approximation, nodes moving with the parameters (see
    :mod:`~wemix_nb.estimation.glmm.three_level_gradient`). The quadrature pass reduces the
    ``(rows, level-3 nodes, level-2 nodes)`` arrays to a few numbers per row and per group, so
    the gradient costs little more than the value.
Weights
    The nested formula, with ``c1 = w1 / w2``, ``c2 = w2 / w3`` and the true nesting of level-2
    groups in level-3 groups (WeMix uses ``w1 w3 / w2`` as the level-1 conditional weight and
    attaches level-2 groups to level-3 groups by position; both are bugs).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from wemix_nb.errors import DataError
from wemix_nb.estimation.families import Family
from wemix_nb.estimation.glmm.protocol import GlmmLevelModes
from wemix_nb.estimation.glmm.quadrature import (
    _chol_upper,
    _chunks,
    _gh_rule,
    _inv_upper,
    _quiet,
    quadrature_threads,
)
from wemix_nb.estimation.glmm.three_level_gradient import gradient_by_group
from wemix_nb.estimation.glmm.three_level_quadrature import NestedGrid, NestedPass, chunk_indices
from wemix_nb.model.covariance import CovarianceStructure
from wemix_nb.model.frame import ModelFrame

_CELLS = 1 << 17  # (rows x nodes) cells per chunk of whole level-3 groups


def _summing_matrix(starts: np.ndarray, n: int) -> scipy.sparse.csr_array:
    """Sparse ``(groups, n)`` 0/1 matrix summing consecutive items into groups starting at
    ``starts`` (faster than ``np.add.reduceat`` on arrays with trailing axes)."""
    return scipy.sparse.csr_array((np.ones(n), np.arange(n), np.r_[starts, n]), shape=(len(starts), n))


def _group_sum(S: scipy.sparse.csr_array, a: np.ndarray) -> np.ndarray:
    return (S @ a.reshape(len(a), -1)).reshape((S.shape[0],) + a.shape[1:])


def _solve(K: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Batched ``K^{-1} r`` (a division for 1 x 1 blocks)."""
    if K.shape[-1] == 1:
        return r / K
    return np.linalg.solve(K, r)


def _rows_dot(A: np.ndarray, u: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``A_i . u_{index_i}`` per row."""
    if A.shape[1] == 1:
        return A[:, 0] * u[index, 0]
    return np.einsum("nq,nq->n", A, u[index])


class _ThreeLevel:
    """Nested AGHQ likelihood of a 3-level weighted GLMM and its exact gradient.

    Implements :class:`~wemix_nb.estimation.glmm.protocol.QuadratureModel`; rows are sorted by
    (level-3, level-2) group, level-2 groups by their level-3 group.

    Parameters
    ----------
    frame
        A 3-level model frame.
    family
        The response family.
    nquad
        Quadrature points per random-effect dimension at each level (1 = Laplace).
    laplace_rounding
        With a binomial family and ``nquad = 1``: WeMix's rounded level-1 weights.

    Attributes
    ----------
    threads
        Threads of the pass over the nodes (:func:`quadrature_threads`; chunks of whole level-3
        groups are independent, so the result does not depend on it).
    """

    analytic_gradient = True

    def __init__(self, frame: ModelFrame, family: Family, nquad: int, laplace_rounding: bool):
        lev2, lev3 = frame.levels
        self.family = family
        self.structure = CovarianceStructure(frame.levels)
        parent = lev2.parent_index
        # order level-2 groups by their level-3 group, rows by (level-3, level-2) group
        g2_order = np.lexsort((np.arange(lev2.n_groups), parent))
        rank2 = np.empty_like(g2_order)
        rank2[g2_order] = np.arange(lev2.n_groups)
        row_key = rank2[lev2.group_index]
        order = np.argsort(row_key, kind="stable")
        self.order = order
        self.g2_order = g2_order
        self.g2 = row_key[order]  # sorted level-2 index per row
        self.parent = parent[g2_order]  # level-3 index of each sorted level-2 group
        self.G2, self.G3 = lev2.n_groups, lev3.n_groups
        self.starts2 = np.flatnonzero(np.r_[True, self.g2[1:] != self.g2[:-1]])
        self.starts3 = np.flatnonzero(np.r_[True, self.parent[1:] != self.parent[:-1]])
        if len(self.starts2) != self.G2 or len(self.starts3) != self.G3:
            raise DataError("Some groups have no rows.")
        self.h_row = self.parent[self.g2]
        self.row_starts3 = self.starts2[self.starts3]
        n = len(order)
        self._rows_to2 = _summing_matrix(self.starts2, n)
        self._groups_to3 = _summing_matrix(self.starts3, self.G2)
        self._rows_to3 = _summing_matrix(self.row_starts3, n)
        self.y = frame.y[order]
        self.X = frame.X[order]
        self.Z2 = lev2.Z[order]
        self.Z3 = lev3.Z[order]
        self.q2, self.q3 = lev2.q, lev3.q
        self.p = self.X.shape[1]
        self.k = self.structure.size
        self.offset = np.zeros(len(order)) if frame.offset is None else frame.offset[order]
        self.c1 = frame.cond_weight1[order]
        self.c2 = np.asarray(lev2.cond_weight, dtype=float)[g2_order]
        self.w2 = np.asarray(lev2.weight, dtype=float)[g2_order]
        self.w3 = np.asarray(lev3.cond_weight, dtype=float)
        self.nquad = nquad
        self.rounding = bool(laplace_rounding and nquad == 1 and family.name == "binomial")
        if self.rounding:
            self.c_node = np.round(frame.weight1[order]) / self.w2[self.g2]
        else:
            self.c_node = self.c1
        trials = None if frame.trials is None else frame.trials[order]
        # the constant log f(y | mu = y) of the rows, kept out of the objective (see families)
        const2 = self.sum2(self.c_node * family.log_constant(self.y, trials))
        self.constant_by_group = self.w3 * self.sum3(self.c2 * const2)
        if trials is not None:  # a row of n trials: n times the per-trial log-density
            self.c1, self.c_node = self.c1 * trials, self.c_node * trials
        # canonical links sum y eta - b(eta) at the nodes; the part free of eta that makes it the
        # log-density relative to the saturated model goes in once per group (see families)
        if family.has_cumulant():
            self.const2 = self.sum2(self.c_node * family.cumulant_offset(self.y))
        else:
            self.const2 = np.zeros(self.G2)
        self.grid = NestedGrid(_gh_rule(nquad, self.q2), _gh_rule(nquad, self.q3))
        self.chunk_index = chunk_indices(self, _chunks(self.row_starts3, len(self.y), self.grid.K, _CELLS))
        self.u = np.zeros((self.G2, self.q2))
        self.v = np.zeros((self.G3, self.q3))
        self.threads = quadrature_threads()
        self.n_evaluations = 0

    def save_modes(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the warm-start modes ``(u, v)`` of the level-2 and level-3 groups."""
        return self.u.copy(), self.v.copy()

    def restore_modes(self, saved: tuple[np.ndarray, np.ndarray]) -> None:
        """Set the warm-start modes ``(u, v)``."""
        self.u, self.v = saved

    def sum2(self, a: np.ndarray) -> np.ndarray:
        """Row arrays -> sums per level-2 group."""
        return _group_sum(self._rows_to2, a)

    def sum3(self, a: np.ndarray) -> np.ndarray:
        """Level-2-group arrays -> sums per level-3 group."""
        return _group_sum(self._groups_to3, a)

    def rows3(self, a: np.ndarray) -> np.ndarray:
        """Row arrays -> sums per level-3 group."""
        return _group_sum(self._rows_to3, a)

    def _objective(self, off, A2, A3, u, v):
        """The joint mode objective per level-3 group, and ``eta`` with its family derivatives."""
        eta = off + _rows_dot(A2, u, self.g2) + _rows_dot(A3, v, self.h_row)
        d = self.family.eta_derivatives(self.y, eta)
        inner = self.sum2(self.c1 * d["ll"]) - 0.5 * np.einsum("gq,gq->g", u, u)
        obj = self.sum3(self.c2 * inner) - 0.5 * np.einsum("hq,hq->h", v, v)
        return obj, eta, d

    def blocks(self, A2, A3, wrow):
        """Blocks of the curvature with row weights ``wrow``: ``K22`` (with the prior's ``I``)
        and ``K23``, ``K33`` per level-2 group (``K33`` still to be summed to level 3)."""
        K22 = np.eye(self.q2) + self.sum2(wrow[:, None, None] * A2[:, :, None] * A2[:, None, :])
        K23 = self.sum2(wrow[:, None, None] * A2[:, :, None] * A3[:, None, :])
        K33g = self.sum2(wrow[:, None, None] * A3[:, :, None] * A3[:, None, :])
        return K22, K23, K33g

    def eliminate(self, K22, K23, K33g, r2, r3):
        """Solve the block-arrow systems ``[K22 K23; K23' I + sum c2 K33] (du, dv) = (r2, r3)``
        of all level-3 groups (right-hand sides ``(G2, q2, m)`` and ``(G3, q3, m)``)."""
        K22i_K23 = _solve(K22, K23)
        K22i_r2 = _solve(K22, r2)
        K32 = np.swapaxes(K23, 1, 2)
        S = np.eye(self.q3) + self.sum3(self.c2[:, None, None] * (K33g - K32 @ K22i_K23))
        dv = _solve(S, r3 - self.sum3(self.c2[:, None, None] * (K32 @ K22i_r2)))
        du = K22i_r2 - K22i_K23 @ dv[self.parent]
        return du, dv

    def _newton_step(self, A2, A3, d, u, v):
        """The Newton step ``(du, dv)`` of the mode equations; towards 0 in level-3 groups
        where it overflows (far from the mode, e.g. a Poisson mean)."""
        c1d1 = self.c1 * d["d1"]
        r2 = self.sum2(A2 * c1d1[:, None]) - u
        r3 = self.sum3(self.c2[:, None] * self.sum2(A3 * c1d1[:, None])) - v
        du, dv = self.eliminate(*self.blocks(A2, A3, -self.c1 * d["d2"]), r2[:, :, None], r3[:, :, None])
        du, dv = du[:, :, 0], dv[:, :, 0]
        finite_u = np.logical_and.reduceat(np.all(np.isfinite(du), axis=1), self.starts3)
        bad = ~(np.all(np.isfinite(dv), axis=1) & finite_u)
        if bad.any():
            dv[bad] = -v[bad]
            bad2 = bad[self.parent]
            du[bad2] = -u[bad2]
        return du, dv

    def _warm_start(self, off: np.ndarray, A2: np.ndarray, A3: np.ndarray):
        """The previous modes, except in the level-3 groups where ``u = v = 0`` is better: a warm
        start from a wild trial point (a variance near 0 leaves modes of 1e4) would otherwise send
        the Newton iteration to overflow."""
        u, v = self.u.copy(), self.v.copy()
        obj, eta, d = self._objective(off, A2, A3, u, v)
        if np.any(u) or np.any(v):
            obj0 = self._objective(off, A2, A3, np.zeros_like(u), np.zeros_like(v))[0]
            worse = ~(obj >= obj0)
            if worse.any():
                v[worse] = 0.0
                u[worse[self.parent]] = 0.0
                obj, eta, d = self._objective(off, A2, A3, u, v)
        return u, v, obj, eta, d

    def modes(self, beta: np.ndarray, lams: list[np.ndarray]):
        """Damped Newton on the block-arrow systems of all level-3 groups at once; returns
        ``u, v, X beta, Z2 Lambda2, Z3 Lambda3, eta, derivatives``."""
        lam2, lam3 = lams
        off = self.X @ beta + self.offset
        A2, A3 = self.Z2 @ lam2, self.Z3 @ lam3
        u, v, obj, eta, d = self._warm_start(off, A2, A3)
        for _ in range(200):
            du, dv = self._newton_step(A2, A3, d, u, v)
            size = max(np.max(np.abs(du), initial=0.0), np.max(np.abs(dv), initial=0.0))
            if size < 1e-8 * (1.0 + max(np.max(np.abs(u), initial=0.0), np.max(np.abs(v), initial=0.0))):
                # Newton converges quadratically: after this step the error is ~size^2
                u, v = u + du, v + dv
                obj, eta, d = self._objective(off, A2, A3, u, v)
                break
            t = np.ones(self.G3)
            for _half in range(60):
                cu = u + t[self.parent][:, None] * du
                cv = v + t[:, None] * dv
                obj_c, eta_c, d_c = self._objective(off, A2, A3, cu, cv)
                worse = ~(obj_c >= obj - 1e-12 * (1.0 + np.abs(obj)))
                if not worse.any():
                    break
                t[worse] *= 0.5
            u, v, obj, eta, d = cu, cv, obj_c, eta_c, d_c
        self.u, self.v = u, v
        return u, v, off, A2, A3, eta, d

    @_quiet
    def evaluate(self, beta: np.ndarray, theta: np.ndarray, grad: bool = False) -> dict:
        """Per-level-3-group log-likelihood contributions (and, with ``grad``, their exact
        gradients in ``(beta, theta)``)."""
        self.n_evaluations += 1
        lams = self.structure.factors(theta)
        u, v, off, A2, A3, eta, d = self.modes(beta, lams)
        K22, K23, K33g = self.blocks(A2, A3, self.c1 * d["w"])
        try:
            R22 = _chol_upper(K22)
            B22 = _inv_upper(R22)
            R23 = np.swapaxes(B22, 1, 2) @ K23  # R22^{-T} K23
            S = np.eye(self.q3) + self.sum3(self.c2[:, None, None] * (K33g - np.swapaxes(R23, 1, 2) @ R23))
            R33 = _chol_upper(S)
        except np.linalg.LinAlgError:
            return {"value": -np.inf, "by_group": np.full(self.G3, -np.inf)}
        B33 = _inv_upper(R33)
        if not all(np.all(np.isfinite(R)) for R in (R22, R33)):
            # a curvature beyond floating-point range (a wild trial point): to be avoided
            return {"value": -np.inf, "by_group": np.full(self.G3, -np.inf)}
        logdet22 = np.sum(np.log(np.diagonal(R22, axis1=1, axis2=2)), axis=1)
        logdet33 = np.sum(np.log(np.diagonal(R33, axis1=1, axis2=2)), axis=1)
        quad = NestedPass(self, u, v, A2, A3, eta, B22, R23, B33, logdet22, grad).run(self.threads)
        by_group = self.w3 * (quad.lse3 - logdet33)
        out = {
            "value": float(by_group.sum()),
            "by_group": by_group,
            "u": u,
            "v": v,
            "eta": eta,
            "K22": K22,
            "R23": R23,
            "B22": B22,
            "S": S,
        }
        if grad and np.isfinite(out["value"]):
            state = {"u": u, "v": v, "A2": A2, "A3": A3, "d": d, "K23": K23, "R22": R22}
            state.update(B22=B22, R23=R23, R33=R33, B33=B33, quad=quad)
            out["grad_by_group"] = self.w3[:, None] * gradient_by_group(self, state)
            out["grad"] = out["grad_by_group"].sum(axis=0)
        return out

    # -- post-estimation ----------------------------------------------------------------------
    def level_modes(self, frame: ModelFrame, theta: np.ndarray, ev: dict) -> list[GlmmLevelModes]:
        """Modes of both levels; the level-2 SDs include the uncertainty of the level-3 mode."""
        lev2, lev3 = frame.levels
        lam2, lam3 = self.structure.factors(theta)
        Sinv = np.linalg.inv(ev["S"])
        K22inv = np.linalg.inv(ev["K22"])
        # u_g = u | v: cov = K22^{-1} + (B22 R23) S^{-1} (B22 R23)'
        T = np.einsum("gab,gbc->gac", ev["B22"], ev["R23"])
        cov_u = K22inv + np.einsum("gab,gbc,gdc->gad", T, Sinv[self.parent], T)
        inv_order = np.empty_like(self.g2_order)
        inv_order[self.g2_order] = np.arange(self.G2)
        out = []
        for lev, u, cov, lam in (
            (lev2, ev["u"][inv_order], cov_u[inv_order], lam2),
            (lev3, ev["v"], Sinv, lam3),
        ):
            u_sd = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
            bcov = np.einsum("ab,gbc,dc->gad", lam, cov, lam)
            b_sd = np.sqrt(np.maximum(np.diagonal(bcov, axis1=1, axis2=2), 0.0))
            out.append(GlmmLevelModes(lev.name, lev.labels, list(lev.terms), u.copy(), u @ lam.T, u_sd, b_sd))
        return out

    def eta_rows(self, ev: dict) -> np.ndarray:
        """The linear predictor at the modes, back in the frame's row order."""
        eta = np.empty_like(ev["eta"])
        eta[self.order] = ev["eta"]
        return eta
