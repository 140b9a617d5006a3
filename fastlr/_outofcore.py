"""Matrices larger than memory: a memory-mapped ``.npy`` processed in row blocks.

CountSketch is linear, ``S A = sum_b S[:, rows_b] A_b``, so S A needs one pass
over the row blocks and only one block (converted to float) in memory at a
time. ``np.memmap`` inputs take this path automatically; ``block_rows`` sets
the block size (default: blocks of about ``DEFAULT_BLOCK_BYTES``).
"""

from __future__ import annotations

import numpy as np

from ._compat import canonical_dtype
from ._validation import check_int, float_dtype

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "apply_by_row_blocks",
    "apply_in_blocks",
    "block_rows_for",
    "row_blocks",
    "sketch_block",
    "wants_row_blocks",
]

#: Bytes of one row block after conversion to float64 (the default block size).
DEFAULT_BLOCK_BYTES = 64 * 2**20


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

    # Blocks and sketch slices arrive pickled on dask workers: see canonical_dtype.
    rows, values, A_b = (canonical_dtype(x) for x in (rows, values, A_b))
    return CountSketch.from_arrays(rows, values, m).apply(A_b, backend=backend)


def _check_memmap(A, n: int) -> None:
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D array, got ndim={A.ndim} with shape {A.shape}")
    float_dtype(A.dtype)  # rejects complex / non-numeric dtypes with a clear TypeError
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
    step = block_rows_for(A, block_rows)
    SA = np.zeros((S.m, A.shape[1]), dtype=float_dtype(A.dtype))
    for start, stop in row_blocks(A.shape[0], step):
        # np.asarray: a plain ndarray view of the block, so apply() takes the in-memory path.
        block = np.asarray(A[start:stop])
        SA += sketch_block(S.rows[start:stop], S.values[start:stop], S.m, block, backend=backend)
    return SA


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
