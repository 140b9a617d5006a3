"""Row-chunked dask arrays: a task per row block, on any dask scheduler.

Every pass is a sum of per-block terms computed where the block lives (a worker
of a ``dask.distributed`` cluster, if a client is active), added in a tree; only
the small m x d, d x r and r x r results are gathered. ``B = A V`` stays a
distributed dask array (persisted) and its thin SVD is dask's tall-skinny QR,
so U comes back as a persisted dask array. dask is imported only when a dask
array is passed in.
"""

from __future__ import annotations

import numpy as np

from .._linalg import blas_single_thread, peak_signs, truncate_parts
from .._threads import thread_limit
from .._validation import dtype_for, is_dask_array
from ..lowrank import LowRank
from .base import Operand
from .memory import InMemory

__all__ = ["DaskRows", "is_dask_array"]


# Tasks run side by side (dask parallelizes over blocks), so each kernel gets one thread; BLAS is
# limited to one thread around computes on the local threaded scheduler (_linalg.blas_single_thread),
# and dask.distributed workers already start with OMP/OPENBLAS_NUM_THREADS=1.


def _block(A_b, backend) -> InMemory:
    return InMemory(A_b, backend=backend)


# Partial sketches are checked where they are computed: a lazy S @ A then fails on NaN/inf in A.


def _countsketch_chunk(A_b, rows, values, m, backend):
    block = _block(A_b, backend)
    with thread_limit(1):
        return block.checked_sketch(block.countsketch(rows, values, m))[None]


def _dense_sketch_chunk(G_b, A_b, backend):
    block = _block(A_b, backend)
    return block.checked_sketch(block.dense_sketch(np.ascontiguousarray(G_b)))[None]


def _gram_chunk(A_b, V, backend):
    with thread_limit(1):
        return _block(A_b, backend).gram_product(V)[None]


def _times_chunk(A_b, V, backend):
    with thread_limit(1):
        return _block(A_b, backend).times(V)


class DaskRows(Operand):
    """A row-chunked dask array (n x d) as an operand; whole rows per block (columns are rechunked
    into one), row chunks as given."""

    def __init__(self, A, *, name: str = "A", backend=None):
        if A.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D dask array, got ndim={A.ndim} with shape {A.shape}")
        if any(np.isnan(c) for c in A.shape):
            raise ValueError(f"{name}: has unknown chunk sizes {A.shape}; call {name}.compute_chunk_sizes() first")
        self.dtype = dtype_for(A, name)
        self.name = name
        self.backend = backend
        self.A = A.astype(self.dtype).rechunk({1: -1})
        self.shape = self.A.shape
        self.on_block = None  # not called: dask reports progress through its own diagnostics

    def __repr__(self) -> str:
        return f"DaskRows(shape={self.shape}, dtype={self.dtype}, blocks={len(self.A.chunks[0])})"

    # ----------------------------------------------------------------- sketches (lazy)

    def countsketch(self, rows, values, m: int):
        """S A as a lazy m x d dask array: a partial sketch per block (1 x m x d), summed in a tree.
        Each task gets only its block's columns of S (the sketch is not shipped whole to every task)."""
        import dask.array as da

        rows = da.from_array(rows, chunks=(self.A.chunks[0],))
        values = da.from_array(values, chunks=(self.A.chunks[0],))
        partials = da.blockwise(_countsketch_chunk, "bkj", self.A, "bj", rows, "b", values, "b", m=m,
                                backend=self.backend, new_axes={"k": m}, adjust_chunks={"b": 1}, dtype=self.dtype,
                                meta=np.empty((0, 0, 0), dtype=self.dtype))
        return partials.sum(axis=0, dtype=self.dtype)

    def dense_sketch(self, G):
        """G A as a lazy dask array: the block of columns of G matching each row block of A."""
        import dask.array as da

        G = da.from_array(G, chunks=(G.shape[0], self.A.chunks[0]))
        partials = da.blockwise(_dense_sketch_chunk, "bkj", G, "kb", self.A, "bj", backend=self.backend,
                                adjust_chunks={"b": 1}, dtype=self.dtype, meta=np.empty((0, 0, 0), dtype=self.dtype))
        return partials.sum(axis=0, dtype=self.dtype)

    def apply_sketch(self, S):
        """``S @ A`` as a lazy dask array (``Sketch.apply`` of a dask array; not checked for NaN/inf)."""
        import dask.array as da

        parts = [leaf.sketch_of(self) for leaf in S.parts()]
        return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)

    def sketch(self, S) -> np.ndarray:
        """``S @ A`` computed: all of S's parts in one dask compute."""
        import dask

        with blas_single_thread():
            return self.checked_sketch(np.vstack(dask.compute(*[leaf.sketch_of(self) for leaf in S.parts()])))

    # ----------------------------------------------------------------- statistics

    def column_sums(self) -> np.ndarray:
        with blas_single_thread():
            return np.asarray(self.A.astype(np.float64).sum(axis=0).compute())

    def row_squared_norms(self) -> np.ndarray:
        with blas_single_thread():
            return np.asarray((self.A.astype(np.float64) ** 2).sum(axis=1).compute())

    def centered_squared_norm(self, mu) -> float:
        with blas_single_thread():
            return float((((self.A.astype(np.float64) - mu) ** 2).sum()).compute())

    # ----------------------------------------------------------------- products

    def gram_product(self, V) -> np.ndarray:
        """``A^T (A V)``: per-block terms (one pass over each block) summed in a tree."""
        import dask.array as da

        d, r = V.shape
        partials = da.blockwise(_gram_chunk, "bij", self.A, "bk", V=V, backend=self.backend,
                                new_axes={"i": d, "j": r}, adjust_chunks={"b": 1}, concatenate=True,
                                dtype=self.dtype, meta=np.empty((0, 0, 0), dtype=self.dtype))
        with blas_single_thread():
            return partials.sum(axis=0, dtype=self.dtype).compute()

    def times(self, V):
        """``B = A V`` as a dask array with A's row chunks, computed and kept on the workers."""
        B = self.A.map_blocks(_times_chunk, V=V, backend=self.backend, chunks=(self.A.chunks[0], (V.shape[1],)),
                              dtype=self.dtype, meta=np.empty((0, 0), dtype=self.dtype))
        with blas_single_thread():
            return B.persist()

    # ----------------------------------------------------------------- results

    def thin_svd(self, B, k: int, driver: str = "gesdd"):
        """Thin SVD of the distributed n x r B by dask's tall-skinny QR: (UB lazy, sB, X)."""
        import dask
        import dask.array as da

        r = B.shape[1]
        B = B.astype(np.float64)
        if min(B.chunks[0]) < r:  # tsqr factors each block: it needs at least r rows per block
            B = B.rechunk({0: max(r, max(B.chunks[0]))})
        with blas_single_thread():
            u, s, vt = dask.persist(*da.linalg.tsqr(B, compute_svd=True))
            s, vt = dask.compute(s, vt)
        return u[:, :k], s, vt.T

    def truncate(self, f, k: int, *, flip_sign: bool):
        """_linalg.truncate for a dask UB: rank cut, completion, signs; U persisted."""
        import dask
        import dask.array as da

        U, s, V = truncate_parts(f, k, self.dtype)
        keep = U.shape[1]
        if keep < k:  # rank(A) < k: orthonormal columns completing U, like _linalg.complete
            G = da.random.default_rng(0).standard_normal((U.shape[0], k - keep), chunks=(U.chunks[0], k - keep))
            for _ in range(2):
                G = G - U @ (U.T @ G)
                G = da.linalg.tsqr(G)[0]
            U = da.concatenate([U, G], axis=1)
        U = U.astype(self.dtype)
        Vt = V.T
        with blas_single_thread():
            (U,) = dask.persist(U)
            if flip_sign:  # svd_flip's convention (_linalg.flip_signs), the argmax computed by dask
                rows = da.argmax(abs(U), axis=0).compute()
                signs = peak_signs(U.vindex[rows, np.arange(k)].compute())
                U = U * signs.astype(self.dtype)
                Vt = Vt * signs[:, None]
                (U,) = dask.persist(U)
        return U, s.astype(self.dtype), np.ascontiguousarray(Vt, dtype=self.dtype)

    @staticmethod
    def result(U, s, Vt) -> LowRank:
        """scw's result: a LowRank, like in-memory input gives, whose U stays the persisted dask array
        (LowRank's constructor would gather it with np.asarray)."""
        out = LowRank.__new__(LowRank)
        out.U, out.s, out.Vt = U, s, Vt
        return out
