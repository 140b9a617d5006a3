"""Numba one-pass product kernels (see csrc/include/fastlr/products.hpp for the contract).

Each kernel is a "row pass" over A: for row a_i, optionally y_i = a_i V
(forward) and Z += a_i^T w_i (backward), where w_i is a given row or the y_i
just computed (power_step). Threads take contiguous row chunks; with a backward
half each chunk accumulates Z in its own d x k buffer, summed in chunk order.
Dense A: the chunks are fixed by the problem (``sum_chunks``), not the thread
count, so Z is bit-identical at every thread count (from 2048 rows on, ``_parts``).
CSR A: a chunk a thread (deterministic for a given thread count).
"""

import numba as nb
import numpy as np
from numba import prange

from ..reference.products import check_csr, check_dense, check_factor, check_pair
from .._errors import BAD_INDEX, BAD_INDPTR, raise_for
from ._util import LazyKernel, even_chunks, kernel, nnz_chunks, readonly as ro, sum_chunks, threaded, useful_threads

__all__ = [
    "matmul",
    "matmul_csr",
    "rmatmul",
    "rmatmul_csr",
    "gd_products",
    "gd_products_csr",
    "power_step",
    "power_step_csr",
    "gram_product",
    "gram_product_csr",
]

_i8 = nb.int64
_b1 = nb.boolean
_jit = dict(nogil=True, cache=True, parallel=True, fastmath=False)

#: Rows of an F-ordered A copied at a time into a row-major buffer.
_GATHER_ROWS = 32


@nb.njit(nogil=True, cache=True)
def _rows(X, i_base, b, e, V, W, Y, z, y, fwd, bwd, use_y):
    """Rows b..e-1 of the row-major block X (row r of X is row i_base + r of A)."""
    d = X.shape[1]
    k = y.shape[0]
    for r in range(b, e):
        i = i_base + r
        if fwd:
            y[:] = 0
            for j in range(d):
                a = X[r, j]
                for c in range(k):
                    y[c] += a * V[j, c]
            for c in range(k):
                Y[i, c] = y[c]
        if bwd:
            for j in range(d):
                a = X[r, j]
                if use_y:
                    for c in range(k):
                        z[j, c] += a * y[c]
                else:
                    for c in range(k):
                        z[j, c] += a * W[i, c]


def _dense_signature(layout):
    def template(T, I):
        A = ro(T[:, ::1] if layout == "C" else T[::1, :])
        M = T[:, ::1]
        return nb.void(A, ro(M), ro(M), M, ro(_i8[::1]), T[:, :, ::1], _i8, _b1, _b1, _b1)

    return template


def _dense_pass_impl(A, V, W, Y, bounds, zacc, k, fwd, bwd, use_y):
    parts = len(bounds) - 1
    for t in prange(parts):
        y = np.zeros(k, A.dtype)
        _rows(A, 0, bounds[t], bounds[t + 1], V, W, Y, zacc[t], y, fwd, bwd, use_y)


def _dense_pass_f_impl(A, V, W, Y, bounds, zacc, k, fwd, bwd, use_y):
    """Column-major A: copy a few rows at a time so every row is read contiguously."""
    d = A.shape[1]
    parts = len(bounds) - 1
    for t in prange(parts):
        y = np.zeros(k, A.dtype)
        buf = np.empty((_GATHER_ROWS, d), A.dtype)
        for g0 in range(bounds[t], bounds[t + 1], _GATHER_ROWS):
            g1 = min(g0 + _GATHER_ROWS, bounds[t + 1])
            for j in range(d):
                for r in range(g1 - g0):
                    buf[r, j] = A[g0 + r, j]
            _rows(buf, g0, 0, g1 - g0, V, W, Y, zacc[t], y, fwd, bwd, use_y)


_dense_pass_c = LazyKernel(_dense_pass_impl, _dense_signature("C"), T="A", **_jit)
_dense_pass_f = LazyKernel(_dense_pass_f_impl, _dense_signature("F"), T="A", **_jit)


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), ro(T[:, ::1]), ro(T[:, ::1]), T[:, ::1], ro(_i8[::1]),
                     T[:, :, ::1], _i8, _b1, _b1, _b1),
    T="data",
    I="indices",
    **_jit,
)
def _csr_pass(indptr, indices, data, V, W, Y, bounds, zacc, k, fwd, bwd, use_y):
    d = zacc.shape[1] if bwd else V.shape[0]
    nnz = indptr[len(indptr) - 1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        y = np.zeros(k, data.dtype)
        z = zacc[t]
        for i in range(bounds[t], bounds[t + 1]):
            s, f = indptr[i], indptr[i + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            ok = True
            for p in range(s, f):
                if indices[p] < 0 or indices[p] >= d:
                    ok = False
            if not ok:
                err[t] = BAD_INDEX
                break
            if fwd:
                y[:] = 0
                for p in range(s, f):
                    x = data[p]
                    c0 = indices[p]
                    for c in range(k):
                        y[c] += x * V[c0, c]
                for c in range(k):
                    Y[i, c] = y[c]
            if bwd:
                for p in range(s, f):
                    x = data[p]
                    c0 = indices[p]
                    if use_y:
                        for c in range(k):
                            z[c0, c] += x * y[c]
                    else:
                        for c in range(k):
                            z[c0, c] += x * W[i, c]
    return err.max() if parts else 0


def _empty(dtype):
    return np.zeros((0, 0), dtype=dtype)


def _reduce(zacc):
    return zacc[0] if zacc.shape[0] == 1 else zacc.sum(axis=0)


def _parts(fixed: int, work: int) -> int:
    """Row chunks of a pass: with a backward half, ``fixed`` (sum_chunks: a function of the problem, so Z
    does not depend on the thread count); without one, or for a Z too wide for one chunk to share it
    (``fixed`` 1), a chunk a thread (``useful_threads``), whose Z then depends on the thread count."""
    return fixed if fixed > 1 else useful_threads(work // 8)


def _one_by_one(run, bounds, d, k, dtype):
    """One thread: the chunks' sums one after another, each added to the first's as ``_reduce`` adds
    them (the same sums, in the same order), in two d x k buffers rather than one a chunk (5 chunks'
    buffers cost 5760 x 1080 float64 A^T (A V) at l = 20 10% in one run on a Zen 2). ``run(b, z)``: the
    pass over the rows of bounds b into z (1 x d x k)."""
    acc = np.zeros((1, d, k), dtype=dtype)
    nxt = np.zeros((1, d, k), dtype=dtype)
    run(bounds[:2], acc)
    for c in range(1, len(bounds) - 1):
        run(bounds[c:c + 2], nxt)
        acc += nxt
        nxt[:] = 0
    return acc[0]


def _dense(A, V, W, k, fwd, bwd, use_y):
    n, d = A.shape
    work = n * d * k * ((1 if fwd else 0) + (1 if bwd else 0))
    parts = _parts(sum_chunks(n, n * d * k, d * k) if bwd else 1, work)
    Y = np.empty((n, k) if fwd else (0, 0), dtype=A.dtype)
    kernel = _dense_pass_c if A.flags.c_contiguous else _dense_pass_f
    bounds = even_chunks(n, parts)
    if bwd and parts > 1 and useful_threads(work // 8) == 1:
        return Y, _one_by_one(lambda b, z: kernel(A, V, W, Y, b, z, k, fwd, bwd, use_y), bounds, d, k, A.dtype)
    zacc = np.zeros((parts, d, k) if bwd else (parts, 0, 0), dtype=A.dtype)
    kernel(A, V, W, Y, bounds, zacc, k, fwd, bwd, use_y)
    return Y, (_reduce(zacc) if bwd else None)


def _csr(indptr, indices, data, V, W, n, d, k, fwd, bwd, use_y):
    if indptr[0] != 0 or indptr[-1] != len(indices):
        raise_for(BAD_INDPTR)
    work = len(data) * k * ((1 if fwd else 0) + (1 if bwd else 0)) + n * k
    # A chunk a thread: Z depends on the thread count. Fixed chunks (sum_chunks) at one thread, 1M x 500
    # at 500k nonzeros, float64 l = 20, Zen 2: 0.97-0.98x with a buffer a chunk, 1.02x one by one (one
    # run each); not kept while that is not settled (bench/README.md, eighteenth session, HD).
    parts = useful_threads(work // 8)
    Y = np.empty((n, k) if fwd else (0, 0), dtype=data.dtype)
    bounds = nnz_chunks(indptr, parts)
    zacc = np.zeros((parts, d, k) if bwd else (parts, 0, 0), dtype=data.dtype)
    raise_for(_csr_pass(indptr, indices, data, V, W, Y, bounds, zacc, k, fwd, bwd, use_y))
    return Y, (_reduce(zacc) if bwd else None)


@threaded
def matmul(A, V):
    """A @ V for dense A (C or F order)."""
    check_dense(A)
    k = check_factor(V, "V", A.shape[1], "A's columns", A.dtype)
    return _dense(A, V, _empty(A.dtype), k, True, False, False)[0]


@threaded
def rmatmul(A, W):
    """A.T @ W for dense A, one pass."""
    check_dense(A)
    k = check_factor(W, "W", A.shape[0], "A's rows", A.dtype)
    return _dense(A, _empty(A.dtype), W, k, False, True, False)[1]


@threaded
def gd_products(A, U, V):
    """(A @ V, A.T @ U) in one pass over dense A."""
    check_dense(A)
    k = check_pair(U, V, A.shape[0], A.shape[1], A.dtype)
    return _dense(A, V, U, k, True, True, False)


@threaded
def power_step(A, Q):
    """(A @ Q, A.T @ (A @ Q)) in one pass over dense A."""
    check_dense(A)
    k = check_factor(Q, "Q", A.shape[1], "A's columns", A.dtype)
    return _dense(A, Q, _empty(A.dtype), k, True, True, True)


@threaded
def matmul_csr(indptr, indices, data, V):
    """A @ V for CSR A (len(indptr) - 1 rows, V.shape[0] columns)."""
    n = check_csr(indptr, indices, data)
    d = V.shape[0] if V.ndim == 2 else -1
    k = check_factor(V, "V", d, "A's columns", data.dtype)
    return _csr(indptr, indices, data, V, _empty(data.dtype), n, d, k, True, False, False)[0]


@threaded
def rmatmul_csr(indptr, indices, data, W, d):
    """A.T @ W for CSR A with d columns."""
    n = check_csr(indptr, indices, data)
    if d < 0:
        raise ValueError(f"d: must be >= 0, got {d}")
    k = check_factor(W, "W", n, "A's rows", data.dtype)
    return _csr(indptr, indices, data, _empty(data.dtype), W, n, d, k, False, True, False)[1]


@threaded
def gd_products_csr(indptr, indices, data, U, V):
    """(A @ V, A.T @ U) in one pass over CSR A."""
    n = check_csr(indptr, indices, data)
    d = V.shape[0] if V.ndim == 2 else -1
    k = check_pair(U, V, n, d, data.dtype)
    return _csr(indptr, indices, data, V, U, n, d, k, True, True, False)


@threaded
def power_step_csr(indptr, indices, data, Q):
    """(A @ Q, A.T @ (A @ Q)) in one pass over CSR A."""
    n = check_csr(indptr, indices, data)
    d = Q.shape[0] if Q.ndim == 2 else -1
    k = check_factor(Q, "Q", d, "A's columns", data.dtype)
    return _csr(indptr, indices, data, Q, _empty(data.dtype), n, d, k, True, True, True)


def gram_product(A, Q):
    """A.T @ (A @ Q) in one pass over dense A (power_step's Z; A @ Q is computed, not returned)."""
    return power_step(A, Q)[1]


def gram_product_csr(indptr, indices, data, Q):
    """A.T @ (A @ Q) in one pass over CSR A (power_step_csr's Z)."""
    return power_step_csr(indptr, indices, data, Q)[1]
