"""One two-level linear model under many weightings at once: all replicates in one pass.

In a two-level model ``Lambda~ = diag(Lambda, I)``, so of the per-group forms
``A_g = Lambda~' T_g Lambda~`` only the blocks touching the random effects depend on theta:
``A_11 = Lambda' T_11 Lambda`` (``q x q``) and ``A_12 = Lambda' T_12`` (``q x (p+1)``), while
``A_22 = T_22``. A replicate changes the level-2 (top) weights ``w_g`` and, for explicit per-level
replicate columns, the cross-products ``T_g``. :class:`StackedTwoLevel` evaluates the profiled
deviance and its exact gradient (the same quantities as
:meth:`~wemix_nb.estimation.linear.LinearProblem.deviance`, in the same way) for a stack of
replicates, each at its own theta, with arrays of shape ``(replicates, groups, q, .)``: one
pass of numpy operations for all replicates instead of one per replicate, where the per-call
overhead dominates for models of a few hundred groups.

:func:`refit_stacked` runs quasi-Newton steps (BFGS on the inverse, one stacked evaluation per
step) for all replicates from the full-sample estimate and curvature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wemix_nb.estimation.linear.batched import _spd_inverse_logdet
from wemix_nb.estimation.linear.problem import LOG_2PI, LinearProblem

# cells (replicates x groups x m) per stacked evaluation: bounds the temporaries
_BLOCK_CELLS = 1 << 21


@dataclass
class _Stack:
    """The deviance, its gradient and the GLS pieces of a stack of replicates."""

    dev: np.ndarray  # (B,)
    grad: np.ndarray | None  # (B, k)
    delta: np.ndarray  # (B, p): beta - beta0
    r2: np.ndarray  # (B,) weighted residual sum of squares
    D: np.ndarray  # (B,) half the weighted log-determinants


class StackedTwoLevel:
    """Profiled deviance of one two-level model under ``R`` weightings.

    Parameters
    ----------
    problem
        The full-sample problem (a two-level model): its structure, ``beta0`` and, unless ``T``
        is given, its cross-products.
    top_weights
        ``(G, R)`` level-2 (top) weights of each replicate.
    n_weighted
        ``(R,)`` sums of the level-1 unconditional weights.
    T
        ``(R, G, m, m)`` per-replicate cross-products (replicates that change the level-1
        conditional weights), or ``None``: the problem's, shared by all replicates.
    """

    def __init__(
        self,
        problem: LinearProblem,
        top_weights: np.ndarray,
        n_weighted: np.ndarray,
        T: np.ndarray | None = None,
    ):
        if len(problem.frame.levels) != 1:
            raise ValueError("StackedTwoLevel needs a two-level model.")
        self.structure = problem.structure
        self.q, self.p = problem.Q, problem.p
        self.shared = T is None
        T = problem.T[None] if T is None else T
        q = self.q
        self.T11, self.T12, self.T22 = T[:, :, :q, :q], T[:, :, :q, q:], T[:, :, q:, q:]
        self.W = np.ascontiguousarray(top_weights.T)  # (R, G)
        self.Nw = np.asarray(n_weighted, dtype=float)
        self.beta0 = problem.beta0
        self.G = top_weights.shape[0]
        # weighted sums of the theta-free block, once per replicate
        G, r = self.G, T.shape[-1] - q
        if self.shared:
            self.T22w = (self.W @ self.T22[0].reshape(G, r * r)).reshape(-1, r, r)
        else:
            self.T22w = np.einsum("bg,bgij->bij", self.W, self.T22)
        self.rows, self.cols = self.structure.rows, self.structure.cols

    @property
    def n_replicates(self) -> int:
        return self.W.shape[0]

    def _blocks(self, idx: np.ndarray):
        """``T`` blocks of the replicates ``idx`` (shared blocks broadcast)."""
        if self.shared:
            return self.T11[0], self.T12[0]
        return self.T11[idx], self.T12[idx]

    def evaluate(self, thetas: np.ndarray, idx: np.ndarray, gradient: bool = True) -> _Stack:
        """Deviance (and gradient) of replicates ``idx`` at ``thetas`` ``(B, k)``."""
        B, q, p = len(idx), self.q, self.p
        lam = np.zeros((B, q, q))
        lam[:, self.rows, self.cols] = thetas
        T11, T12 = self._blocks(idx)
        sub = "gjk" if self.shared else "bgjk"
        LT11 = np.einsum(f"bji,{sub}->bgik", lam, T11)  # Lambda' T_11
        A12 = np.einsum(f"bji,{sub}->bgik", lam, T12)  # Lambda' T_12
        A11 = np.einsum("bgij,bjk->bgik", LT11, lam)
        M = A11.reshape(-1, q, q) + np.eye(q)
        M_inv, logdet = _spd_inverse_logdet(M)
        M_inv = M_inv.reshape(B, self.G, q, q)
        K = np.einsum("bgij,bgjk->bgik", M_inv, A12)  # (B, G, q, r)
        w = self.W[idx]
        D = 0.5 * np.einsum("bg,bg->b", w, logdet.reshape(B, self.G))
        r = A12.shape[-1]
        wA12 = (w[:, :, None, None] * A12).reshape(B, -1, r)
        total = self.T22w[idx] - np.swapaxes(wA12, 1, 2) @ K.reshape(B, -1, r)
        delta = np.linalg.solve(total[:, :p, :p], -total[:, :p, p, None])[..., 0]
        r2 = total[:, p, p] + np.einsum("bi,bi->b", total[:, :p, p], delta)
        Nw = self.Nw[idx]
        dev = 2.0 * D + Nw * (LOG_2PI + np.log(r2 / Nw) + 1.0)
        grad = None
        if gradient:
            grad = self._gradient(T12, LT11, M_inv, K, w, delta, r2, Nw)
        return _Stack(dev, grad, delta, r2, D)

    def _gradient(self, T12, LT11, M_inv, K, w, delta, r2, Nw) -> np.ndarray:
        """Exact gradient in theta (as :meth:`LinearProblem.deviance`): the log-determinants'
        derivatives and the rank-2 tangents of the forms, contracted at ``ext = (delta, 1)``."""
        rows, cols = self.rows, self.cols
        # d logdet_g / d theta_j = 2 (M^-1 Lambda' T_11)[c_j, r_j]
        MLT = np.einsum("bgij,bgjk->bgik", M_inv, LT11)
        dD = np.einsum("bgj,bg->bj", MLT[:, :, cols, rows], w)
        ext = np.concatenate([delta, np.ones((len(delta), 1))], axis=1)  # (B, r)
        u = -np.einsum("bgqi,bi->bgq", K, ext)  # the random effects at ext
        # column s < q of Lambda~' T contracted with y = (u, ext): u' Lambda' T_1s + ext' T_2s,
        # and T_2s is row s of T_12
        sub = "gsi" if self.shared else "bgsi"
        yLT = np.einsum("bgi,bgis->bgs", u, LT11) + np.einsum(f"bi,{sub}->bgs", ext, T12)
        tangent = 2.0 * u[:, :, cols] * yLT[:, :, rows]  # (B, G, k)
        d_r2 = np.einsum("bgj,bg->bj", tangent, w)
        return 2.0 * dD + Nw[:, None] * d_r2 / r2[:, None]

    def estimates(self, thetas: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """beta ``(B, p)``, sigma^2 ``(B,)`` and the log-likelihood ``(B,)`` at ``thetas``."""
        stack = self.evaluate(thetas, idx, gradient=False)
        Nw = self.Nw[idx]
        sigma2 = stack.r2 / Nw
        lnl = -stack.D - 0.5 * Nw * (LOG_2PI + np.log(sigma2) + 1.0)
        return self.beta0 + stack.delta, sigma2, lnl


@dataclass(frozen=True)
class StackedRefit:
    """The estimates of all replicates (``converged[r]`` False: use the general optimiser).

    Attributes
    ----------
    theta
        ``(R, k)`` canonical theta.
    beta
        ``(R, p)``.
    sigma2, lnl
        ``(R,)``.
    converged
        ``(R,)`` whether the quasi-Newton steps met the criterion (relative step below 1e-10).
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma2: np.ndarray
    lnl: np.ndarray
    converged: np.ndarray


def _bfgs_update(H_inv: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BFGS updates of a stack of inverse Hessians ``(B, k, k)`` (skipped where ``s'y <= 0``)."""
    sy = np.einsum("bi,bi->b", s, y)
    ok = sy > 1e-14 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1)
    rho = np.where(ok, 1.0 / np.where(ok, sy, 1.0), 0.0)
    k = s.shape[1]
    V = np.eye(k) - rho[:, None, None] * s[:, :, None] * y[:, None, :]
    updated = V @ H_inv @ np.swapaxes(V, 1, 2) + rho[:, None, None] * s[:, :, None] * s[:, None, :]
    return np.where(ok[:, None, None], updated, H_inv)


def _line_search(stack: StackedTwoLevel, x, dev, step, idx):
    """Full steps, halved for the replicates whose deviance would rise (at most 20 times)."""
    t = np.ones(len(idx))
    candidate = x + step
    new = stack.evaluate(candidate, idx)
    for _ in range(20):
        worse = ~(np.isfinite(new.dev) & (new.dev <= dev + 1e-12 * np.abs(dev)))
        if not worse.any():
            return candidate, new, np.ones(len(idx), dtype=bool)
        t[worse] *= 0.5
        candidate[worse] = x[worse] + t[worse, None] * step[worse]
        again = stack.evaluate(candidate[worse], idx[worse])
        new.dev[worse], new.grad[worse] = again.dev, again.grad
    worse = ~(np.isfinite(new.dev) & (new.dev <= dev + 1e-12 * np.abs(dev)))
    return candidate, new, ~worse


def _blocks(R: int, G: int, m: int) -> list[np.ndarray]:
    size = max(1, _BLOCK_CELLS // max(G * m * m, 1))
    return [np.arange(start, min(start + size, R)) for start in range(0, R, size)]


def refit_stacked(
    stack: StackedTwoLevel, start: np.ndarray, hessian: np.ndarray, max_steps: int = 40
) -> StackedRefit:
    """Quasi-Newton steps for every replicate of ``stack`` from ``start`` (the full-sample theta)
    with ``hessian`` (the full-sample deviance's) as the first curvature; one stacked evaluation
    per step. A replicate converges when its relative step is below 1e-10; one whose step takes a
    variance to 0 or that does not converge is reported as not converged (for the general
    optimiser)."""
    R = stack.n_replicates
    m = stack.q + stack.p + 1
    theta = np.tile(np.asarray(start, dtype=float), (R, 1))
    converged = np.zeros(R, dtype=bool)
    try:
        H0 = np.linalg.inv(hessian)
        usable = bool(np.all(np.linalg.eigvalsh(0.5 * (H0 + H0.T)) > 0))
    except np.linalg.LinAlgError:
        usable = False
    if not usable:  # e.g. a variance estimated at 0: the general optimiser, replicate by replicate
        return StackedRefit(theta, np.zeros((R, stack.p)), np.zeros(R), np.zeros(R), converged)
    diagonal = stack.structure.diagonal
    for block in _blocks(R, stack.G, m):
        x = theta[block]
        first = stack.evaluate(x, block)
        dev, grad = first.dev, first.grad
        H_inv = np.tile(H0, (len(block), 1, 1))
        active = np.arange(len(block))
        for _ in range(max_steps):
            idx = block[active]
            step = -np.einsum("bij,bj->bi", H_inv[active], grad[active])
            candidate, new, accepted = _line_search(stack, x[active], dev[active], step, idx)
            failed = ~accepted | np.any(candidate[:, diagonal] <= 0, axis=1)
            s, y = candidate - x[active], new.grad - grad[active]
            x[active], dev[active], grad[active] = candidate, new.dev, new.grad
            small = np.max(np.abs(s), axis=1) < 1e-10 * (1.0 + np.max(np.abs(candidate), axis=1))
            converged[block[active[small & ~failed]]] = True
            H_inv[active] = _bfgs_update(H_inv[active], s, y)
            active = active[~small & ~failed]
            if not active.size:
                break
        theta[block] = x
    theta = np.array([stack.structure.canonical(t) for t in theta])
    beta = np.empty((R, stack.p))
    sigma2, lnl = np.empty(R), np.empty(R)
    for block in _blocks(R, stack.G, m):
        beta[block], sigma2[block], lnl[block] = stack.estimates(theta[block], block)
    return StackedRefit(theta, beta, sigma2, lnl, converged)
