"""Numerical building blocks of the adaptive Gauss-Hermite quadrature (AGHQ).

The integrals over the random effects are approximated on a product grid of ``nquad`` points per
dimension, centred at the conditional mode and scaled by the Cholesky factor of the curvature
there. Linear predictors at all nodes are formed as ``(rows, nodes)`` arrays in chunks of whole
groups; group sums use ``np.add.reduceat`` on rows sorted by group, and the log-sum-exp over
nodes is stabilised by the per-group maximum.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

_CHUNK = 1 << 14  # elements per (rows x nodes) block: temporaries of 128 KB stay below glibc's
# mmap threshold, so the allocator reuses them (larger ones cost page faults on every allocation,
# always so in Dask workers, whose MALLOC_TRIM_THRESHOLD_ fixes the threshold at 128 KB)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _gh_rule(nquad: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite grid for the standard normal: nodes ``(M, q)``, log-weights ``(M,)``.

    The log-weights include ``+||z||^2 / 2``, so that ``sum_k exp(logw_k + log g(z_k))``
    approximates ``int g(z) dz`` for the adaptive rule (the N(0, I) density is divided out).
    The first coordinate varies fastest.
    """
    if q == 0:
        return np.zeros((1, 0)), np.zeros(1)
    z, w = _gh_1d(nquad)
    grids = np.meshgrid(*([z] * q), indexing="ij")
    wgrids = np.meshgrid(*([np.log(w)] * q), indexing="ij")
    nodes = np.stack([g.ravel(order="F") for g in grids], axis=1)
    logw = sum(g.ravel(order="F") for g in wgrids) + 0.5 * (nodes**2).sum(axis=1)
    return nodes, logw


@functools.lru_cache(maxsize=32)
def _gh_1d(nquad: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density (weights sum to 1).

    numpy's ``hermegauss`` (Golub-Welsch) is accurate to ~1e-16 but its weights underflow to 0
    for 371 points or more (the smallest weight of 370 points is 3e-308), which left NaN weights;
    above 150 points scipy's ``roots_hermitenorm`` (asymptotic expansions, accurate to ~1e-14 for
    1,000 points) is used. Nodes whose weight underflows to 0 carry nothing to an adaptive rule
    (there the integrand relative to the normal density is O(1)) and are left out.
    """
    if nquad <= 150:
        z, w = np.polynomial.hermite_e.hermegauss(nquad)
    else:
        from scipy.special import roots_hermitenorm

        z, w = roots_hermitenorm(nquad)
    keep = w > 0.0
    z, w = z[keep], w[keep] / np.sqrt(2.0 * np.pi)
    z.flags.writeable = w.flags.writeable = False  # cached: shared by every fit
    return z, w


def _chunks(
    starts: np.ndarray, n_rows: int, width: int, cells: int = _CHUNK
) -> list[tuple[int, int, int, int]]:
    """Split sorted groups into blocks of whole groups with about ``cells`` (row x width) cells.

    Returns ``(first group, end group, first row, end row)`` per block.
    """
    ends = np.r_[starts[1:], n_rows]
    per = max(1, cells // max(width, 1))
    out, g0 = [], 0
    G = len(starts)
    while g0 < G:
        limit = starts[g0] + per
        g1 = int(np.searchsorted(ends, limit, side="right"))
        g1 = max(g1, g0 + 1)
        out.append((g0, min(g1, G), int(starts[g0]), int(ends[min(g1, G) - 1])))
        g0 = min(g1, G)
    return out


def quadrature_threads() -> int:
    """Threads for the pass over the nodes: ``OMP_NUM_THREADS`` if set (Dask workers and
    ``fit_many``'s worker processes set it to 1), else the CPUs this process may use, at most 4."""
    setting = os.environ.get("OMP_NUM_THREADS", "").strip()
    if setting.isdigit() and int(setting) >= 1:
        return int(setting)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log sum exp`` over the last axis, shifted by the row maximum so that nothing overflows
    (rows that are entirely ``-inf`` give ``-inf``, not NaN)."""
    m = np.max(a, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)))[..., 0]


def _chol_upper(H: np.ndarray) -> np.ndarray:
    """Batched upper Cholesky ``R`` with ``R' R = H``."""
    return np.swapaxes(np.linalg.cholesky(H), -1, -2)


def _inv_upper(R: np.ndarray) -> np.ndarray:
    """Batched inverse of upper-triangular factors (a plain reciprocal when they are 1 x 1)."""
    q = R.shape[-1]
    if q == 1:
        return 1.0 / R
    eye = np.broadcast_to(np.eye(q), R.shape)
    return np.linalg.solve(R, eye)


def _quiet(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``method`` with floating-point warnings silenced: overflow far from the optimum is
    expected (it is detected and handled through non-finite values), not worth a warning."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return method(*args, **kwargs)

    return wrapper
