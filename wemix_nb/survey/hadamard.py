"""Hadamard matrices for balanced repeated replication (BRR and Fay's method).

A Hadamard matrix of order ``n`` is an ``n x n`` matrix of +1/-1 with ``H H' = n I``: its rows, and
its columns, are mutually orthogonal. Three classical constructions cover the orders used in
practice:

Sylvester (1867)
    ``n = 2^m``: ``H_1 = [1]``, ``H_2n = [[H_n, H_n], [H_n, -H_n]]`` (symmetric, first row and
    column all ones).
Paley I (Paley 1933)
    ``n = q + 1`` with ``q`` a prime, ``q = 3 (mod 4)`` (orders 4, 8, 12, 20, 24, 32, 44, 48, 60,
    68, 72, 80, 84, ...). With ``chi`` the quadratic character of GF(q) (``chi(0) = 0``, ``+1`` on
    the non-zero squares, ``-1`` elsewhere), ``Q[i, j] = chi(j - i)`` is skew-symmetric because
    ``chi(-1) = -1``; the skew conference matrix ``S = [[0, 1'], [-1, Q]]`` satisfies
    ``S S' = q I`` and ``H = I + S`` is Hadamard (first row all ones).
Kronecker product
    ``n = 2^m (q + 1)``: ``H_Sylvester(2^m) (x) H_Paley(q)`` (e.g. 40 = 2 x 20, 56 = 2 x 28 is not
    covered because 27 is not prime).

Only prime ``q`` are used (no prime powers, no Paley II), so some multiples of 4 (28, 36, 52, 76,
...) are not available; :func:`smallest_order` then returns the next available order, as R's
``survey::hadamard`` does with its own list.

References
----------
Sylvester, J. J. (1867). Thoughts on inverse orthogonal matrices, simultaneous sign successions,
and tessellated pavements in two or more colours. *Philosophical Magazine*, 34, 461-475.

Paley, R. E. A. C. (1933). On orthogonal matrices. *Journal of Mathematics and Physics*, 12,
311-320.

Wolter, K. M. (2007). *Introduction to Variance Estimation* (2nd ed.), chapter 3. Springer.
"""

from __future__ import annotations

import numpy as np

from wemix_nb.errors import ArgumentError


def _is_prime(q: int) -> bool:
    if q < 2:
        return False
    divisors = np.arange(2, int(np.sqrt(q)) + 1)
    return not np.any(q % divisors == 0)


def _split(order: int) -> tuple[int, int] | None:
    """``(2^m, q)`` with ``order = 2^m (q + 1)`` by the first construction that applies.

    ``q = 0`` stands for a pure Sylvester matrix (``order = 2^m``); ``None`` if no construction of
    this module gives ``order``.
    """
    if order >= 1 and order & (order - 1) == 0:
        return order, 0
    power = 1
    while order % power == 0 and order // power >= 4:
        q = order // power - 1
        if q % 4 == 3 and _is_prime(q):
            return power, q
        power *= 2
    return None


def sylvester(order: int) -> np.ndarray:
    """Sylvester's Hadamard matrix of order ``order`` (a power of 2), as int8 +1/-1."""
    if order < 1 or order & (order - 1):
        raise ArgumentError(f"Sylvester's construction needs a power of 2; got order {order}.")
    h = np.ones((1, 1), dtype=np.int8)
    base = np.array([[1, 1], [1, -1]], dtype=np.int8)
    for _ in range(order.bit_length() - 1):
        h = np.kron(base, h)
    return h


def paley(q: int) -> np.ndarray:
    """Paley's (type I) Hadamard matrix ``I + S`` of order ``q + 1``, ``q`` prime and ``= 3 mod 4``.

    Row 0 is all ones; column 0 is ``(1, -1, ..., -1)``.
    """
    if q % 4 != 3 or not _is_prime(q):
        raise ArgumentError(f"Paley's construction needs a prime q = 3 (mod 4); got q = {q}.")
    residues = np.zeros(q, dtype=np.int8)
    residues[(np.arange(1, q) ** 2) % q] = 1
    chi = np.where(residues == 1, 1, -1).astype(np.int8)
    chi[0] = 0
    index = np.arange(q)
    Q = chi[(index[None, :] - index[:, None]) % q]
    S = np.zeros((q + 1, q + 1), dtype=np.int8)
    S[0, 1:] = 1
    S[1:, 0] = -1
    S[1:, 1:] = Q
    return S + np.eye(q + 1, dtype=np.int8)


def is_available(order: int) -> bool:
    """True if :func:`hadamard` can build a matrix of this order."""
    return _split(order) is not None


def smallest_order(n: int) -> int:
    """The smallest order ``>= n`` (and ``>= 2``) that :func:`hadamard` can build."""
    order = max(int(n), 2)
    while not is_available(order):
        order += 1
    return order


def hadamard(order: int) -> np.ndarray:
    """A Hadamard matrix of the given order (int8, +1/-1, ``H @ H.T == order * I``).

    Sylvester's construction for powers of 2, Paley's type I construction for ``q + 1`` with ``q``
    a prime ``= 3 (mod 4)``, and otherwise the Kronecker product of a Sylvester matrix with a Paley
    matrix (the smallest power of 2 that works). See the module docstring.

    Raises
    ------
    ArgumentError
        If none of these constructions gives ``order`` (e.g. 28, 36, 52, 76).
    """
    split = _split(int(order))
    if split is None:
        raise ArgumentError(
            f"No Hadamard matrix of order {order} is available (Sylvester, Paley I with a prime, and their "
            f"Kronecker products); the next available order is {smallest_order(order)}."
        )
    power, q = split
    if q == 0:
        return sylvester(power)
    return np.kron(sylvester(power), paley(q))


__all__ = ["hadamard", "is_available", "paley", "smallest_order", "sylvester"]
