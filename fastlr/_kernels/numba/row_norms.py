"""Numba squared-row-norm kernels (see csrc/include/fastlr/row_norms.hpp for the contract)."""

import numba as nb
import numpy as np
from numba import prange

from .._errors import BAD_INDEX, BAD_INDPTR, check_compressed, raise_for
from ._util import even_chunks, kernel, nnz_chunks, readonly as ro, threaded, useful_threads
from .countsketch import countsketch_dense, countsketch_seeded_dense

__all__ = ["row_squared_norms_dense", "row_squared_norms_csr", "row_squared_norms_csc", "countsketch_dense_energy",
           "countsketch_seeded_dense_energy"]

_i8 = nb.int64
_f8 = nb.float64
_jit = dict(nogil=True, cache=True, parallel=True, fastmath=False)


@nb.njit(nogil=True, cache=True, inline="always")
def _sumsq(x, s, f):
    """The squares of x[s:f] in float64: four partial sums (groups of four entries), then the tail."""
    s0 = s1 = s2 = s3 = 0.0
    p = s
    while p + 4 <= f:
        v0, v1, v2, v3 = _f8(x[p]), _f8(x[p + 1]), _f8(x[p + 2]), _f8(x[p + 3])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        p += 4
    while p < f:
        v = _f8(x[p])
        s0 += v * v
        p += 1
    return (s0 + s1) + (s2 + s3)


@kernel(lambda T, I: nb.void(ro(T[:, ::1]), ro(_i8[::1]), _f8[::1]), T="A", **_jit)
def _rows(A, bounds, out):
    """Row-major A: each row's squares (_sumsq)."""
    d = A.shape[1]
    for t in prange(len(bounds) - 1):
        for i in range(bounds[t], bounds[t + 1]):
            out[i] = _sumsq(A[i], 0, d)


@kernel(lambda T, I: nb.void(ro(T[::1, :]), ro(_i8[::1]), _f8[::1]), T="A", **_jit)
def _cols(A, bounds, out):
    """Column-major A: chunk t of rows sums its squares over the columns in order."""
    d = A.shape[1]
    for t in prange(len(bounds) - 1):
        b, e = bounds[t], bounds[t + 1]
        for i in range(b, e):
            out[i] = 0.0
        j = 0
        while j + 4 <= d:  # four columns a pass: one load and store of the sums (the same additions in order)
            for i in range(b, e):
                v0, v1, v2, v3 = _f8(A[i, j]), _f8(A[i, j + 1]), _f8(A[i, j + 2]), _f8(A[i, j + 3])
                out[i] = (((out[i] + v0 * v0) + v1 * v1) + v2 * v2) + v3 * v3
            j += 4
        while j < d:
            for i in range(b, e):
                v = _f8(A[i, j])
                out[i] += v * v
            j += 1


@kernel(lambda T, I: _i8(ro(I[::1]), ro(T[::1]), ro(_i8[::1]), _f8[::1]), T="data", I="indptr", **_jit)
def _csr(indptr, data, bounds, out):
    nnz = len(data)
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        for i in range(bounds[t], bounds[t + 1]):
            s, f = indptr[i], indptr[i + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            out[i] = _sumsq(data, s, f)
    return err.max()


@kernel(lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), _f8[::1]), T="data", I="indices", cache=True,
        nogil=True)
def _csc(indptr, indices, data, out):
    """One thread: the squares added into their rows entry by entry in storage order."""
    n = len(out)
    nnz = len(data)
    out[:] = 0.0
    for j in range(len(indptr) - 1):
        s, f = indptr[j], indptr[j + 1]
        if s > f or s < 0 or f > nnz:
            return BAD_INDPTR
        for p in range(s, f):
            i = indices[p]
            if i < 0 or i >= n:
                return BAD_INDEX
            v = _f8(data[p])
            out[i] += v * v
    return 0


@threaded
def row_squared_norms_dense(A):
    """||A[i, :]||^2 (float64, n) for dense A (C- or F-contiguous float32/float64), summed in float64."""
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D array, got ndim={A.ndim}")
    n, d = A.shape
    out = np.empty(n)
    bounds = even_chunks(n, useful_threads(n * d // 4))
    if A.flags.c_contiguous:
        _rows(A, bounds, out)
    elif A.flags.f_contiguous:
        _cols(A, bounds, out)
    else:
        raise ValueError("A: array must be C- or F-contiguous")
    return out


@threaded
def row_squared_norms_csr(indptr, indices, data, n):
    """The squares of each row's stored entries summed (float64, n) for CSR A with n rows."""
    check_compressed(indptr, indices, data, n)
    out = np.empty(n)
    raise_for(_csr(indptr, data, nnz_chunks(indptr, useful_threads((len(data) + n) // 4)), out))
    return out


def row_squared_norms_csc(indptr, indices, data, n):
    """The squares of each row's stored entries summed (float64, n) for CSC A with n rows."""
    check_compressed(indptr, indices, data, len(indptr) - 1)
    out = np.empty(n)
    raise_for(_csc(indptr, indices, data, out))
    return out


# The fused pass of the compiled core composed of the two kernels here (two passes over A): Numba is the fallback
# backend, and a fused loop would be a second copy of the sketch's row loop.
def countsketch_dense_energy(A, rows, values, m):
    """(countsketch_dense(A, rows, values, m), row_squared_norms_dense(A)), in two passes over A."""
    return countsketch_dense(A, rows, values, m), row_squared_norms_dense(A)


def countsketch_seeded_dense_energy(A, seed, m, start=0):
    """(countsketch_seeded_dense(A, seed, m, start), row_squared_norms_dense(A)), in two passes over A."""
    return countsketch_seeded_dense(A, seed, m, start), row_squared_norms_dense(A)
