"""Helpers for the Numba backend: eager signatures and thread handling."""

from __future__ import annotations

import functools

import numba as nb
import numpy as np

from ... import _threads

FLOATS = (nb.float32, nb.float64)
INDEX_TYPES = (nb.int32, nb.int64)

#: A problem below this many element operations runs on one thread.
MIN_WORK_PER_THREAD = 16384


def useful_threads(work: int) -> int:
    """Threads worth using for ``work`` units, as csrc/include/fastlr/common.hpp decides."""
    return int(max(1, min(_threads.get_num_threads(), nb.config.NUMBA_NUM_THREADS, work // MIN_WORK_PER_THREAD)))


def threaded(kernel):
    """Run a Python-level kernel wrapper with Numba's thread count set to fastlr's.

    Numba's setting is per Python thread; it is restored afterwards.
    """

    @functools.wraps(kernel)
    def wrapper(*args, **kwargs):
        previous = nb.get_num_threads()
        nb.set_num_threads(min(_threads.get_num_threads(), nb.config.NUMBA_NUM_THREADS))
        try:
            return kernel(*args, **kwargs)
        finally:
            nb.set_num_threads(previous)

    return wrapper


def nnz_chunks(indptr, parts: int) -> np.ndarray:
    """Chunk boundaries over the rows of a compressed matrix, balanced by nonzeros."""
    outer = len(indptr) - 1
    nnz = int(indptr[-1]) if outer >= 0 else 0
    targets = (np.arange(parts + 1, dtype=np.int64) * nnz) // parts
    bounds = np.searchsorted(indptr[:-1], targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, outer
    return bounds


def even_chunks(n: int, parts: int) -> np.ndarray:
    """Chunk boundaries splitting range(n) into ``parts`` contiguous pieces."""
    return (np.arange(parts + 1, dtype=np.int64) * n) // parts


def signatures(template):
    """Expand a signature template over float and index types.

    ``template(T, I)`` returns one signature; I is only varied when the
    template uses it (sparse kernels).
    """
    sigs = []
    for T in FLOATS:
        for I in INDEX_TYPES:
            sig = template(T, I)
            if sig not in sigs:
                sigs.append(sig)
    return sigs
