"""dask.array inputs: sketches of row-chunked arrays, on any dask scheduler.

CountSketch is linear, ``S A = sum_b S[:, rows_b] A_b``: every row block is
sketched by a task where the block lives (a worker of a ``dask.distributed``
cluster, if a client is active), and the small m x d partial sketches are
added in a tree. dask is imported only when a dask array is passed in.
"""

from __future__ import annotations

import sys

import numpy as np

from ._outofcore import sketch_block
from ._validation import float_dtype

__all__ = ["apply_sketch", "is_dask_array"]


def is_dask_array(A) -> bool:
    """True for a ``dask.array.Array`` (without importing dask when it is not loaded)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(A, da.Array)


def _check(A, n: int, name: str = "A") -> np.dtype:
    if A.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D dask array, got ndim={A.ndim} with shape {A.shape}")
    if any(np.isnan(c) for c in A.shape):
        raise ValueError(f"{name}: has unknown chunk sizes {A.shape}; call {name}.compute_chunk_sizes() first")
    if A.shape[0] != n:
        raise ValueError(f"{name}: has {A.shape[0]} rows but the sketch needs {n} rows")
    try:
        return float_dtype(A.dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def _sketch_chunk(A_b, rows, values, m, backend):
    return sketch_block(rows, values, m, A_b, backend=backend)[None]


def apply_sketch(S, A, *, backend=None):
    """``S @ A`` for a CountSketch S and a dask array A (n x d), as a lazy m x d dask array.

    One task per block of A computes that block's partial sketch (1 x m x d_j);
    a tree sum over the row blocks gives S A. Call ``.compute()`` for the result.
    """
    import dask.array as da

    dtype = _check(A, S.n)
    A = A.astype(dtype)
    # Each task gets only its block's columns of S (the sketch is not shipped whole to every task).
    rows = da.from_array(S.rows, chunks=(A.chunks[0],))
    values = da.from_array(S.values, chunks=(A.chunks[0],))
    partials = da.blockwise(
        _sketch_chunk, "bkj",
        A, "bj",
        rows, "b",
        values, "b",
        m=S.m,
        backend=backend,
        new_axes={"k": S.m},
        adjust_chunks={"b": 1},
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    return partials.sum(axis=0, dtype=dtype)
