"""The 3-level weighted GLMM likelihood by nested AGHQ (values; gradients by finite differences).

Modes
    Each level-3 group gives a block-arrow Newton system in its own mode and those of its
    level-2 groups, solved by eliminating the level-2 blocks in batch.
Quadrature
    The level-2 nodes are adapted conditionally on each level-3 node: ``u = u_hat + B22 (z2 -
    R23 dv)``, with ``R22' R22 = K22`` the level-2 curvature and ``R23 = R22^{-T} K23`` the
    coupling, so the inner integrals follow the level-2 modes as ``v`` moves.
Gradient
    None analytic: the optimiser uses central finite differences of the vectorised likelihood
    (modes are solved to machine precision, so these are accurate to ~1e-9).
Weights
    The nested formula, with ``c1 = w1 / w2``, ``c2 = w2 / w3`` and the true nesting of level-2
    groups in level-3 groups (WeMix uses ``w1 w3 / w2`` as the level-1 conditional weight and
    attaches level-2 groups to level-3 groups by position; both are bugs).
"""

from __future__ import annotations

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


class _ThreeLevel:
    """Nested AGHQ likelihood of a 3-level weighted GLMM (values; gradients by differences).

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
    """

    analytic_gradient = False

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
        self.nodes2, self.logw2 = _gh_rule(nquad, self.q2)
        self.nodes3, self.logw3 = _gh_rule(nquad, self.q3)
        self.M2, self.M3 = len(self.logw2), len(self.logw3)
        # chunks of whole level-3 groups
        self.chunks = _chunks(self.row_starts3, len(self.y), self.M2 * self.M3)
        self.u = np.zeros((self.G2, self.q2))
        self.v = np.zeros((self.G3, self.q3))
        self.n_evaluations = 0

    def save_modes(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the warm-start modes ``(u, v)`` of the level-2 and level-3 groups."""
        return self.u.copy(), self.v.copy()

    def restore_modes(self, saved: tuple[np.ndarray, np.ndarray]) -> None:
        """Set the warm-start modes ``(u, v)``."""
        self.u, self.v = saved

    def sum2(self, a: np.ndarray) -> np.ndarray:
        """Row arrays -> sums per level-2 group."""
        return np.add.reduceat(a, self.starts2, axis=0)

    def sum3(self, a: np.ndarray) -> np.ndarray:
        """Level-2-group arrays -> sums per level-3 group."""
        return np.add.reduceat(a, self.starts3, axis=0)

    def _objective(self, off, A2, A3, u, v):
        """The joint mode objective per level-3 group, and ``eta`` with its family derivatives."""
        eta = off + np.einsum("nq,nq->n", A2, u[self.g2]) + np.einsum("nq,nq->n", A3, v[self.h_row])
        d = self.family.eta_derivatives(self.y, eta)
        inner = self.sum2(self.c1 * d["ll"]) - 0.5 * np.einsum("gq,gq->g", u, u)
        obj = self.sum3(self.c2 * inner) - 0.5 * np.einsum("hq,hq->h", v, v)
        return obj, eta, d

    def _blocks(self, A2, A3, wrow):
        """Blocks of the curvature with row weights ``wrow``: ``K22`` (with the prior's ``I``)
        and ``K23``, ``K33`` per level-2 group (``K33`` still to be summed to level 3)."""
        K22 = np.eye(self.q2) + self.sum2(wrow[:, None, None] * A2[:, :, None] * A2[:, None, :])
        K23 = self.sum2(wrow[:, None, None] * A2[:, :, None] * A3[:, None, :])
        K33g = self.sum2(wrow[:, None, None] * A3[:, :, None] * A3[:, None, :])
        return K22, K23, K33g

    def modes(self, beta: np.ndarray, lams: list[np.ndarray]):
        """Damped Newton on the block-arrow systems of all level-3 groups at once; returns
        ``u, v, X beta, Z2 Lambda2, Z3 Lambda3, eta, derivatives``."""
        lam2, lam3 = lams
        off = self.X @ beta + self.offset
        A2, A3 = self.Z2 @ lam2, self.Z3 @ lam3
        u, v = self.u.copy(), self.v.copy()
        obj, eta, d = self._objective(off, A2, A3, u, v)
        if not np.all(np.isfinite(obj)):
            u, v = np.zeros_like(u), np.zeros_like(v)
            obj, eta, d = self._objective(off, A2, A3, u, v)
        for _ in range(200):
            r2 = self.sum2(A2 * (self.c1 * d["d1"])[:, None]) - u
            r3 = self.sum3(self.c2[:, None] * self.sum2(A3 * (self.c1 * d["d1"])[:, None])) - v
            K22, K23, K33g = self._blocks(A2, A3, -self.c1 * d["d2"])
            K22i_K23 = np.linalg.solve(K22, K23)
            K22i_r2 = np.linalg.solve(K22, r2[:, :, None])[:, :, 0]
            S = np.eye(self.q3) + self.sum3(
                self.c2[:, None, None] * (K33g - np.swapaxes(K23, 1, 2) @ K22i_K23)
            )
            rhs = r3 - self.sum3(self.c2[:, None] * np.einsum("gab,ga->gb", K23, K22i_r2))
            dv = np.linalg.solve(S, rhs[:, :, None])[:, :, 0]
            du = K22i_r2 - np.einsum("gab,gb->ga", K22i_K23, dv[self.parent])
            bad = ~(
                np.all(np.isfinite(dv), axis=1)
                & np.logical_and.reduceat(np.all(np.isfinite(du), axis=1), self.starts3)
            )
            if bad.any():  # overflow far from the mode: head back to 0 in those groups
                dv[bad] = -v[bad]
                bad2 = bad[self.parent]
                du[bad2] = -u[bad2]
            t = np.ones(self.G3)
            for _half in range(60):
                cu = u + t[self.parent][:, None] * du
                cv = v + t[:, None] * dv
                obj_c, eta_c, d_c = self._objective(off, A2, A3, cu, cv)
                worse = ~(obj_c >= obj - 1e-12 * (1.0 + np.abs(obj)))
                if not worse.any():
                    break
                t[worse] *= 0.5
            size = max(np.max(np.abs(cu - u)), np.max(np.abs(cv - v)))
            u, v, obj, eta, d = cu, cv, obj_c, eta_c, d_c
            if size < 1e-11 * (1.0 + max(np.max(np.abs(u)), np.max(np.abs(v)))):
                break
        self.u, self.v = u, v
        return u, v, off, A2, A3, eta, d

    @_quiet
    def evaluate(self, beta: np.ndarray, theta: np.ndarray, grad: bool = False) -> dict:
        """Per-level-3-group log-likelihood contributions (``grad`` is ignored: no analytic
        gradient, see :attr:`analytic_gradient`)."""
        self.n_evaluations += 1
        lams = self.structure.factors(theta)
        u, v, off, A2, A3, eta, d = self.modes(beta, lams)
        K22, K23, K33g = self._blocks(A2, A3, self.c1 * d["w"])
        try:
            R22 = _chol_upper(K22)
            B22 = _inv_upper(R22)
            R23 = np.linalg.solve(np.swapaxes(R22, 1, 2), K23)  # R22^{-T} K23
            S = np.eye(self.q3) + self.sum3(self.c2[:, None, None] * (K33g - np.swapaxes(R23, 1, 2) @ R23))
            R33 = _chol_upper(S)
        except np.linalg.LinAlgError:
            return {"value": -np.inf, "by_group": np.full(self.G3, -np.inf)}
        B33 = _inv_upper(R33)
        logdet22 = np.sum(np.log(np.diagonal(R22, axis1=1, axis2=2)), axis=1)
        logdet33 = np.sum(np.log(np.diagonal(R33, axis1=1, axis2=2)), axis=1)
        dv = np.einsum("hab,mb->hma", B33, self.nodes3)  # (G3, M3, q3)
        V = v[:, None, :] + dv
        inner = self._inner_integrals(u, A2, A3, eta, B22, R23, dv)
        outer = (
            self.sum3(self.c2[:, None] * (inner - logdet22[:, None]))
            - 0.5 * np.einsum("hmq,hmq->hm", V, V)
            + self.logw3
        )
        by_group = self.w3 * (_logsumexp_rows(outer) - logdet33)
        return {
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

    def _inner_integrals(self, u, A2, A3, eta, B22, R23, dv) -> np.ndarray:
        """``(G2, M3)`` log of the level-2 integrals at every level-3 node offset ``dv``, chunk by
        chunk of whole level-3 groups.

        The level-2 nodes follow the conditional mode: ``u_hat + B22 (z2 - R23 dv_{h(g)})``.
        """
        shift_v = -np.einsum("gab,gmb->gma", R23, dv[self.parent])  # (G2, M3, q2)
        inner = np.empty((self.G2, self.M3))
        for h0, h1, r0, r1 in self.chunks:
            ga, gb = self.starts3[h0], (self.starts3[h1] if h1 < self.G3 else self.G2)
            # level-2 node offsets B22 (z2 - R23 dv) of this chunk's groups: (g, M3, M2, q2)
            du = np.einsum(
                "gab,gkmb->gkma", B22[ga:gb], shift_v[ga:gb, :, None, :] + self.nodes2[None, None, :, :]
            )
            Unode = u[ga:gb, None, None, :] + du
            prior2 = -0.5 * np.einsum("gkmq,gkmq->gkm", Unode, Unode) + self.logw2
            gl = self.g2[r0:r1] - ga
            hl = self.h_row[r0:r1]
            e = (
                eta[r0:r1, None, None]
                + np.einsum("rq,rkmq->rkm", A2[r0:r1], du[gl])
                + np.einsum("rq,rkq->rk", A3[r0:r1], dv[hl])[:, :, None]
            )
            ll = self.family.loglik_d1(self.y[r0:r1, None, None], e)[0]
            Ssum = np.add.reduceat(self.c_node[r0:r1, None, None] * ll, self.starts2[ga:gb] - r0, axis=0)
            val = Ssum + prior2
            inner[ga:gb] = _logsumexp_rows(val)
        return inner

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
