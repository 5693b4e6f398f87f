"""The exact gradient of the 3-level nested AGHQ likelihood, nodes moving with the parameters.

With ``zeta_km = (1, z2_m, z3_k)`` the nodes are affine in ``zeta``: ``U_gkm = Cu_g zeta_km`` with
``Cu = [u_hat, B22, -T]``, ``T = B22 R23 B33``, and ``V_hk = Cv_h (1, z3_k)`` with
``Cv = [v_hat, B33]``. The derivative of ``l_h / w3_h`` in a parameter ``phi`` is

* the partial derivative at fixed nodes (``eta`` depends on ``beta`` and on the factors), plus
* ``<dl/dCu, dCu/dphi> + <dl/dCv, dCv/dphi>`` plus the derivatives of the log-determinants,
  written as adjoints of ``u_hat``, ``v_hat``, ``B22``, ``R23`` and ``B33``;
* ``d u_hat``, ``d v_hat`` by the implicit function theorem on the block-arrow mode equations;
  ``dB = -B Phi(B' dK B)`` for the inverse of a Cholesky factor of ``K`` (``Phi``: the upper
  triangle with half the diagonal), with ``dK22``, ``dK23``, ``dK33`` from the Fisher weights'
  derivative along the total derivative of ``eta`` at the modes.

Everything is batched over groups, with the parameters as a trailing (or second) axis.
"""

from __future__ import annotations

import numpy as np


def _phi(M: np.ndarray) -> np.ndarray:
    """Upper triangle of the last two axes with the diagonal halved."""
    out = np.triu(M)
    idx = np.arange(M.shape[-1])
    out[..., idx, idx] *= 0.5
    return out


def _t(M: np.ndarray) -> np.ndarray:
    return np.swapaxes(M, -1, -2)


def _rows_apply(B: np.ndarray, s: np.ndarray, index: np.ndarray, transpose: bool = False) -> np.ndarray:
    """Per row ``B_{index_i} s_i`` (or ``B_{index_i}' s_i``) for ``B (G, a, b)``, ``s (n, b)``."""
    if transpose:
        if B.shape[1] == 1:  # gather the contiguous (G, b) rows, not a strided view's
            return s * np.take(np.ascontiguousarray(B[:, 0, :]), index, axis=0)
        return np.einsum("nab,na->nb", B[index], s)
    if B.shape[1] == 1 and B.shape[2] == 1:
        return s * np.take(B.reshape(-1), index)[:, None]
    return np.einsum("nab,nb->na", B[index], s)


class _Entries:
    """The theta entries of each level: positions in theta, rows and columns in ``Lambda``."""

    def __init__(self, model):
        entries = model.structure.entries
        level = np.array([e.level for e in entries], dtype=int)
        rows = np.array([e.row for e in entries], dtype=int)
        cols = np.array([e.col for e in entries], dtype=int)
        self.j2, self.j3 = np.flatnonzero(level == 0), np.flatnonzero(level == 1)
        self.r2, self.c2 = rows[self.j2], cols[self.j2]
        self.r3, self.c3 = rows[self.j3], cols[self.j3]
        self.P2 = model.p + self.j2  # positions in (beta, theta)
        self.P3 = model.p + self.j3


def gradient_by_group(model, st: dict) -> np.ndarray:
    """``(G3, p + k)`` derivatives of ``l_h / w3_h`` in ``(beta, theta)``.

    ``model`` is the :class:`~wemix_nb.estimation.glmm.three_level._ThreeLevel`; ``st`` holds
    the modes ``u``, ``v``, ``A2 = Z2 Lambda2``, ``A3``, the family derivatives ``d`` at the
    modes, the factors ``K23``, ``R22``, ``B22``, ``R23``, ``R33``, ``B33`` and the
    quadrature pass ``quad``.
    """
    ent = _Entries(model)
    grad, adj = _partials_and_adjoints(model, st, ent)
    Du, Dv, deta = _mode_derivatives(model, st, ent)
    dB22, dR23, dB33 = _factor_derivatives(model, st, ent, deta)
    per_g = (
        np.einsum("ga,gap->gp", adj["u"], Du)
        + np.einsum("gab,gpab->gp", adj["B22"], dB22)
        + np.einsum("gab,gpab->gp", adj["R23"], dR23)
    )
    return (
        grad
        + model.sum3(per_g)
        + np.einsum("ha,hap->hp", adj["v"], Dv)
        + np.einsum("hab,hpab->hp", adj["B33"], dB33)
    )


def _partials_and_adjoints(model, st: dict, ent: _Entries) -> tuple[np.ndarray, dict]:
    """The derivative at fixed nodes ``(G3, P)`` and the adjoints of the node parameters."""
    quad, grid = st["quad"], model.grid
    q2, q3, p = model.q2, model.q3, model.p
    u, v, A2, A3 = st["u"], st["v"], st["A2"], st["A3"]
    B22, R23, B33 = st["B22"], st["R23"], st["B33"]
    g, h = model.g2, model.h_row
    s = quad.s_rows
    s0, s2, s3 = s[:, 0], s[:, 1 : 1 + q2], s[:, 1 + q2 :]
    B33p = B33[model.parent]
    T = B22 @ R23 @ B33p
    # node-weighted U and V per row: Cu s_i and Cv (s0, s3)_i
    mU = u[g] * s0[:, None] + _rows_apply(B22, s2, g) - _rows_apply(T, s3, g)
    mV = v[h] * s0[:, None] + _rows_apply(B33, s3, h)
    rows = np.empty((len(s0), p + model.k))
    rows[:, :p] = model.X * s0[:, None]
    rows[:, ent.P2] = model.Z2[:, ent.r2] * mU[:, ent.c2]
    rows[:, ent.P3] = model.Z3[:, ent.r3] * mV[:, ent.c3]
    grad = model.rows3(rows)

    Cu = np.concatenate([u[:, :, None], B22, -T], axis=2)  # (G2, q2, n_zeta)
    GCu = model.sum2(A2[:, :, None] * s[:, None, :]) - Cu @ quad.omega
    s_v = np.concatenate([s0[:, None], s3], axis=1)
    Cv = np.concatenate([v[:, :, None], B33], axis=2)  # (G3, q3, 1 + q3)
    omega3 = (quad.P3 @ grid.zeta3_outer).reshape(model.G3, 1 + q3, 1 + q3)
    GCv = model.rows3(A3[:, :, None] * s_v[:, None, :]) - Cv @ omega3
    G3b = GCu[:, :, 1 + q2 :]
    adj = {
        "u": GCu[:, :, 0],
        "v": GCv[:, :, 0],
        "B22": GCu[:, :, 1 : 1 + q2] + model.c2[:, None, None] * _t(st["R22"]) - G3b @ _t(R23 @ B33p),
        "R23": -_t(B22) @ G3b @ _t(B33p),
        "B33": GCv[:, :, 1:] + _t(st["R33"]) - model.sum3(_t(B22 @ R23) @ G3b),
    }
    return grad, adj


def _mode_derivatives(model, st: dict, ent: _Entries):
    """``d u_hat / d phi`` ``(G2, q2, P)``, ``d v_hat / d phi`` ``(G3, q3, P)`` and the total
    derivative of ``eta`` at the modes ``(rows, P)``.

    The mode equations ``sum_i c1 d1 a2_i - u_g = 0``, ``sum_g c2 sum_i c1 d1 a3_i - v_h = 0``
    differentiated: the block-arrow system of the observed curvature, with right-hand sides
    from the explicit dependence of ``eta`` and of ``a2``, ``a3`` on the parameters.
    """
    u, v, A2, A3, d = st["u"], st["v"], st["A2"], st["A3"], st["d"]
    g, h, p = model.g2, model.h_row, model.p
    c1d1, c1d2 = model.c1 * d["d1"], model.c1 * d["d2"]
    eps = np.empty((len(c1d1), p + model.k))  # derivative of eta at fixed modes
    eps[:, :p] = model.X
    eps[:, ent.P2] = model.Z2[:, ent.r2] * u[g][:, ent.c2]
    eps[:, ent.P3] = model.Z3[:, ent.r3] * v[h][:, ent.c3]
    rhs2 = model.sum2((A2 * c1d2[:, None])[:, :, None] * eps[:, None, :])
    rhs2[:, ent.c2, ent.P2] += model.sum2(model.Z2[:, ent.r2] * c1d1[:, None])
    rhs3 = model.sum2((A3 * c1d2[:, None])[:, :, None] * eps[:, None, :])
    rhs3[:, ent.c3, ent.P3] += model.sum2(model.Z3[:, ent.r3] * c1d1[:, None])
    rhs3 = model.sum3(model.c2[:, None, None] * rhs3)
    Du, Dv = model.eliminate(*model.blocks(A2, A3, -c1d2), rhs2, rhs3)
    deta = eps + _rows_apply(Du, A2, g, transpose=True) + _rows_apply(Dv, A3, h, transpose=True)
    return Du, Dv, deta


def _curvature_derivatives(model, st: dict, ent: _Entries, deta: np.ndarray):
    """``dK22``, ``dK23`` ``(G2, P, q, q)`` and ``dK33`` (still per level-2 group) of the
    Fisher curvature ``K = I + sum c1 w a a'``."""
    A2, A3, d = st["A2"], st["A3"], st["d"]
    Wf = model.c1 * d["w"]
    cd = ((model.c1 * d["dw"])[:, None] * deta)[:, :, None, None]  # (n, P, 1, 1)

    def block(Aa, Ab):
        return model.sum2(cd * (Aa[:, :, None] * Ab[:, None, :])[:, None])

    dK22, dK23, dK33 = block(A2, A2), block(A2, A3), block(A3, A3)
    # a2 = Lambda2' z2 and a3 = Lambda3' z3 depend on theta themselves
    Wz2 = Wf[:, None] * model.Z2[:, ent.r2]  # (n, n2)
    Wz3 = Wf[:, None] * model.Z3[:, ent.r3]
    V22 = model.sum2(Wz2[:, :, None] * A2[:, None, :])  # (G2, n2, q2)
    V23 = model.sum2(Wz2[:, :, None] * A3[:, None, :])
    W32 = model.sum2(Wz3[:, :, None] * A2[:, None, :])
    V33 = model.sum2(Wz3[:, :, None] * A3[:, None, :])
    for i, (c, P) in enumerate(zip(ent.c2, ent.P2, strict=True)):
        dK22[:, P, c, :] += V22[:, i]
        dK22[:, P, :, c] += V22[:, i]
        dK23[:, P, c, :] += V23[:, i]
    for i, (c, P) in enumerate(zip(ent.c3, ent.P3, strict=True)):
        dK23[:, P, :, c] += W32[:, i]
        dK33[:, P, c, :] += V33[:, i]
        dK33[:, P, :, c] += V33[:, i]
    return dK22, dK23, dK33


def _factor_derivatives(model, st: dict, ent: _Entries, deta: np.ndarray):
    """``dB22``, ``dR23`` ``(G2, P, ...)`` and ``dB33`` ``(G3, P, q3, q3)``."""
    dK22, dK23, dK33 = _curvature_derivatives(model, st, ent, deta)
    B22, R23, B33 = st["B22"][:, None], st["R23"][:, None], st["B33"][:, None]
    dB22 = -B22 @ _phi(_t(B22) @ dK22 @ B22)
    dR23 = _t(dB22) @ st["K23"][:, None] + _t(B22) @ dK23  # R23 = B22' K23
    dS = model.sum3(model.c2[:, None, None, None] * (dK33 - _t(dR23) @ R23 - _t(R23) @ dR23))
    dB33 = -B33 @ _phi(_t(B33) @ dS @ B33)
    return dB22, dR23, dB33
