"""In-memory matrices: dense ndarrays (C or F order) and scipy.sparse CSR/CSC.

``InMemory`` is the one place that picks a kernel for a product: dense, CSR or
CSC (the CSR form of A^T, so its products swap the forward and backward halves
of the CSR kernels instead of converting A), the fused one-pass kernels or BLAS
for dense A (``choice.use_kernel``: by factor width, dtype, memory order and the
CPU's vector ISA, measured so that neither path is picked where the other is
faster; ``FASTLR_PRODUCT_CHOICE`` overrides), and the Gram matrix A^T A for power
steps on narrow dense A (float64 A: formed in float32 first where that serves).
Products smaller than ``SMALL_WORK`` run on one thread (a sparse gathering pass's nonzeros and
rows count ``SPARSE_ENTRY_WORK`` times, and a two-sided pass's where its sum gets
``SCATTER_SHARED_ENTRIES`` nonzeros a row; an entry of a memory-bound elementwise pass
``STREAM_ENTRY_WORK``): ``threads_for``, the one rule gd_svd's optimizer steps use too.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import nullcontext

import numpy as np
import scipy.linalg

from .._backend import get_backend
from .._linalg import (blas_call, blas_limit, blas_product, blas_swapped, normalize, orthonormal, peak, power_of_two,
                       ritz_pairs, thin_svd)
from .._kernels._threads_state import get_num_threads  # fastlr.get_num_threads without its wrapper's frame
from .._threads import thread_limit
from .._validation import as_matrix, is_sparse
from .base import Operand, PowerSteps
from .choice import BLAS_MIN_COLUMNS  # noqa: F401 (re-exported)
from .choice import (blas_swap, operand_key, remember_route, route_key, routes, use_kernel, use_sparse_kernel,
                     vector_product)

__all__ = ["InMemory", "seeded_countsketch"]

#: Power steps go through the Gram matrix A^T A (one BLAS SYRK, n d^2 flops)
#: instead of n_iter passes of A^T (A V) (4 n d r flops each) when
#: d <= GRAM_WIDTH * r * n_iter: SYRK runs near the CPU's peak, the thin
#: one-pass kernels at 45-80% of it (measured on 5760 x 1080 and 100000 x 500).
GRAM_WIDTH = 4

#: Products of fewer multiply-adds than this (n d k for A V; twice that for the
#: two-sided passes) run on one thread: ~1.5 ms of float32 work (3 ms float64) at
#: one thread. A second thread saves at most half of that, while a parallel
#: region on a busy machine waits for its second thread to get a core (matmul
#: 1024 x 1080 x 20 on a loaded 2-core machine: 0.6 ms on 1 thread, 4-12 ms on 2
#: with libgomp's default spin-wait, 0.63 ms with OMP_WAIT_POLICY=passive;
#: bench/bench_threads.py, bench/README.md).
SMALL_WORK = 2**26
#: A sparse gathering pass's multiply-adds count this many times a dense one's against SMALL_WORK:
#: each nonzero gathers a factor row, and each row of the CSR writes one (``InMemory._work``). On a
#: Zen 2, A @ V over 1M nonzeros ran 1-2 G multiply-adds a second, a tenth to a twentieth of the dense
#: kernel's rate, so nonzeros times k under SMALL_WORK took up to ~45 ms on one thread, twice what two
#: threads took (200000 x 200000 at 5 a row, k = 32: 44.8 vs 22.8 ms; bench/README.md, fourteenth
#: session).
SPARSE_ENTRY_WORK = 32
#: A sparse two-sided pass (CSR A^T (A V), power_step, gd_products: it gathers, then scatters into Z) counts as
#: dear as a gathering one when Z gets at least this many nonzeros per row on average: each thread then sums
#: into a Z of its own often enough to pay for it. Zen 2, kernels called directly, 1 vs 2 threads, k = 4-32
#: (bench/README.md, fifteenth session): 50-1000 nonzeros per row of Z 0.48-0.67x the one-thread time;
#: 20 a row 0.71-0.86x; 5 a row 0.67-1.42x. One-sided scattering passes (CSR A.T @ W, CSC A @ V) keep the
#: plain count: right after a multi-threaded BLAS call (OpenBLAS's worker spinning on the other core) the
#: 100000 x 5000 A.T @ W at 200 a row took 0.53-1.21x one thread's time from run to run (the CSR kernels
#: give each thread a fixed share of the rows), where A^T (A V) took 0.62-0.73x.
SCATTER_SHARED_ENTRIES = 32
#: An entry of a memory-bound elementwise pass (the squared norm's BLAS dot, gd_svd's optimizer step) counts
#: this many multiply-adds against SMALL_WORK: on a Zen 2 both took 0.52-0.62 ns an entry at one thread (dot
#: over 2000 x 1000: 1.05 ms; an sgd step over 100000 x 10: 0.52-0.62 ms), the dense gd_products kernel
#: 0.065 ns a multiply-add. A second thread halved them without a busy process beside, but a BLAS dot on two
#: threads leaves OpenBLAS's worker spinning ~120 ms of CPU afterwards (through all of gd_svd(A, 10) on
#: 2000 x 1000: 23-27 ms of CPU a run), and beside a busy process that dot took 1.8x one thread's time, the
#: masked gradients over 5e4 entries 5x (bench/README.md, seventeenth session, HT).
STREAM_ENTRY_WORK = 8

#: Rows of A per SYRK call in ``_gram``: about this many flops each (~0.2 s), so
#: Ctrl-C is honoured between calls, and at least _GRAM_MIN_ROWS rows so each
#: call still runs near BLAS's peak.
_GRAM_BLOCK_FLOPS = 8e9
_GRAM_MIN_ROWS = 256

#: float64 A whose SYRK is at least this many multiply-adds (n d^2) forms its Gram matrix in float32
#: first (``_Gram32Steps``): half the SYRK's time at float32's rate (5760 x 1080: 71 vs 139 ms) plus
#: a cast of each row block. Below it the SYRK is a few ms and the Ritz tests per step would cost more.
GRAM32_MIN_WORK = 2**28
#: The float32 Gram matrix serves while its rounding's estimated deficit in ||A V||^2 stays below
#: this share of the deficit subspace iteration leaves (``_Gram32Steps``).
GRAM32_SHARE = 1e-3


def threads_for(work: int):
    """One thread for passes of fewer than SMALL_WORK multiply-adds (a context limiting fastlr's kernels on this
    Python thread; a BLAS call inside follows it with ``blas_limit(get_num_threads())``); fastlr's count
    otherwise. The one rule for every pass fastlr threads: products here, gd_svd's optimizer steps."""
    return _thread_limit_for(work, get_num_threads()) or nullcontext()


def _thread_limit_for(work: int, threads: int):
    """``threads_for``'s context where it limits fastlr's ``threads``, else None (``_within`` then runs the
    pass without a ``with``: nullcontext's object and two frames, ~5 us right after a large GEMM)."""
    return thread_limit(1) if work < SMALL_WORK and threads > 1 else None


def _within(limit, fn, *args):
    """``fn(*args)`` inside the context ``limit``, or without one for None."""
    if limit is None:
        return fn(*args)
    with limit:
        return fn(*args)


def _blas_power_pass(A, V, route: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(A @ V, A.T @ (A @ V))`` by two BLAS products in ``route``'s layouts (``InMemory._route``)."""
    P = blas_product(A, V, route[1])
    return P, blas_product(A.T, P, route[2])


def _blas_gd(A, U, V, route: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(A @ V, A.T @ U)`` by two BLAS products in ``route``'s layouts."""
    return blas_product(A, V, route[1]), blas_product(A.T, U, route[2])


#: Entries per centered dense block (float64 work arrays of ~8 MB).
_BLOCK_ENTRIES = 1 << 20


def _dense_blocks(A, d):
    rows = max(1, _BLOCK_ENTRIES // max(1, d))
    for start in range(0, A.shape[0], rows):
        yield np.asarray(A[start:start + rows], dtype=np.float64)


def _duplicates_summed(A):
    """Sparse A with repeated (row, column) entries added up (a float64 copy), so that squares are of the sums;
    A itself when it has none (canonical format)."""
    if A.has_canonical_format:
        return A
    A = A.astype(np.float64, copy=True)
    A.sum_duplicates()
    return A


#: Stored entries of a sparse matrix handled at once (bounded temporaries: O(nnz) memory is the input's).
_SPARSE_CHUNK = 1 << 18


def _sparse_chunks(A):
    """(column index, value as float64) of the stored entries of a CSR/CSC matrix, in chunks."""
    nnz = int(A.indptr[-1])
    for start in range(0, nnz, _SPARSE_CHUNK):
        stop = min(start + _SPARSE_CHUNK, nnz)
        if A.format == "csr":
            cols = A.indices[start:stop]
        else:  # CSC: the column of entry i is the j with indptr[j] <= i < indptr[j + 1]
            cols = np.searchsorted(A.indptr, np.arange(start, stop), side="right") - 1
        yield cols, np.asarray(A.data[start:stop], dtype=np.float64)


def _factor(F, dtype, name: str) -> np.ndarray:
    F = np.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got ndim={F.ndim} with shape {F.shape}")
    if F.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {F.dtype}")
    return np.ascontiguousarray(F, dtype=dtype)


def seeded_countsketch(A, seed: int, m: int, n: int, backend=None):
    """``CountSketch(m, n, seed) @ A`` for a plain ndarray A with n rows, in one call of the compiled core's
    ``countsketch_seeded_dense_finite`` (the pass of ``InMemory.countsketch_seeded`` and the finiteness check of
    ``Operand.checked_sketch``, the same S A bit for bit); None for anything else (another class or row count,
    a backend without that call, a dtype or layout the kernel would refuse, a non-finite S A), which the caller
    hands to the general path (``Sketch.apply``) for the same result or its error. Why: the general path's
    Python (the operand, the route key, the dispatch, NumPy's isfinite) runs with the caches the pass over A has
    just flushed: 0.1-0.15 ms beside a 1.3-2.4 ms pass over 5760 x 1080 (bench/README.md, 21st session)."""
    if A.__class__ is not np.ndarray or A.ndim != 2 or A.shape[0] != n:
        return None
    fn = getattr(get_backend(backend), "countsketch_seeded_dense_finite", None)
    return None if fn is None else fn(A, seed, m)


class InMemory(Operand):
    """A dense (C or F order) or scipy.sparse CSR/CSC matrix in memory.

    Parameters
    ----------
    A : array_like or scipy.sparse matrix
        Converted once by ``_validation.as_matrix`` (COO and other formats become
        CSR, integers float64; float32 stays float32).
    name : str
        A's name in error messages.
    backend : {"cpp", "numba", "numpy"} or None
        Kernel backend (None: the current default, looked up at each call).
    """

    transposable = True
    split_last_step = True

    def __init__(self, A, *, name: str = "A", backend=None):
        self._set(as_matrix(A, name), name, backend)

    @classmethod
    def wrap(cls, A, *, name: str = "A", backend=None) -> "InMemory":
        """An operand for A that is already kernel-ready (``as_matrix``'s output, or a float
        ndarray made by fastlr): no conversion and no structure check."""
        self = cls.__new__(cls)
        self._set(A, name, backend)
        return self

    def _set(self, A, name, backend) -> None:
        self.A = A
        self.name = name
        self.backend = backend
        self.shape = A.shape
        self.dtype = A.dtype
        self.sparse = is_sparse(A)
        self.format = A.format if self.sparse else "dense"
        self.order = None if self.sparse else "C" if A.flags.c_contiguous else "F"  # the product choice's key
        self._route_key = None if self.sparse else operand_key(A, self.order)  # ``_route``'s memo
        if self.sparse:
            self.parts = tuple(np.ascontiguousarray(x) for x in (A.indptr, A.indices, A.data))

    def __repr__(self) -> str:
        return f"InMemory({self.format}, shape={self.shape}, dtype={self.dtype})"

    # ----------------------------------------------------------------- storage-level views

    @property
    def T(self) -> "InMemory":
        """A^T (a view: dense becomes the other order, CSR becomes CSC)."""
        return InMemory.wrap(self.A.T, name=f"{self.name}.T", backend=self.backend)

    def for_power_steps(self) -> "InMemory":
        """CSR for CSC input: power steps are one pass over CSR, two over CSC."""
        if self.format != "csc":
            return self
        return InMemory.wrap(self.A.tocsr(), name=self.name, backend=self.backend)

    def is_finite(self) -> bool:
        """No NaN or inf in A (one pass)."""
        return bool(np.isfinite(self.parts[2] if self.sparse else self.A).all())

    def squared_norm(self) -> float:
        """||A||_F^2 accumulated in float64 (float32 sums lose digits on big matrices), by BLAS dots on
        the thread count ``threads_for`` gives one dot (``STREAM_ENTRY_WORK`` an entry): a sparse A's one over its
        nonzeros, a dense A's over a block of at most ``_BLOCK_ENTRIES`` (under SMALL_WORK: one thread). Each dot on two
        threads waits for OpenBLAS's worker: 100000 x 500 float64 in 48 blocks took 761-855 ms beside busy
        processes against 53-59 ms on one thread (bench/README.md, seventeenth session, HT)."""
        entries = self.parts[2].size if self.sparse else min(self.A.size, _BLOCK_ENTRIES)
        with threads_for(STREAM_ENTRY_WORK * entries), blas_limit(get_num_threads()):
            return self._squared_norm()

    def _squared_norm(self) -> float:
        A = self.A
        if self.sparse:
            A = _duplicates_summed(A)
            data = A.data.astype(np.float64, copy=False)
            return float(data @ data)
        total = 0.0
        for block in _dense_blocks(A, A.shape[1]):
            if block.flags.c_contiguous or block.flags.f_contiguous:  # BLAS's dot: 0.3 vs einsum's 0.9 ms (2000 x 1000)
                x = block.ravel(order="K")  # a view
                total += float(np.dot(x, x))
            else:
                total += float(np.einsum("ij,ij->", block, block))
        return total

    def column_sums(self) -> np.ndarray:
        """``A^T 1`` (d,) accumulated in float64, in one pass over A."""
        d = self.shape[1]
        total = np.zeros(d)
        if self.sparse:
            for cols, data in _sparse_chunks(self.A):
                total += np.bincount(cols, weights=data, minlength=d)
            return total
        for block in _dense_blocks(self.A, d):
            total += block.sum(axis=0)
        return total

    def row_squared_norms(self) -> np.ndarray:
        """``||A[i, :]||^2`` (n,) in float64, in one pass over A by the backend's ``row_squared_norms_*`` kernel
        (sparse: O(nnz), duplicates summed first). The compiled pass read a dense 5760 x 1080 float64 A in 1.1x
        the memory floor where NumPy's einsum took 1.9x, float32 in 1.4x against 8.5x (a float64 copy per block)
        (bench/README.md, twenty-first session, HN)."""
        kernels = self.kernels
        if not self.sparse:
            return kernels.row_squared_norms_dense(self.A)
        A = _duplicates_summed(self.A)
        parts = self.parts if A is self.A else (A.indptr, A.indices, A.data)
        fn = kernels.row_squared_norms_csr if self.format == "csr" else kernels.row_squared_norms_csc
        return fn(*parts, self.shape[0])

    def centered_squared_norm(self, mu) -> float:
        """``||A - 1 mu^T||_F^2`` in float64, without cancellation: dense, from centered row blocks;
        sparse, ``sum over stored (a_ij - mu_j)^2 + sum_j (n - nnz_j) mu_j^2`` (duplicates summed first)."""
        n, d = self.shape
        A = self.A
        if self.sparse:
            A = _duplicates_summed(A)
            total, stored = 0.0, np.zeros(d)
            for cols, data in _sparse_chunks(A):
                diff = data - mu[cols]
                total += float(diff @ diff)
                stored += np.bincount(cols, minlength=d)
            return total + float((n - stored) @ (mu * mu))
        total = 0.0
        for block in _dense_blocks(A, d):
            block = block - mu  # never in place: a float64 block is a view of A
            total += float(np.einsum("ij,ij->", block, block))
        return total

    # ----------------------------------------------------------------- sketches

    def countsketch(self, rows, values, m: int) -> np.ndarray:
        """S A (m x d) for the CountSketch with nonzeros ``values`` (in ``dtype``) at ``rows``."""
        kernels = self.kernels
        if not self.sparse:
            return kernels.countsketch_dense(self.A, rows, values, m)
        fn = kernels.countsketch_csr if self.format == "csr" else kernels.countsketch_csc
        return fn(*self.parts, rows, values, m, self.shape[1])

    def countsketch_seeded(self, seed: int, m: int, start: int = 0) -> np.ndarray:
        """S A for the seeded CountSketch, its hash computed inside the kernel's pass (no n-length
        rows/values arrays); equal bit for bit to ``countsketch`` with the hashed rows and signs."""
        kernels = self.kernels
        if not self.sparse:
            return kernels.countsketch_seeded_dense(self.A, seed, m, start)
        fn = kernels.countsketch_seeded_csr if self.format == "csr" else kernels.countsketch_seeded_csc
        return fn(*self.parts, seed, m, self.shape[0], self.shape[1], start)

    def countsketch_with_norms(self, rows, values, m: int):
        """Dense A: ``(countsketch(rows, values, m), row_squared_norms())`` from the backend's fused kernel (the
        compiled core reads a C-ordered A once for both, bit for bit the two calls' results); sparse: None."""
        return None if self.sparse else self.kernels.countsketch_dense_energy(self.A, rows, values, m)

    def countsketch_seeded_with_norms(self, seed: int, m: int):
        """``countsketch_with_norms`` for the seeded CountSketch (``countsketch_seeded(seed, m)``)."""
        return None if self.sparse else self.kernels.countsketch_seeded_dense_energy(self.A, seed, m)

    def gather_dot(self, rows, D) -> np.ndarray:
        """g[i] = <A[i, :], D[rows[i], :]> (D C-contiguous in ``dtype``): d<D, S A>/d values."""
        kernels = self.kernels
        if not self.sparse:
            return kernels.countsketch_gather_dot(self.A, rows, D)
        if self.format == "csr":
            return kernels.countsketch_gather_dot_csr(*self.parts, rows, D)
        A = self.A.tocsr()
        return kernels.countsketch_gather_dot_csr(A.indptr, A.indices, A.data, rows, D)

    def dense_sketch(self, G) -> np.ndarray:
        """``G @ A`` (m x d) for a dense m x n G in ``dtype`` (BLAS)."""
        GA = np.asarray((self.A.T @ G.T).T) if self.sparse else G @ self.A
        return np.ascontiguousarray(GA)

    # ----------------------------------------------------------------- one-pass kernels

    def _work(self, k: int, sides: int = 1, gather: bool = False):
        """``_thread_limit_for`` a pass over A with k-column factors (``sides`` = 2: both ways): a context
        limiting fastlr to one thread, or None (``_within``).
        ``gather``: a sparse pass that reads factor rows and writes its own output rows (CSR
        ``A @ V``, CSC ``A.T @ W``); its nonzeros and rows count SPARSE_ENTRY_WORK each. Passes that
        scatter into Z keep the plain count, but for two-sided ones (``sides`` = 2) whose Z gets
        SCATTER_SHARED_ENTRIES nonzeros a row: each thread sums into a Z of its own, and with few a
        row two threads lost to one (50000 x 50000 at 5 a row, A^T (A V) k = 16: 8.3 vs 5.8 ms)."""
        if self.sparse:
            size = self.parts[2].size
            rows, z_rows = self.shape if self.format == "csr" else self.shape[::-1]  # the CSR the kernel runs over
            if gather or (sides == 2 and size >= SCATTER_SHARED_ENTRIES * z_rows):
                size = SPARSE_ENTRY_WORK * (size + rows)
        else:
            size = self.shape[0] * self.shape[1]
        return _thread_limit_for(sides * size * k, get_num_threads())

    def matmul(self, V) -> np.ndarray:
        """``A @ V`` (n x k), one pass, by the one-pass kernel (sparse A: or SciPy's product where
        it is faster, ``choice.use_sparse_kernel``)."""
        V = _factor(V, self.dtype, "V")
        return _within(self._work(V.shape[1], gather=self.sparse and self.format == "csr"), self._matmul, V)

    def _matmul(self, V) -> np.ndarray:
        kernels = self.kernels
        if not self.sparse:
            return kernels.matmul(self.A, V)
        if not self._kernel_for("matmul", V.shape[1]):
            return self._scipy_product(self.A, V, self.shape[1], "V", "columns")
        if self.format == "csr":
            return kernels.matmul_csr(*self.parts, V)
        if V.shape[0] != self.shape[1]:
            raise ValueError(f"V: expected {self.shape[1]} rows ({self.name}'s columns), got {V.shape[0]}")
        return kernels.rmatmul_csr(*self.parts, V, self.shape[0])

    def rmatmul(self, W) -> np.ndarray:
        """``A.T @ W`` (d x k), one pass, by the one-pass kernel (sparse A: or SciPy's product where
        it is faster)."""
        W = _factor(W, self.dtype, "W")
        return _within(self._work(W.shape[1], gather=self.sparse and self.format == "csc"), self._rmatmul, W)

    def _rmatmul(self, W) -> np.ndarray:
        kernels = self.kernels
        if not self.sparse:
            return kernels.rmatmul(self.A, W)
        if not self._kernel_for("rmatmul", W.shape[1]):
            return self._scipy_product(self.A.T, W, self.shape[0], "W", "rows")
        if self.format == "csr":
            return kernels.rmatmul_csr(*self.parts, W, self.shape[1])
        if W.shape[0] != self.shape[0]:
            raise ValueError(f"W: expected {self.shape[0]} rows ({self.name}'s rows), got {W.shape[0]}")
        return kernels.matmul_csr(*self.parts, W)

    def gd_products(self, U, V) -> tuple[np.ndarray, np.ndarray]:
        """``(A @ V, A.T @ U)`` in one pass over A; U is n x k, V is d x k. Dense A whose d x k
        factors pass the cache (``choice.factor_fits``: wide A) gets two BLAS GEMMs instead; the CSR
        kernel walks each thread's rows twice (``A V``, then ``A.T U``) where V takes L3 / 4 to 24 MiB (from
        3 L3 / 16 at baseline) and rows hold 4 or more nonzeros, as its ``A.T (A V)`` pass does."""
        U = _factor(U, self.dtype, "U")
        V = _factor(V, self.dtype, "V")
        return _within(self._work(V.shape[1], 2), self._gd_products, U, V)

    def _gd_products(self, U, V):
        if not self.sparse:
            threads = get_num_threads()
            route = self._route("gd", V.shape[1], threads)
            if route[0]:
                return self.kernels.gd_products(self.A, U, V)
            if route[3] is not None:
                return route[3](3, self.A, V, U)
            self._check_gd_factors(U, V)
            return blas_call(threads, _blas_gd, self.A, U, V, route)
        kernels = self.kernels
        if self.format == "csr":
            return kernels.gd_products_csr(*self.parts, U, V)
        self._check_gd_factors(U, V)
        ATU, AV = kernels.gd_products_csr(*self.parts, V, U)  # A.T's CSR: (A.T @ U, A @ V)
        return AV, ATU

    def _check_gd_factors(self, U, V) -> None:
        """U (n x k) and V (d x k) against A's shape, where no kernel checks them."""
        if U.shape[0] != self.shape[0] or V.shape[0] != self.shape[1]:
            raise ValueError(f"U, V: expected {self.shape[0]} and {self.shape[1]} rows ({self.name}'s shape), "
                             f"got {U.shape[0]} and {V.shape[0]}")

    def power_step(self, Q) -> tuple[np.ndarray, np.ndarray]:
        """``(Y, Z) = (A @ Q, A.T @ (A @ Q))`` in one pass over A (two for CSC A); Q is d x k. Sparse A
        with one column: SciPy's two products (``choice.use_sparse_kernel``)."""
        Q = _factor(Q, self.dtype, "Q")
        return _within(self._work(Q.shape[1], 2), self._power_step, Q)

    def _power_step(self, Q):
        if not self.sparse:
            return self.kernels.power_step(self.A, Q)
        if not self._kernel_for("gram", Q.shape[1]):
            return self._scipy_power_pass(Q)
        if self.format == "csr":
            return self.kernels.power_step_csr(*self.parts, Q)
        Y = self.matmul(Q)
        return Y, self.rmatmul(Y)

    def gram_product(self, Q) -> np.ndarray:
        """``A.T @ (A @ Q)`` in one pass over A (two for CSC A), without storing ``A @ Q``, where the
        product choice runs the kernel; else two BLAS products (dense A, ``choice.use_kernel``: e.g.
        float32 F-order A, or any A at baseline ISA, where the kernel ran at 0.4-0.95x BLAS's speed)
        or SciPy's (sparse A with one column, ``choice.use_sparse_kernel``). Every algorithm-level
        caller (the tolerance SVD, centered, blocked and dask operands) gets the rule through it."""
        Q = _factor(Q, self.dtype, "Q")
        return _within(self._work(Q.shape[1], 2), self._gram_product, Q)

    def _gram_product(self, Q) -> np.ndarray:
        if not self.sparse:
            threads = get_num_threads()
            route = self._route("gram", Q.shape[1], threads)
            if route[0]:
                return self.kernels.gram_product(self.A, Q)
            if route[3] is not None:
                return route[3](2, self.A, Q)[1]
            return blas_call(self._blas_count(Q.shape[1], threads, 2), _blas_power_pass, self.A, Q, route)[1]
        if not self._kernel_for("gram", Q.shape[1]):
            return self._scipy_power_pass(Q)[1]
        if self.format == "csr":
            return self.kernels.gram_product_csr(*self.parts, Q)
        return self.rmatmul(self.matmul(Q))

    def masked_gradients(self, U, V, l2: float):
        """GD on observed entries (A holds them as CSR, int64 indices): ``(G_U, G_V, loss)`` of
        ``0.5 sum_(ij observed) (a_ij - u_i . v_j)^2 + 0.5 l2 (|U|^2 + |V|^2)`` in one pass. It gathers V's
        rows for each nonzero and writes its own rows of G_U: a gathering pass to ``threads_for``."""
        return _within(self._work(U.shape[1] if np.ndim(U) == 2 else 1, gather=True), self.kernels.gd_masked_grad,
                       *self.parts, U, V, l2)

    # ----------------------------------------------------------------- algorithm-level products

    def _kernel_for(self, kind: str, columns: int) -> bool:
        """Whether a product with a ``columns``-wide factor runs on the one-pass kernel: for
        sparse A, ``choice.use_sparse_kernel`` (from two columns on, but SciPy for ``A @ V`` and
        ``A.T @ W`` over rows of fewer than 4 nonzeros on average, and for CSC A's ``A.T (A V)``
        over such columns, plus a band of short rows at baseline by factor size and the baseline scatter
        pass over wide factor rows; kind "matmul", "rmatmul", "pass" or "gram"); for dense A, ``choice.use_kernel``
        (kind "matmul", "pass", "rmatmul", "gram" or "gd"; never from BLAS_MIN_COLUMNS columns on, nor for factors past
        the cache, unless FASTLR_PRODUCT_CHOICE=kernel)."""
        if self.sparse:
            return use_sparse_kernel(kind, columns, self.format, self.shape, self.parts[2].size, dtype=self.dtype)
        return self._route(kind, columns, get_num_threads())[0]

    def _route(self, kind: str, columns: int, threads: int) -> tuple:
        """Dense A's route for a ``columns``-wide factor on ``threads`` threads: (kernel?, then for BLAS whether
        ``A @ V`` and ``A.T @ W`` run swapped: ``blas_swapped`` of ``blas_swap``'s layouts, then the one-column
        products' function where they run, ``choice.vector_product``: ``f(kind, A, F1, F2)``), remembered under
        ``choice.route_key`` (which holds the environment, the ISA cap, the calibration). ``use_kernel`` and
        ``blas_swap`` cost 15-40 us of Python a call warm and 70-120 us right after a large GEMM has flushed the
        caches (Zen 2): 3-8% of a 1-2 ms GEMV, paid on every call; the key and lookup ~1 us warm, ~25 us after a
        GEMM (bench/README.md, nineteenth session, HO)."""
        key = route_key(self._route_key, kind, columns, threads)
        route = routes.get(key)
        if route is None:
            kernel = use_kernel(kind, columns, self.dtype, self.order, factor_rows=self.shape[1], threads=threads,
                                matrix_bytes=self.A.nbytes)
            if (vector := vector_product(columns, threads, dtype=self.dtype, order=self.order)) is not None:
                route = (False, None, None, vector)  # in place of the kernel or BLAS
            elif kernel:
                route = (True, None, None, None)
            elif columns == 1:  # one GEMV either way, bit for bit: NumPy's layout spares the swapped one's views
                route = (False, False, False, None)
            else:
                route = (False, blas_swapped(self.A, blas_swap(self.dtype, columns, self.shape[1])),
                         blas_swapped(self.A.T, blas_swap(self.dtype, columns, self.shape[0])), None)
            remember_route(key, route)
        return route

    def _scipy_product(self, M, F, rows: int, name: str, of: str) -> np.ndarray:
        """``M @ F`` by SciPy (M = A or A.T), checked like the kernels' factors."""
        if F.shape[0] != rows:
            raise ValueError(f"{name}: expected {rows} rows ({self.name}'s {of}), got {F.shape[0]}")
        return np.ascontiguousarray(M @ F)

    def _scipy_power_pass(self, Q) -> tuple[np.ndarray, np.ndarray]:
        """``(A @ Q, A.T @ (A @ Q))`` by SciPy's two sparse products."""
        Y = self._scipy_product(self.A, Q, self.shape[1], "Q", "columns")
        return Y, np.ascontiguousarray(self.A.T @ Y)

    def times(self, V) -> np.ndarray:
        """``A @ V`` of any width: the one-pass kernel for sparse A, and for dense A where it
        beats BLAS (``choice.use_kernel``: thin V, C order, AVX2 or better); else BLAS GEMM on
        fastlr's thread count. Either way the result agrees to rounding."""
        if self.sparse:  # matmul picks the kernel or SciPy
            return self.matmul(V)
        threads = get_num_threads()
        kernel, swap, _, vector = self._route("matmul", V.shape[1], threads)
        if kernel:
            return self.matmul(V)
        if vector is not None:
            return vector(0, self.A, V)
        V = np.ascontiguousarray(V, dtype=self.dtype)
        return blas_call(self._blas_count(V.shape[1], threads), blas_product, self.A, V, swap)

    def rtimes(self, W) -> np.ndarray:
        """``A.T @ W`` of any width (see ``times``)."""
        if self.sparse:
            return self.rmatmul(W)
        threads = get_num_threads()
        kernel, _, swap, vector = self._route("rmatmul", W.shape[1], threads)
        if kernel:
            return self.rmatmul(W)
        if vector is not None:
            return vector(1, self.A, W)
        W = np.ascontiguousarray(W, dtype=self.dtype)
        return blas_call(self._blas_count(W.shape[1], threads), blas_product, self.A.T, W, swap)

    def _blas_count(self, k: int, threads: int, sides: int = 1) -> int:
        """The BLAS thread count for BLAS products with dense A and k-column factors (``sides`` = 2: both ways) when
        fastlr runs ``threads`` threads: one thread below SMALL_WORK multiply-adds, ``threads`` otherwise
        (``_work``'s rule, read once: every Python step on this route runs with caches a large GEMM just flushed,
        ~5-60 us each on the Zen 2, which put fastlr's route at 0.98-0.99x NumPy's identical call at 60 columns).
        Set around the call by ``blas_call`` (``blas_limit`` where a library runs another count). The BLAS
        layouts come from ``_route`` (``blas_swap``)."""
        return 1 if threads > 1 and sides * self.shape[0] * self.shape[1] * k < SMALL_WORK else threads

    def power_pass(self, V) -> tuple[np.ndarray, np.ndarray]:
        """``(A V, A^T A V)`` of any width: one fused pass (``power_step``) where the kernel beats
        BLAS (``choice.use_kernel``), else two BLAS products; sparse A: ``power_step``, which picks
        the kernel or SciPy's products."""
        if self.sparse:
            return self.power_step(V)
        threads = get_num_threads()
        route = self._route("gram", V.shape[1], threads)
        if route[0]:
            return self.power_step(V)
        if route[3] is not None:
            return route[3](2, self.A, V)
        V = np.ascontiguousarray(V, dtype=self.dtype)
        return blas_call(self._blas_count(V.shape[1], threads, 2), _blas_power_pass, self.A, V, route)

    def thin_svd(self, B, k: int, driver: str = "gesdd"):
        """``_linalg.thin_svd`` of the tall B = A V, its products with B on fastlr's kernels."""
        def product(X, V):
            return InMemory.wrap(X, name="B", backend=self.backend).times(V)

        return thin_svd(B, k, product, driver)

    def power_steps(self, r: int, n_iter: int, k: int | None = None) -> PowerSteps:
        """The products for ``n_iter`` power steps with r-column V (``Operand.power_steps``).

        Either one pass over A per step (the fused kernel, or two BLAS products where
        BLAS is faster: ``choice.use_kernel``) or, for narrow dense A, the Gram matrix ``G = A^T A``
        (SYRK, computed here once) and products with G; for large float64 A, G formed in float32
        first (``_Gram32Steps``: float64's G where float32's rounding could show). Both round
        alike: a product with A^T A carries an error of order eps * ||A||^2 * ||V|| whichever way it is grouped.
        G is not used when it over- or underflows (entries of A near the limits of
        its dtype): the passes then run on a rescaled V (``scw.power_iterations``).
        """
        k = r if k is None else k
        last = self.last_power_step(k)
        if n_iter >= 3 and self._gram_pays(r, n_iter) and self._gram32_pays():  # >= 3 steps: one is tested
            G32 = _gram(self.A, np.float32)
            if representable(G32, np.float32):  # else over- or underflowed: float64's G below
                steps = _Gram32Steps(self, G32.astype(np.float64), k)
                return PowerSteps(steps.step, steps.last if last is not None else None, k)
        if self._gram_pays(r, n_iter):
            G = _gram(self.A)
            if representable(G, self.dtype):
                if last is not None:
                    last = functools.partial(self._gram_last_step, G=G, k=k)
                tail = (functools.partial(self._gram_ritz_tail, G=G, k=k)
                        if self.dtype == np.float32 and _GRAM_RITZ_TAIL else None)
                return PowerSteps(self._gram_times(G), last, k, tail)  # d x d times d x r: small next to G
        return PowerSteps(self.gram_product, last, k)  # one pass a step: kernel or BLAS by the rule

    def power_product(self, r: int, n_iter: int):
        """``V -> A^T A V`` for r-column V, the cheapest way for n_iter steps (``power_steps``)."""
        return self.power_steps(r, n_iter).step

    def _gram_last_step(self, V, G: np.ndarray, k: int):
        """The last power step after the Gram route (``Operand.last_power_step``): ``G V`` itself,
        one fused pass, or the two passes.

        The Ritz values theta of G over span(V) tell whether G's rounding matters. Rounding of
        size eps * theta_1, spread over d directions, moves direction i by about
        eps * theta_1 / (theta_i sqrt(d)), adding about
        ``eps * theta_1 * sqrt(sum_(i <= k) 1/theta_i / d)`` to the error, against a rank-k error
        of at least ``sqrt(theta_(k+1) + ... + theta_l)``. Below 1e-2 of that (a relative excess
        near 5e-5 at most; bench_svd's matrices at k = 50 give the same excess error either way
        to 2 digits) ``G V`` serves as it is; else
        W = A V X theta^(-1/2), X the Ritz vectors (theta floored at G's rounding), and
        ``A^T W`` is one fused pass over A, or the two passes when a wanted direction lies below
        G's rounding (sigma_k < sqrt(l eps) sigma_1).
        """
        k = min(k, V.shape[1])  # V may hold fewer columns than k (a sketch cut at its rank)
        # An orthonormal basis of span(V) first: Ritz values from the LU basis (condition 10-20) and a
        # float32 G V carry that condition times G's rounding, and chose G V where it did not serve.
        # (QR in V's dtype: orthonormal to its rounding, as the float64 QR cast back to float32 was.)
        V = np.ascontiguousarray(orthonormal(V), dtype=self.dtype)
        GV = self._gram_times(G)(V)  # the fused step's product, returned as it is when its rounding cannot matter
        ritz = ritz_pairs(V, GV, values_only=True)  # the vectors only where the rounding shows
        if ritz is None:  # not finite: the careful two passes
            return self.normalized_power_step(V, k)
        theta = ritz[0]  # ascending
        total = float(np.trace(G, dtype=np.float64))  # ||A||_F^2: the rank-k error in span(V) follows
        if not rounding_shows(theta, k, G.shape[0], self.dtype, total):
            return GV
        ritz = ritz_pairs(V, GV)
        if ritz is None:
            return self.normalized_power_step(V, k)
        theta, X = ritz
        floor = max(float(theta[-1]), np.finfo(np.float64).tiny) * V.shape[1] * float(np.finfo(self.dtype).eps)
        kept = np.maximum(theta, floor)
        if theta[-k] < floor:  # a wanted direction is below G's rounding: the Ritz values cannot scale it
            return self.normalized_power_step(V, k)
        M = X / np.sqrt(kept)
        return self.gram_product(np.ascontiguousarray(V @ M, dtype=self.dtype))

    def _gram_ritz_tail(self, V, G: np.ndarray, k: int):
        """The last power steps of the float32 Gram route as one Rayleigh-Ritz step (``PowerSteps.tail``):
        the top-k Ritz vectors V_k (d x k, orthonormal, float32) of G over ``span([V, G V])`` (V: d x l,
        orthonormal), or None where that does not serve (the caller then takes the remaining steps as before).

        The space holds ``G V``, the next power step's basis, so V_k is at least as good as one more
        step, and usually far better (two blocks of a Krylov space): after n_iter - 2 steps it was
        more accurate than scikit-learn's n_iter on every spectrum tried (1/i, 1/sqrt(i), i^-0.2,
        0.9^i, 10:1 geometric and linear, k = 20-100, n_iter 4 and 7, worst of 10 seeds; bench/README.md,
        thirteenth session), for two products with G where the steps took three, and B = A V_k has
        k columns instead of l. G's rounding (about eps * theta_1, float32) moves the Ritz vectors:
        None where it could show in the rank-k error (``rounding_shows``: wanted directions under it,
        or no tail to hide it, as for exactly low-rank A; or mixing directions k and k + 1 across
        their gap, at most ``min(e^2 / gap, gap)`` added to the squared error, above 1e-4 of it), or
        where ``[V, G V]`` is numerically rank-deficient (span(V) nearly invariant) or not finite.
        """
        d, l = V.shape
        k = min(k, l)
        if 2 * l > d:
            return None
        times = self._gram_times(G)
        Q = np.ascontiguousarray(V, dtype=np.float32)
        Z = times(Q)
        z = peak(Z)
        if not (np.isfinite(z) and z > 0.0):
            return None
        # The part of G Q outside span(Q), projected twice (once loses orthogonality where G Q lies
        # mostly in span(Q), as it does along converged directions); its QR gives the second block W.
        # Where that part is only rounding, W's columns are other directions, which the Rayleigh-Ritz
        # step may use or not; K = [Q, W] is orthonormal up to float32's rounding divided by the part's
        # size, which the generalized eigenproblem (K^T K) absorbs; a W leaning into span(Q) is refused.
        R = Z - Q @ (Q.T @ Z)
        R -= Q @ (Q.T @ R)
        W = np.ascontiguousarray(orthonormal(R, overwrite=True), dtype=np.float32)
        QW = (Q.T @ W).astype(np.float64)  # Q^T Q and W^T W are I to float32's rounding (QR bases)
        if not float(np.abs(QW).max()) <= 0.1:
            return None
        Y = times(W)
        # K^T G K in float64 (G's own rounding, not the sums'), by blocks: Q^T G W = Z^T W
        Q64, W64, Z64 = Q.astype(np.float64), W.astype(np.float64), Z.astype(np.float64)
        H = np.empty((2 * l, 2 * l))
        H[:l, :l] = Q64.T @ Z64
        H[l:, :l] = W64.T @ Z64
        H[:l, l:] = H[l:, :l].T
        H[l:, l:] = W64.T @ Y.astype(np.float64)
        C = np.eye(2 * l)
        C[:l, l:] = QW
        C[l:, :l] = QW.T
        try:
            theta, X = scipy.linalg.eigh((H + H.T) / 2, C, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        total = float(np.trace(G, dtype=np.float64))
        if rounding_shows(theta, k, d, np.float32, total) or not _ritz_gap_serves(theta, k, total):
            return None
        Xk = np.ascontiguousarray(X[:, ::-1][:, :k], dtype=np.float32)
        return np.ascontiguousarray(Q @ Xk[:l] + W @ Xk[l:])

    def _gram_times(self, G: np.ndarray):
        """``V -> G V`` for the Gram matrix G (d x d, C order) by ``times``: the one-pass kernel where
        the product choice says it beats BLAS (1080 x 1080 by 1080 x 60 at x86-64-v4: float32 1.30 vs
        1.58 ms, float64 2.61 vs 3.91 ms against OpenBLAS's SkylakeX GEMM). On one thread, as BLAS ran
        them before: G sits in cache and a product takes 1-3 ms, and a parallel region per step on a
        busy 2-core machine waited for its second thread (5760 x 1080 float32, k = 50, fastlr at 2
        threads, load ~2: 175 ms against 110 ms at 1; with the products on one thread 99 vs 98 ms)."""
        times = InMemory.wrap(G, name="A^T A", backend=self.backend).times

        def product(V):
            with thread_limit(1):
                return times(V)

        return product

    def _gram32_pays(self) -> bool:
        """Whether float64 A forms its Gram matrix in float32 first (``_Gram32Steps``)."""
        n, d = self.shape
        return not self.sparse and self.dtype == np.float64 and float(n) * d * d >= GRAM32_MIN_WORK

    def _gram_pays(self, r: int, n_iter: int) -> bool:
        """Whether n_iter power steps with r columns are cheaper through A^T A."""
        return not self.sparse and gram_route_pays(*self.shape, r, n_iter)


class _Gram32Steps:
    """Power steps of float64 A on its Gram matrix formed in float32 (G32: A^T A from a float32
    copy of each row block, widened to float64 for the products), switching to the float64 Gram
    matrix where G32's rounding could show in the result.

    SYRK is most of the float64 Gram route (5760 x 1080, k = 50: 139 of ~190 ms) and float32's
    runs at twice the rate. The products G V stay float64: float32 products added their own
    rounding at every step (bench 1/i, k = 50: 4.599e-5 vs 4.593e-5 excess; 4.593e-5 in float64).
    G32 rounds to about eps32 * theta_1, which moves the rank-k basis by about
    ``e = eps32 * theta_1 * sqrt(sum_(i <= k) 1/theta_i / d)`` (theta: the Ritz values over span(V)),
    a deficit of about e^2 in the captured ||A V||^2. It serves while e^2 stays below 1e-3 of the
    deficit subspace iteration has left (the excess then grows by 0.1% at most): estimated from the
    growth of the top-k Ritz sum at the last two steps, ``D = g_j rho^2``, rho = g_j / g_(j-1) (the
    deficit shrinks by about rho a step; one more step follows the last test). Also
    ``rounding_shows`` with float32's eps (wanted directions under G32's rounding, no tail).
    1/i^2 at 4000 x 300, k = 10 needs this: the share-of-tail test alone kept G32 at 2.6e-11
    excess where the float64 route converges to 2e-17.

    From the third step on (so only for runs of 3 steps or more), a step whose test fails switches to
    the float64 Gram matrix for good and catches up: its product is taken after as many float64 steps as
    were taken so far on G32 (from V, whose resolved directions are ahead and the rest rounding noise),
    so the run takes the float64 route's n_iter + 1 steps on G. Exactly low-rank A, steep spectra and
    converged ones switch (the float32 SYRK is then extra: about +50% of the route's time). The final B
    = A V and its thin SVD are float64's (``basis_factors``).
    """

    def __init__(self, op: "InMemory", G: np.ndarray, k: int):
        self.op, self.G, self.k = op, G, k
        self.times = op._gram_times(G)
        self.single = True  # still on G32
        self.calls = 0
        self.sums = []  # top-k Ritz sums, one a step
        self.total = float(np.trace(G, dtype=np.float64))  # ||A||_F^2, for rounding_shows's rank-k error

    def step(self, V) -> np.ndarray:
        self.calls += 1
        Z = self.times(V)
        if not self.single or self._serves(V, Z):
            return Z
        return self._switch(V)

    def last(self, V) -> np.ndarray:
        """``Operand.last_power_step`` (float64 asks for it only where its own fused rounding shows,
        which G32 cannot serve): the float64 Gram route's last step, after catching up."""
        self.calls += 1
        if self.single:
            V = self._catch_up(V)
        return self.op._gram_last_step(V, G=self.G, k=self.k)

    def _serves(self, V, Z) -> bool:
        ritz = ritz_pairs(V, Z, values_only=True)
        if ritz is None:
            return False
        theta = ritz[0]
        k = min(self.k, theta.size)
        self.sums.append(float(np.sum(theta[-k:])))
        if self.calls < 3:  # the test needs two growths of the Ritz sum
            return True
        d = self.G.shape[0]
        if rounding_shows(theta, k, d, np.float32, self.total):
            return False
        g0, g1 = self.sums[-2] - self.sums[-3], self.sums[-1] - self.sums[-2]
        if not (g0 > 0.0 and g1 > 0.0):  # converged to rounding (or not growing): G32's rounding would show
            return False
        rho = min(g1 / g0, 0.99)
        top = float(theta[-1])
        kept = np.maximum(theta[-k:], top * theta.size * _EPS32)
        e2 = (_EPS32 * top) ** 2 * float(np.sum(1.0 / kept)) / d
        return e2 <= GRAM32_SHARE * g1 * rho * rho

    def _switch(self, V) -> np.ndarray:
        return self.times(self._catch_up(V))

    def _catch_up(self, V) -> np.ndarray:
        """G64 in place of G32, and V after calls - 1 steps on it (LU between steps), scaled back to
        V's magnitude by a power of two (the caller's scale tracking expects Z ~ G V)."""
        self.G = _gram(self.op.A)
        self.times = self.op._gram_times(self.G)
        self.single = False
        W = V
        for _ in range(self.calls - 1):
            W = normalize(self.times(W), "LU")
        v, w = peak(V), peak(W)
        if w > 0.0 and v > 0.0 and np.isfinite(w):
            W = W * (power_of_two(v) / power_of_two(w))
        return np.ascontiguousarray(W)


_EPS32 = float(np.finfo(np.float32).eps)
#: ``InMemory._gram_ritz_tail`` on (False: the float32 Gram route takes every step, as before the thirteenth session)
_GRAM_RITZ_TAIL = True


def _ritz_gap_serves(theta: np.ndarray, k: int, total: float) -> bool:
    """Whether float32 rounding of G (e = eps32 * theta_1) cannot show in the top-k Ritz space: mixing
    directions k and k + 1 (Ritz values theta, ascending) adds at most ``min(e^2 / gap, gap)`` to the
    squared rank-k error, which must stay below 1e-4 of it (``total - sum of the top k``)."""
    desc = theta[::-1]
    top = float(desc[0])
    err2 = trace_tail2(theta, k, total, _EPS32)
    if not (top > 0.0 and err2 > 0.0):  # no tail, or it cancels: rounding could show
        return False
    e = _EPS32 * top
    gap = float(desc[k - 1] - desc[k]) if k < desc.size else float(desc[k - 1])
    added = min(e * e / gap, gap) if gap > 0.0 else e
    return added <= 1e-4 * err2


def gram_route_pays(n: int, d: int, r: int, steps: int) -> bool:
    """Whether ``steps`` products ``A^T A V`` (A n x d, V d x r) are cheaper through the Gram matrix."""
    return steps >= 2 and d <= n and d <= GRAM_WIDTH * r * steps


def rounding_shows(theta: np.ndarray, k: int, d: int, dtype, total: float | None = None,
                   tail2: float | None = None) -> bool:
    """Whether the rounding of ``A^T A V`` (eps * theta_1, theta the ascending Ritz values over
    span(V), d x l) shows in the rank-k error: its excess, about
    ``eps * theta_1 * sqrt(sum_(i <= k) 1/theta_i / d)``, above 1e-2 of that error.

    The error is at least ``sqrt(theta_(k+1) + ... + theta_l)`` over the Ritz values above
    10 l eps theta_1 (below that they are the product's rounding, measured up to 20 eps theta_1,
    not tail); with ``total`` = ||A||_F^2 (the Gram route's trace; same units as theta) it is
    ``sqrt(total - sum_(i <= k) theta_i)``, where that does not cancel (above ``sqrt(100 eps total)``);
    ``tail2``: a squared rank-k error known otherwise (the Krylov finder's Ritz values of ``(A K)^T (A K)``,
    rounded to B's rounding, not the product's). An exactly low-rank A has no tail: counting its rounding as one
    kept the fused product for a rank-10 float64 matrix, 1e-10 relative excess against
    scikit-learn's 1e-14.
    """
    eps = float(np.finfo(dtype).eps)
    k = min(k, theta.size)
    top = float(theta[-1])
    if not top > 0.0:  # A V = 0: nothing to round
        return False
    floor = top * theta.size * eps
    kept = np.maximum(theta, floor)
    rounding = eps * top * float(np.sqrt(np.sum(1.0 / kept[-k:]) / d))
    tail = ritz_tail(theta, k, eps)
    if total is not None:
        tail = max(tail, float(np.sqrt(trace_tail2(theta, k, total, eps))))
    if tail2 is not None:
        tail = max(tail, float(np.sqrt(tail2)))
    return rounding > 1e-2 * tail


def trace_tail2(theta: np.ndarray, k: int, total: float, eps: float) -> float:
    """The squared rank-k error from the Gram route's trace: ``total`` (||A||_F^2) minus the k
    largest Ritz values (theta ascending), or 0.0 where that difference cancels (not above
    ``100 eps total``)."""
    err2 = total - float(np.sum(theta[-k:]))
    return err2 if err2 > 100 * eps * total else 0.0


def ritz_tail(theta: np.ndarray, k: int, eps: float) -> float:
    """The rank-k error seen in the Ritz values theta (ascending, r of them): the square root of
    those beyond the k largest that lie above the product's rounding, 10 r eps theta_1 (rounding
    measured up to 20 eps theta_1 would pass for tail on exactly low-rank input)."""
    tail = theta[: max(theta.size - k, 0)]
    return float(np.sqrt(np.sum(tail[tail > 10 * theta.size * eps * float(theta[-1])])))


def representable(Z: np.ndarray, dtype) -> bool:
    """Z is finite and its largest entry is above sqrt(tiny): products formed without scaling
    neither overflowed nor lost precision to underflow."""
    z = peak(Z)
    return bool(np.isfinite(z)) and z >= np.sqrt(np.finfo(dtype).tiny)


def _gram(A: np.ndarray, dtype=None) -> np.ndarray:
    """A^T A for dense A: SYRK over row blocks, summed, on fastlr's threads.

    BLAS runs on one thread and fastlr runs contiguous row ranges in parallel
    itself, so no BLAS thread pool spins against fastlr's OpenMP team
    (measured: a 2-thread OpenBLAS SYRK ran slower than 1 thread right after the
    kernels). Each range is a loop of SYRK calls of about _GRAM_BLOCK_FLOPS, so
    an interrupt stops the work within one call (a single SYRK of a
    20000 x 5000 matrix took 14-55 s to notice Ctrl-C). Over- and underflow are
    left for the caller to check (``representable``). ``dtype``: each row block cast to it
    first (float32 for float64 A: ``_Gram32Steps``).
    """
    n, d = A.shape
    step = max(_GRAM_MIN_ROWS, int(_GRAM_BLOCK_FLOPS // max(d * d, 1)))
    threads = min(get_num_threads(), max(1, n // _GRAM_MIN_ROWS))
    edges = np.linspace(0, n, threads + 1).astype(int)
    stop = threading.Event()

    def gram(lo: int, hi: int):
        G = None
        for b in range(lo, hi, step):
            if stop.is_set():
                return None
            rows = A[b:min(b + step, hi)]
            block = _syrk(rows if dtype is None else _cast(rows, dtype))
            if G is None:
                G = block
            else:
                with np.errstate(over="ignore", invalid="ignore"):  # inf + -inf: NaN, seen by representable
                    G += block
        return G

    with blas_limit(1):
        if threads == 1:
            return gram(0, n)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(gram, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
            try:
                # a range that raised (KeyboardInterrupt in one SYRK call) stops the others at their next block now:
                # waiting on the futures in order would first let an earlier range finish all of its blocks
                if wait(futures, return_when=FIRST_EXCEPTION).not_done:
                    stop.set()
                parts = [f.result() for f in futures]
            except BaseException:  # Ctrl-C while waiting, or the range's own error (re-raised here)
                stop.set()
                raise
    G = parts[0]
    with np.errstate(over="ignore", invalid="ignore"):
        for part in parts[1:]:
            G += part
    return G


def _cast(X: np.ndarray, dtype) -> np.ndarray:
    """X in dtype, one row block at a time (no copy of all of A); overflow gives inf, which the
    caller's ``representable`` test on G sees."""
    with np.errstate(over="ignore", under="ignore"):
        return X.astype(dtype)


def _syrk(X: np.ndarray) -> np.ndarray:
    # Per thread; checked by the caller (representable). Overflow may come out as inf or as NaN
    # (OpenBLAS's Haswell SYRK gave NaN, "invalid value", where its SkylakeX kernel gave inf).
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return X.T @ X  # NumPy calls SYRK for a matrix times its own transpose (and releases the GIL)
