"""Keep NumPy's temporary arrays in the heap while a likelihood is evaluated in a Dask worker.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting it also fixes glibc's
mmap threshold at 128 KB (it no longer adapts), so every temporary array above 128 KB is mapped
and unmapped again, and its pages are faulted in at every allocation: the quadrature's array work
then takes up to twice as long. :func:`heap_temporaries` raises both thresholds while a
partition computes and afterwards restores the environment's values and trims the heap, so the
worker still hands its free memory back. Elsewhere (no such variable, or not glibc) it does
nothing.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DEFAULT_MMAP_THRESHOLD = 128 * 1024
_lock = threading.Lock()
_depth = 0


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 -- glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


@contextmanager
def heap_temporaries() -> Iterator[None]:
    """Within the block, freed arrays of up to 16 MB stay in the heap for reuse (nested and
    concurrent blocks share one setting, restored when the last ends)."""
    global _depth
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if _LIBC is None or trim is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
            _LIBC.mallopt(_M_MMAP_THRESHOLD, 1 << 24)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", _DEFAULT_MMAP_THRESHOLD)
                _LIBC.mallopt(_M_MMAP_THRESHOLD, int(mmap))
                _LIBC.mallopt(_M_TRIM_THRESHOLD, int(trim))
                _LIBC.malloc_trim(0)
