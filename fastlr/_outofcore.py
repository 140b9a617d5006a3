"""Matrices larger than memory: a memory-mapped ``.npy`` processed in row blocks.

CountSketch is linear, ``S A = sum_b S[:, rows_b] A_b``, so S A needs one pass
over the row blocks and only one block (converted to float) in memory at a
time. ``np.memmap`` inputs take this path automatically in ``CountSketch.apply``;
``ArrayRows`` gives scw / randomized_svd the same passes (see _rowblocks.py).
``block_rows`` sets the block size (default: blocks of about ``DEFAULT_BLOCK_BYTES``).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import numpy as np

from ._linalg import truncate
from ._validation import as_matrix, check_int, float_dtype

__all__ = [
    "ArrayRows",
    "DEFAULT_BLOCK_BYTES",
    "apply_by_row_blocks",
    "apply_in_blocks",
    "block_rows_for",
    "on_each_block",
    "row_blocks",
    "sketch_block",
    "wants_row_blocks",
]

#: Bytes of one row block after conversion to float64 (the default block size).
DEFAULT_BLOCK_BYTES = 64 * 2**20


_block_hook = contextvars.ContextVar("fastlr_block_hook", default=None)


@contextmanager
def on_each_block(fn):
    """Call ``fn()`` after every row block read by the ``ArrayRows`` made inside the ``with`` block.

    A progress hook for code that does not expose one, e.g. ``fastlr.randomized_svd`` of a
    memory-mapped array: ``with on_each_block(bar.update): randomized_svd(A, k)``.
    """
    token = _block_hook.set(fn)
    try:
        yield
    finally:
        _block_hook.reset(token)


def block_rows_for(A, block_rows: int | None = None) -> int:
    """Rows per block: ``block_rows`` if given, else blocks of about DEFAULT_BLOCK_BYTES as float64."""
    if block_rows is not None:
        return check_int(block_rows, "block_rows", minimum=1)
    row_bytes = 8 * max(int(np.prod(A.shape[1:])), 1)
    return max(1, DEFAULT_BLOCK_BYTES // row_bytes)


def row_blocks(n: int, block_rows: int):
    """``(start, stop)`` of consecutive row blocks covering ``range(n)``."""
    for start in range(0, n, block_rows):
        yield start, min(start + block_rows, n)


def sketch_block(rows, values, m: int, A_b, *, backend=None) -> np.ndarray:
    """One row block's share of S A (m x d): the CountSketch columns ``rows``, ``values`` times A_b."""
    from .sketch import CountSketch

    return CountSketch.from_arrays(rows, values, m).apply(A_b, backend=backend)


def _check_2d(A) -> None:
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D array, got ndim={A.ndim} with shape {A.shape}")
    if min(A.shape) == 0:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    try:
        float_dtype(A.dtype)
    except TypeError as exc:
        raise TypeError(f"A: {exc}") from None


def _check_memmap(A, n: int) -> None:
    _check_2d(A)
    if A.shape[0] != n:
        raise ValueError(f"A: has {A.shape[0]} rows but the sketch needs {n} rows")


def apply_in_blocks(S, A, *, block_rows: int | None = None, backend=None) -> np.ndarray:
    """``S @ A`` for a CountSketch S, reading A (e.g. a memmap) one row block at a time.

    Memory: one block converted to float (``block_rows`` x d) plus the m x d result.

    Parameters
    ----------
    S : CountSketch
    A : numpy.ndarray or numpy.memmap, shape (n, d)
    block_rows : int, optional
        Rows per block; default about DEFAULT_BLOCK_BYTES per block.
    backend : {"cpp", "numba", "numpy"}, optional

    Returns
    -------
    SA : ndarray, shape (m, d); float32 if A is float32, else float64
    """
    _check_memmap(A, S.n)
    return ArrayRows(A, block_rows).sketch(S, backend=backend)


def wants_row_blocks(A) -> bool:
    """Inputs sketched block by block: dask arrays and memory-mapped arrays."""
    from ._dask import is_dask_array

    return isinstance(A, np.memmap) or is_dask_array(A)


def apply_by_row_blocks(S, A, *, backend=None):
    """``S @ A`` for a dask array (lazy dask result) or a memmap (ndarray result)."""
    from ._dask import apply_sketch, is_dask_array

    if is_dask_array(A):
        return apply_sketch(S, A, backend=backend)
    return apply_in_blocks(S, A, backend=backend)


class ArrayRows:
    """An ndarray or memmap as row blocks, each converted to float only while it is used.

    Memory: one converted block plus the small factors, and ``B = A V`` (n x r).
    """

    def __init__(self, A, block_rows=None):
        if not isinstance(A, np.ndarray):
            raise TypeError(f"A: expected a numpy array or memmap, got {type(A).__name__}")
        _check_2d(A)
        self.A = A
        self.shape = A.shape
        self.dtype = float_dtype(A.dtype)
        self.step = block_rows_for(A, block_rows)
        self.on_block = _block_hook.get()  # called after each block read (e.g. a progress bar's update)

    @property
    def n_blocks(self) -> int:
        return -(-self.shape[0] // self.step)

    def for_each_block(self, fn) -> None:
        """Call ``fn(start, stop, block)`` on each row block converted to float.

        The block is dropped before the next one is read, so one block is in memory at a time.
        """
        for start, stop in row_blocks(self.shape[0], self.step):
            fn(start, stop, as_matrix(np.asarray(self.A[start:stop])))
            if self.on_block is not None:
                self.on_block()

    def _sum(self, shape, term) -> np.ndarray:
        total = np.zeros(shape, dtype=self.dtype)

        def add(start, stop, block):
            np.add(total, term(start, stop, block), out=total)

        self.for_each_block(add)
        return total

    def sketch(self, S, *, backend=None) -> np.ndarray:
        from ._rowblocks import sketch_parts
        from .sketch import GaussianSketch

        parts = []
        for part in sketch_parts(S):
            if isinstance(part, GaussianSketch):
                G = part.matrix.astype(self.dtype, copy=False)

                def term(start, stop, block, G=G):
                    return G[:, start:stop] @ block
            else:
                def term(start, stop, block, part=part):
                    return sketch_block(part.rows[start:stop], part.values[start:stop], part.m, block,
                                        backend=backend)
            parts.append(self._sum((part.m, self.shape[1]), term))
        return np.vstack(parts)

    def gram(self, V, *, backend=None) -> np.ndarray:
        from . import _ops

        return self._sum((self.shape[1], V.shape[1]),
                         lambda start, stop, block: _ops.gram_product(block, V, backend=backend))

    def times(self, V, *, backend=None) -> np.ndarray:
        from . import _ops

        B = np.empty((self.shape[0], V.shape[1]), dtype=self.dtype)

        def put(start, stop, block):
            B[start:stop] = _ops.matmul(block, V, backend=backend)

        self.for_each_block(put)
        return B

    def thin_svd(self, B, k, driver):
        from .scw import _thin_svd

        return _thin_svd(B, k, driver)

    def truncate(self, f, k, *, flip_sign):
        return truncate(f, k, self.dtype, flip_sign=flip_sign)

    @staticmethod
    def result(U, s, Vt):
        from .lowrank import LowRank

        return LowRank(U, s, Vt)
