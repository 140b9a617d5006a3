"""dask inputs: sketches and sketched SVDs of row-chunked arrays, and learn_sketch's training
matrices, on any dask scheduler.

CountSketch is linear, ``S A = sum_b S[:, rows_b] A_b``: every row block is
sketched by a task where the block lives (a worker of a ``dask.distributed``
cluster, if a client is active), and the small m x d partial sketches are
added in a tree. ``DaskRows`` gives scw / randomized_svd (_rowblocks.py) the
same per-block passes, keeps ``B = A V`` distributed and takes its thin SVD
with dask's tall-skinny QR. ``DaskMatrices`` is learn_sketch's executor for training matrices
from a dask bag or dask.delayed loaders: each matrix is loaded and prepared once on a worker and
stays there; every step maps the gradient over the batch's matrices where they live and sums the
gradients here. dask is imported only when a dask object is passed in.
"""

from __future__ import annotations

import operator
import sys
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from ._linalg import peak_signs, truncate_parts
from ._outofcore import sketch_block
from ._threads import thread_limit
from .lowrank import LowRank
from ._validation import float_dtype

__all__ = ["DaskMatrices", "DaskRows", "apply_sketch", "gather_matrices", "is_dask_array", "is_dask_matrices"]


def is_dask_array(A) -> bool:
    """True for a ``dask.array.Array`` (without importing dask when it is not loaded)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(A, da.Array)


def _check(A, n: int | None, name: str = "A") -> np.dtype:
    """A's float dtype after checking its shape (and its row count against n, unless None)."""
    if A.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D dask array, got ndim={A.ndim} with shape {A.shape}")
    if any(np.isnan(c) for c in A.shape):
        raise ValueError(f"{name}: has unknown chunk sizes {A.shape}; call {name}.compute_chunk_sizes() first")
    if n is not None and A.shape[0] != n:
        raise ValueError(f"{name}: has {A.shape[0]} rows but the sketch needs {n} rows")
    try:
        return float_dtype(A.dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


# Tasks run side by side (dask parallelizes over blocks), so each kernel gets one thread; BLAS is
# limited to one thread around computes on the local threaded scheduler (_one_blas_thread), and
# dask.distributed workers already start with OMP/OPENBLAS_NUM_THREADS=1.


@contextmanager
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _sketch_chunk(A_b, rows, values, m, backend):
    with thread_limit(1):
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


def _gaussian_chunk(G_b, A_b):
    return (G_b @ A_b)[None]


def _apply_gaussian(S, A):
    """``S @ A`` for a GaussianSketch: the block of columns of S matching each row block of A."""
    import dask.array as da

    dtype = A.dtype
    G = da.from_array(S.matrix.astype(dtype, copy=False), chunks=(S.m, A.chunks[0]))
    partials = da.blockwise(_gaussian_chunk, "bkj", G, "kb", A, "bj", adjust_chunks={"b": 1}, dtype=dtype,
                            meta=np.empty((0, 0, 0), dtype=dtype))
    return partials.sum(axis=0, dtype=dtype)


def _gram_chunk(A_b, V, backend):
    from . import _ops

    with thread_limit(1):
        return _ops.gram_product(A_b, V, backend=backend)[None]


def _times_chunk(A_b, V, backend):
    from . import _ops

    with thread_limit(1):
        return _ops.matmul(A_b, V, backend=backend)


class DaskRows:
    """A row-chunked dask array as the operand of _rowblocks' scw / randomized_svd."""

    def __init__(self, A):
        # No sketch here: _rowblocks checks S against A's row count (check_scw_args / the sketch it builds).
        self.dtype = _check(A, None)
        # Whole rows per block (the per-block kernels need them); row chunks stay as given.
        self.A = A.astype(self.dtype).rechunk({1: -1})
        self.shape = self.A.shape
        self.on_block = None  # not called: dask reports progress through its own diagnostics

    def sketch(self, S, *, backend=None) -> np.ndarray:
        import dask

        from ._rowblocks import sketch_parts
        from .sketch import GaussianSketch

        parts = [_apply_gaussian(p, self.A) if isinstance(p, GaussianSketch) else apply_sketch(p, self.A, backend=backend)
                 for p in sketch_parts(S)]
        with _one_blas_thread():
            return np.vstack(dask.compute(*parts))

    def gram(self, V, *, backend=None) -> np.ndarray:
        """``A^T (A V)``: per-block terms (one pass over each block) summed in a tree."""
        import dask.array as da

        d, r = V.shape
        partials = da.blockwise(_gram_chunk, "bij", self.A, "bk", V=V, backend=backend, new_axes={"i": d, "j": r},
                                adjust_chunks={"b": 1}, concatenate=True, dtype=self.dtype,
                                meta=np.empty((0, 0, 0), dtype=self.dtype))
        with _one_blas_thread():
            return partials.sum(axis=0, dtype=self.dtype).compute()

    def times(self, V, *, backend=None):
        """``B = A V`` as a dask array with A's row chunks, computed and kept on the workers."""
        B = self.A.map_blocks(_times_chunk, V=V, backend=backend, chunks=(self.A.chunks[0], (V.shape[1],)),
                              dtype=self.dtype, meta=np.empty((0, 0), dtype=self.dtype))
        with _one_blas_thread():
            return B.persist()

    def thin_svd(self, B, k, driver):
        """Thin SVD of the distributed n x r B by dask's tall-skinny QR: (UB lazy, sB, X)."""
        import dask
        import dask.array as da

        r = B.shape[1]
        B = B.astype(np.float64)
        if min(B.chunks[0]) < r:  # tsqr factors each block: it needs at least r rows per block
            B = B.rechunk({0: max(r, max(B.chunks[0]))})
        with _one_blas_thread():
            u, s, vt = dask.persist(*da.linalg.tsqr(B, compute_svd=True))
            s, vt = dask.compute(s, vt)
        return u[:, :k], s, vt.T

    def truncate(self, f, k, *, flip_sign):
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
        with _one_blas_thread():
            (U,) = dask.persist(U)
            if flip_sign:  # svd_flip's convention (_linalg.flip_signs), the argmax computed by dask
                rows = da.argmax(abs(U), axis=0).compute()
                signs = peak_signs(U.vindex[rows, np.arange(k)].compute())
                U = U * signs.astype(self.dtype)
                Vt = Vt * signs[:, None]
                (U,) = dask.persist(U)
        return U, s.astype(self.dtype), np.ascontiguousarray(Vt, dtype=self.dtype)

    @staticmethod
    def result(U, s, Vt):
        """scw's result: a LowRank, like in-memory input gives, whose U stays the persisted dask array
        (LowRank's constructor would gather it with np.asarray)."""
        out = LowRank.__new__(LowRank)
        out.U, out.s, out.Vt = U, s, Vt
        return out


# --------------------------------------------------------------------------- learn_sketch's matrices


def is_dask_matrices(matrices) -> bool:
    """True for a ``dask.bag.Bag`` or a list/tuple holding ``dask.delayed`` objects (dask not imported)."""
    bag = sys.modules.get("dask.bag")
    if bag is not None and isinstance(matrices, bag.Bag):
        return True
    delayed = sys.modules.get("dask.delayed")
    return (delayed is not None and isinstance(matrices, (list, tuple))
            and any(isinstance(x, delayed.Delayed) for x in matrices))


def _items(matrices) -> list:
    """One delayed object (or plain matrix) per matrix; a bag's partitions are persisted first."""
    import dask
    from dask.delayed import delayed

    bag = sys.modules.get("dask.bag")  # not loaded: no bag was passed in
    if bag is None or not isinstance(matrices, bag.Bag):
        return list(matrices)
    with _one_blas_thread():
        parts = dask.persist(*matrices.to_delayed())  # each partition loaded once, where it is computed
        lengths = dask.compute(*[delayed(len)(p) for p in parts])
    return [delayed(operator.getitem)(p, j) for p, count in zip(parts, lengths) for j in range(count)]


def gather_matrices(matrices) -> list:
    """The matrices of a dask bag or a list of dask.delayed loaders, computed into this process."""
    import dask

    with _one_blas_thread():
        return list(dask.compute(*_items(matrices)))


# Tasks run side by side: one kernel thread each. Two named functions, so that dask's dashboard
# and task stream show what runs.


def learn_sketch_load(prepare, A, name):
    with thread_limit(1):
        return prepare(A, name)


def learn_sketch_gradient(task, op):
    with thread_limit(1):
        return task(op)


def _describe(op):
    return op.shape


class DaskMatrices:
    """Training matrices that live on the workers of the active dask scheduler.

    ``prepare(A, name)`` (picklable; it returns an ``Operand``) loads, checks and prepares each
    matrix once on a worker, and the result stays there (``dask.persist``): a
    ``dask.distributed.Client`` if one is active, else dask's default (local threads). ``map``
    then runs ``task(op)`` for a batch on the workers holding the matrices; only the task (the
    sketch's values) goes out and the results (a loss and n gradient entries each) come back.

    Parameters
    ----------
    matrices : dask.bag.Bag or list of dask.delayed objects (plain matrices may be mixed in)
    name : str
        The argument's name, for error messages (``name[i]`` for matrix i).
    prepare : callable
    """

    def __init__(self, matrices, name: str, prepare):
        import dask
        from dask.delayed import delayed

        items = _items(matrices)
        if not items:
            raise ValueError(f"{name}: is empty; at least one matrix is needed")
        tasks = [delayed(learn_sketch_load)(prepare, A, f"{name}[{i}]") for i, A in enumerate(items)]
        with _one_blas_thread():
            self.ops = dask.persist(*tasks)
            shapes = dask.compute(*[delayed(_describe)(op) for op in self.ops])
        for i, shape in enumerate(shapes):
            if shape != shapes[0]:
                raise ValueError(f"{name}[{i}]: has shape {shape}, but {name}[0] has shape {shapes[0]}")
        self.count, self.shape = len(self.ops), shapes[0]

    def map(self, task, batch: list[int]) -> list:
        """``[task(op_i) for i in batch]``, each computed on the worker that holds matrix i."""
        import dask
        from dask.delayed import delayed

        shared = delayed(task)  # one graph node: shipped once per worker, not once per matrix
        with _one_blas_thread():
            return list(dask.compute(*[delayed(learn_sketch_gradient)(shared, self.ops[i]) for i in batch]))
