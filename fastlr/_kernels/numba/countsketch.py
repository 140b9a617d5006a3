"""Numba CountSketch kernels (see csrc/include/fastlr/countsketch.hpp for the contract)."""

import numba as nb
import numpy as np
from numba import prange

from .._errors import BAD_INDEX, BAD_INDPTR, BAD_ROW, check_compressed, check_matching, raise_for
from ._util import even_chunks, kernel, nnz_chunks, readonly as ro, sum_chunks, threaded, useful_threads

__all__ = [
    "countsketch_hash",
    "countsketch_dense",
    "countsketch_csr",
    "countsketch_csc",
    "countsketch_gather_dot",
    "countsketch_gather_dot_csr",
    "countsketch_seeded_dense",
    "countsketch_seeded_csr",
    "countsketch_seeded_csc",
]

_i8 = nb.int64
_jit = dict(nogil=True, cache=True, parallel=True, fastmath=False)


_u8 = nb.uint64


@nb.njit(nogil=True, cache=True)  # no signature: compiled on first use, as the kernels
def _mix64(z):
    """SplitMix64's finalizer (as csrc/include/fastlr/countsketch.hpp's detail::mix64)."""
    z = (z ^ (z >> _u8(30))) * _u8(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _u8(27))) * _u8(0x94D049BB133111EB)
    return z ^ (z >> _u8(31))


@kernel(lambda T, I: nb.void(_u8, _u8, _u8, ro(_i8[::1]), _i8[::1], T[::1]), T="signs", **_jit)
def _hash(key, m, start, bounds, rows, signs):
    """Columns start + i of chunk t of [0, len(rows)), as countsketch_hash in the C++ kernels."""
    golden = _u8(0x9E3779B97F4A7C15)
    for t in prange(len(bounds) - 1):
        for i in range(bounds[t], bounds[t + 1]):
            z = _mix64(key + (start + _u8(i) + _u8(1)) * golden)
            rows[i] = nb.int64(((z >> _u8(32)) * m) >> _u8(32))
            signs[i] = -1.0 if z & _u8(1) else 1.0


@kernel(lambda T, I: _i8(ro(T[:, ::1]), ro(_i8[::1]), ro(T[::1]), ro(_i8[::1]), T[:, :, ::1]), T="A", **_jit)
def _sketch_rows(A, rows, values, bounds, acc):
    """Row-major A: chunk t of rows accumulates into acc[t] (m x d)."""
    d = A.shape[1]
    m = acc.shape[1]
    parts = acc.shape[0]
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        o = acc[t]
        for i in range(bounds[t], bounds[t + 1]):
            r = rows[i]
            if r < 0 or r >= m:
                err[t] = BAD_ROW
                break
            v = values[i]
            for j in range(d):
                o[r, j] += v * A[i, j]
    return err.max()


_RUN_SEG = 256  # rows per run-or-scatter decision of _sketch_cols (kRunSeg in countsketch.hpp)
_RUN_PROBE = 32  # the first rows of a segment, whose runs decide (kRunProbe)


@nb.njit(nogil=True, cache=True)
def _run_flags(rows, m):
    """(flags, ok): flags[s] = 1 when the first _RUN_PROBE rows of segment s (_RUN_SEG rows) change value
    less than once per 3 rows (as mark_runs in countsketch.hpp); ok is False when a row lies outside [0, m)."""
    n = len(rows)
    flags = np.zeros((n + _RUN_SEG - 1) // _RUN_SEG, np.uint8)
    for q in range(len(flags)):
        s0 = q * _RUN_SEG
        p = min(n - s0, _RUN_PROBE)
        changes = 0
        for i in range(s0 + 1, s0 + p):
            changes += rows[i] != rows[i - 1]
        flags[q] = 3 * changes < p
    ok = True
    for i in range(n):
        ok &= (rows[i] >= 0) & (rows[i] < m)
    return flags, ok


@kernel(lambda T, I: _i8(ro(T[::1, :]), ro(_i8[::1]), ro(T[::1]), ro(_i8[::1]), T[:, ::1]), T="A", **_jit)
def _sketch_cols(A, rows, values, bounds, out):
    """Column-major A: chunk t of columns owns those columns of out.

    Four columns per sweep, so rows/values are read once per four columns of A. In segments of rows that
    hold runs of equal rows (_run_flags), each run is summed in registers and added once, as the C++ kernel:
    the same additions in the same order as the scatter (whose adds to one bucket wait on each other).
    """
    n = A.shape[0]
    m = out.shape[0]
    flags, ok = _run_flags(rows, m)
    if not ok:
        return BAD_ROW
    parts = len(bounds) - 1
    for t in prange(parts):
        buf = np.zeros((4, m), A.dtype)
        j0 = bounds[t]
        while j0 < bounds[t + 1]:
            w = min(4, bounds[t + 1] - j0)
            buf[:] = 0
            s0 = 0
            while s0 < n:
                run = flags[s0 // _RUN_SEG]
                s1 = s0
                while s1 < n and flags[s1 // _RUN_SEG] == run:
                    s1 = min(n, s1 + _RUN_SEG)
                if w == 4 and run == 0:
                    for ii in range(s0, s1):  # unsigned indices (rows checked above): no wraparound code
                        i = nb.uint64(ii)
                        r = nb.uint64(rows[i])
                        v = values[i]
                        buf[0, r] += v * A[i, j0]
                        buf[1, r] += v * A[i, j0 + 1]
                        buf[2, r] += v * A[i, j0 + 2]
                        buf[3, r] += v * A[i, j0 + 3]
                elif w == 4:
                    i = s0
                    while i < s1:
                        r = rows[i]
                        x0, x1, x2, x3 = buf[0, r], buf[1, r], buf[2, r], buf[3, r]
                        while True:
                            v = values[i]
                            x0 += v * A[i, j0]
                            x1 += v * A[i, j0 + 1]
                            x2 += v * A[i, j0 + 2]
                            x3 += v * A[i, j0 + 3]
                            i += 1
                            if i >= s1 or rows[i] != r:
                                break
                        buf[0, r], buf[1, r], buf[2, r], buf[3, r] = x0, x1, x2, x3
                else:
                    for c in range(w):
                        i = s0
                        while i < s1:
                            r = rows[i]
                            x = buf[c, r]
                            while True:
                                x += values[i] * A[i, j0 + c]
                                i += 1
                                if run == 0 or i >= s1 or rows[i] != r:
                                    break
                            buf[c, r] = x
                s0 = s1
            for r in range(m):
                for c in range(w):
                    out[r, j0 + c] = buf[c, r]
            j0 += 4
    return 0


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), ro(_i8[::1]), ro(T[::1]), ro(_i8[::1]), T[:, :, ::1]),
    T="data",
    I="indices",
    **_jit,
)
def _sketch_csr(indptr, indices, data, rows, values, bounds, acc):
    """CSR A: chunk t of rows accumulates into acc[t] (m x d)."""
    m, d = acc.shape[1], acc.shape[2]
    nnz = indptr[len(indptr) - 1]
    parts = acc.shape[0]
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        o = acc[t]
        for i in range(bounds[t], bounds[t + 1]):
            s, f = indptr[i], indptr[i + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            if s == f:
                continue
            r = rows[i]
            if r < 0 or r >= m:
                err[t] = BAD_ROW
                break
            v = values[i]
            for p in range(s, f):
                c = indices[p]
                if c < 0 or c >= d:
                    err[t] = BAD_INDEX
                    break
                o[r, c] += v * data[p]
    return err.max()


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), ro(_i8[::1]), ro(T[::1]), ro(_i8[::1]), T[:, ::1]),
    T="data",
    I="indices",
    **_jit,
)
def _sketch_csc(indptr, indices, data, rows, values, bounds, out):
    m = out.shape[0]
    n = len(rows)
    nnz = indptr[len(indptr) - 1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        buf = np.zeros(m, data.dtype)
        for j in range(bounds[t], bounds[t + 1]):
            s, f = indptr[j], indptr[j + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            buf[:] = 0
            for p in range(s, f):
                i = indices[p]
                if i < 0 or i >= n:
                    err[t] = BAD_INDEX
                    break
                r = rows[i]
                if r < 0 or r >= m:
                    err[t] = BAD_ROW
                    break
                buf[r] += values[i] * data[p]
            for r in range(m):
                out[r, j] = buf[r]
    return err.max()


@kernel(lambda T, I: _i8(ro(T[:, ::1]), ro(_i8[::1]), ro(T[:, ::1]), ro(_i8[::1]), T[::1]), T="A", **_jit)
def _gather_rows(A, rows, D, bounds, g):
    d = A.shape[1]
    m = D.shape[0]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        for i in range(bounds[t], bounds[t + 1]):
            r = rows[i]
            if r < 0 or r >= m:
                err[t] = BAD_ROW
                break
            g[i] = 0
            acc = g[i]
            for j in range(d):
                acc += A[i, j] * D[r, j]
            g[i] = acc
    return err.max()


@kernel(lambda T, I: _i8(ro(T[::1, :]), ro(_i8[::1]), ro(T[:, ::1]), ro(_i8[::1]), T[::1]), T="A", **_jit)
def _gather_cols(A, rows, Dt, bounds, g):
    """Column-major A; Dt is D transposed (d x m) so each column's lookups are contiguous."""
    d = A.shape[1]
    m = Dt.shape[1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        b, e = bounds[t], bounds[t + 1]
        ok = True
        for i in range(b, e):
            g[i] = 0
            if rows[i] < 0 or rows[i] >= m:
                err[t] = BAD_ROW
                ok = False
                break
        if not ok:
            continue
        for j in range(d):
            for i in range(b, e):
                g[i] += A[i, j] * Dt[j, rows[i]]
    return err.max()


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), ro(_i8[::1]), ro(T[:, ::1]), ro(_i8[::1]), T[::1]),
    T="data",
    I="indices",
    **_jit,
)
def _gather_csr(indptr, indices, data, rows, D, bounds, g):
    m, d = D.shape
    nnz = indptr[len(indptr) - 1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        for i in range(bounds[t], bounds[t + 1]):
            s, f = indptr[i], indptr[i + 1]
            g[i] = 0
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            if s == f:
                continue
            r = rows[i]
            if r < 0 or r >= m:
                err[t] = BAD_ROW
                break
            acc = g[i]
            for p in range(s, f):
                c = indices[p]
                if c < 0 or c >= d:
                    err[t] = BAD_INDEX
                    break
                acc += data[p] * D[r, c]
            g[i] = acc
    return err.max()


@threaded
def countsketch_hash(seed, m, start, stop):
    """Rows (int64) and signs (float64) of CountSketch columns start .. stop-1 for seed."""
    if not 1 <= m <= 2**32:
        raise ValueError(f"m: must lie in [1, 2**32], got {m}")
    n = stop - start
    rows = np.empty(n, np.int64)
    signs = np.empty(n, np.float64)
    parts = useful_threads(n // 4)
    _hash(_mix64(np.uint64(seed)), np.uint64(m), np.uint64(start), even_chunks(n, parts), rows, signs)
    return rows, signs


def _check_args(A_rows, rows, values, m):
    if m < 1:
        raise ValueError(f"m: must be >= 1, got {m}")
    check_matching("rows", rows, A_rows)
    if values is not None:
        check_matching("values", values, A_rows)


@threaded
def countsketch_dense(A, rows, values, m):
    """S @ A for dense A (C- or F-contiguous float32/float64)."""
    n, d = A.shape
    _check_args(n, rows, values, m)
    if A.flags.c_contiguous:  # fixed chunks summed in order: bit-identical at every thread count
        chunks = sum_chunks(n, n * d, m * d)
        acc = np.zeros((chunks, m, d), dtype=A.dtype)
        raise_for(_sketch_rows(A, rows, values, even_chunks(n, chunks), acc))
        return acc[0] if chunks == 1 else acc.sum(axis=0)
    parts = useful_threads(n * d)
    out = np.zeros((m, d), dtype=A.dtype)
    raise_for(_sketch_cols(A, rows, values, even_chunks(d, parts), out))
    return out


@threaded
def countsketch_csr(indptr, indices, data, rows, values, m, d):
    """S @ A for CSR A with len(rows) rows and d columns."""
    n = len(rows)
    _check_args(n, rows, values, m)
    check_compressed(indptr, indices, data, n)
    chunks = sum_chunks(n, len(data) + n, m * d)  # as countsketch_dense
    acc = np.zeros((chunks, m, d), dtype=data.dtype)
    raise_for(_sketch_csr(indptr, indices, data, rows, values, nnz_chunks(indptr, chunks), acc))
    return acc[0] if chunks == 1 else acc.sum(axis=0)


@threaded
def countsketch_csc(indptr, indices, data, rows, values, m, d):
    """S @ A for CSC A with len(rows) rows and d columns."""
    n = len(rows)
    _check_args(n, rows, values, m)
    check_compressed(indptr, indices, data, d)
    parts = useful_threads(len(data) + d * m // 4)
    out = np.zeros((m, d), dtype=data.dtype)
    raise_for(_sketch_csc(indptr, indices, data, rows, values, nnz_chunks(indptr, parts), out))
    return out


@threaded
def countsketch_gather_dot(A, rows, D):
    """g[i] = <A[i, :], D[rows[i], :]> for dense A."""
    n, d = A.shape
    _check_args(n, rows, None, max(D.shape[0], 1))
    if D.shape[1] != d:
        raise ValueError(f"D: expected {d} columns (A's), got {D.shape[1]}")
    parts = useful_threads(n * d)
    g = np.empty(n, dtype=A.dtype)
    bounds = even_chunks(n, parts)
    if A.flags.c_contiguous:
        raise_for(_gather_rows(A, rows, np.ascontiguousarray(D), bounds, g))
    else:
        raise_for(_gather_cols(A, rows, np.ascontiguousarray(D.T), bounds, g))
    return g


@threaded
def countsketch_gather_dot_csr(indptr, indices, data, rows, D):
    """g[i] = <A[i, :], D[rows[i], :]> for CSR A with len(rows) rows."""
    n = len(rows)
    _check_args(n, rows, None, max(D.shape[0], 1))
    check_compressed(indptr, indices, data, n)
    parts = useful_threads(len(data) + n // 4)
    g = np.empty(n, dtype=data.dtype)
    raise_for(_gather_csr(indptr, indices, data, rows, np.ascontiguousarray(D), nnz_chunks(indptr, parts), g))
    return g


# Seeded kernels: column i's (row, sign) is hashed on the fly, exactly as _hash does,
# so the result equals applying countsketch_hash's sketch (same chunks, same order).


@nb.njit(nogil=True, cache=True, inline="always")
def _row_sign(key, m, column):
    """(row, sign index) of CountSketch column ``column``: sign index 1 means -1."""
    z = _mix64(key + (column + _u8(1)) * _u8(0x9E3779B97F4A7C15))
    return nb.int64(((z >> _u8(32)) * m) >> _u8(32)), nb.int64(z & _u8(1))


@kernel(lambda T, I: nb.void(ro(T[:, ::1]), _u8, _u8, _u8, ro(T[::1]), ro(_i8[::1]), T[:, :, ::1]), T="A", **_jit)
def _seeded_rows(A, key, m, start, signs, bounds, acc):
    """Row-major A: chunk t of rows accumulates into acc[t] (m x d), as _sketch_rows."""
    d = A.shape[1]
    for t in prange(acc.shape[0]):
        o = acc[t]
        for i in range(bounds[t], bounds[t + 1]):
            r, s = _row_sign(key, m, start + _u8(i))
            v = signs[s]
            for j in range(d):
                o[r, j] += v * A[i, j]


@kernel(lambda T, I: nb.void(ro(T[::1, :]), _u8, _u8, _u8, ro(T[::1]), ro(_i8[::1]), T[:, ::1]), T="A", **_jit)
def _seeded_cols(A, key, m, start, signs, bounds, out):
    """Column-major A: chunk t of columns owns those columns of out; rows hashed a block at a time."""
    n = A.shape[0]
    mm = out.shape[0]
    block = 4096
    for t in prange(len(bounds) - 1):
        jb, je = bounds[t], bounds[t + 1]
        buf = np.zeros((max(je - jb, 0), mm), A.dtype)
        r = np.empty(block, np.int64)
        v = np.empty(block, A.dtype)
        for i0 in range(0, n, block):
            k = min(block, n - i0)
            c0 = start + _u8(i0) + _u8(1)
            for q in range(k):  # _row_sign written out, so LLVM vectorizes it
                z = key + (c0 + _u8(q)) * _u8(0x9E3779B97F4A7C15)
                z = (z ^ (z >> _u8(30))) * _u8(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> _u8(27))) * _u8(0x94D049BB133111EB)
                z = z ^ (z >> _u8(31))
                r[q] = nb.int64(((z >> _u8(32)) * m) >> _u8(32))
                v[q] = signs[1] if z & _u8(1) else signs[0]
            for c in range(jb, je):
                bc = buf[c - jb]
                for q in range(k):
                    bc[r[q]] += v[q] * A[i0 + q, c]
        for c in range(jb, je):
            for row in range(mm):
                out[row, c] = buf[c - jb, row]


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), _u8, _u8, _u8, ro(T[::1]), ro(_i8[::1]), T[:, :, ::1]),
    T="data",
    I="indices",
    **_jit,
)
def _seeded_csr(indptr, indices, data, key, m, start, signs, bounds, acc):
    """CSR A: chunk t of rows accumulates into acc[t] (m x d), as _sketch_csr (same order of additions).

    Blocks of 256 rows, hashed in one loop; a block with at most 2048 nonzeros runs them as one flat
    loop whose row is a running maximum over end-of-row markers (no branch per row: rows here often
    hold no nonzero or one), as csrc/include/fastlr/countsketch.hpp's countsketch_csr_rows.
    """
    d = acc.shape[2]
    nnz = indptr[len(indptr) - 1]
    parts = acc.shape[0]
    block, max_nnz = 256, 2048
    pos, neg = signs[0], signs[1]
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        o = acc[t]
        r = np.empty(block, np.int64)
        v = np.empty(block, signs.dtype)
        marker = np.empty(max_nnz + 1, np.int64)
        i0 = bounds[t]
        while i0 < bounds[t + 1] and err[t] == 0:
            k = min(block, bounds[t + 1] - i0)
            s0, s1 = nb.int64(indptr[i0]), nb.int64(indptr[i0 + k])
            i0 += k
            if s0 < 0 or s0 > s1 or s1 > nnz:
                err[t] = BAD_INDPTR
                break
            K = s1 - s0
            first = i0 - k
            if K == 0:
                for q in range(1, k):
                    if indptr[first + q] != s0:
                        err[t] = BAD_INDPTR
                if err[t]:
                    break
                continue
            c0 = start + _u8(first) + _u8(1)
            for q in range(k):  # _row_sign written out, so LLVM vectorizes it
                z = key + (c0 + _u8(q)) * _u8(0x9E3779B97F4A7C15)
                z = (z ^ (z >> _u8(30))) * _u8(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> _u8(27))) * _u8(0x94D049BB133111EB)
                z = z ^ (z >> _u8(31))
                r[q] = nb.int64(((z >> _u8(32)) * m) >> _u8(32))
                v[q] = neg if z & _u8(1) else pos
            if K > max_nnz:  # long rows: per-row loops
                for q in range(k):
                    s, f = indptr[first + q], indptr[first + q + 1]
                    if s > f or s < 0 or f > nnz:
                        err[t] = BAD_INDPTR
                        break
                    rq, vq = r[q], v[q]
                    for p in range(s, f):
                        c = indices[p]
                        if c < 0 or c >= d:
                            err[t] = BAD_INDEX
                            break
                        o[rq, c] += vq * data[p]
                continue
            marker[: K + 1] = 0
            prev = s0
            for q in range(k):
                e = nb.int64(indptr[first + q + 1])
                if e < prev:
                    err[t] = BAD_INDPTR
                prev = e
                marker[min(max(e - s0, 0), K)] = q + 1
            if err[t]:
                break
            row = 0
            for p in range(K):
                row = max(row, marker[p])
                c = indices[s0 + p]
                if c < 0 or c >= d:
                    err[t] = BAD_INDEX
                    break
                o[r[row], c] += v[row] * data[s0 + p]
    return err.max()


@kernel(
    lambda T, I: _i8(ro(I[::1]), ro(I[::1]), ro(T[::1]), _u8, _u8, _u8, ro(T[::1]), _i8, ro(_i8[::1]), T[:, ::1]),
    T="data",
    I="indices",
    **_jit,
)
def _seeded_csc(indptr, indices, data, key, m, start, signs, n, bounds, out):
    """CSC A: chunk t of columns owns those columns of out, as _sketch_csc."""
    mm = out.shape[0]
    nnz = indptr[len(indptr) - 1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        buf = np.zeros(mm, data.dtype)
        for j in range(bounds[t], bounds[t + 1]):
            s, f = indptr[j], indptr[j + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            buf[:] = 0
            for p in range(s, f):
                i = indices[p]
                if i < 0 or i >= n:
                    err[t] = BAD_INDEX
                    break
                r, sg = _row_sign(key, m, start + _u8(i))
                buf[r] += signs[sg] * data[p]
            for r in range(mm):
                out[r, j] = buf[r]
    return err.max()


def _seed_args(seed, m, start, dtype):
    if not 1 <= m <= 2**32:
        raise ValueError(f"m: must lie in [1, 2**32], got {m}")
    if start < 0:
        raise ValueError(f"start: must be >= 0, got {start}")
    return _mix64(np.uint64(seed)), np.uint64(m), np.uint64(start), np.array([1.0, -1.0], dtype=dtype)


@threaded
def countsketch_seeded_dense(A, seed, m, start=0):
    """S @ A for the seeded CountSketch (m, seed), columns start .. start + n - 1: countsketch_dense
    with countsketch_hash(seed, m, start, start + n), bit for bit, without materializing it."""
    n, d = A.shape
    key, mu, su, signs = _seed_args(seed, m, start, A.dtype)
    if A.flags.c_contiguous:  # the chunks of countsketch_dense
        chunks = sum_chunks(n, n * d, m * d)
        acc = np.zeros((chunks, m, d), dtype=A.dtype)
        _seeded_rows(A, key, mu, su, signs, even_chunks(n, chunks), acc)
        return acc[0] if chunks == 1 else acc.sum(axis=0)
    parts = useful_threads(n * d)
    out = np.zeros((m, d), dtype=A.dtype)
    _seeded_cols(A, key, mu, su, signs, even_chunks(d, parts), out)
    return out


@threaded
def countsketch_seeded_csr(indptr, indices, data, seed, m, n, d, start=0):
    """S @ A for CSR A (n x d) and the seeded CountSketch (as countsketch_seeded_dense)."""
    key, mu, su, signs = _seed_args(seed, m, start, data.dtype)
    check_compressed(indptr, indices, data, n)
    chunks = sum_chunks(n, len(data) + n, m * d)  # as countsketch_csr
    acc = np.zeros((chunks, m, d), dtype=data.dtype)
    raise_for(_seeded_csr(indptr, indices, data, key, mu, su, signs, nnz_chunks(indptr, chunks), acc))
    return acc[0] if chunks == 1 else acc.sum(axis=0)


@threaded
def countsketch_seeded_csc(indptr, indices, data, seed, m, n, d, start=0):
    """S @ A for CSC A (n x d) and the seeded CountSketch (as countsketch_seeded_dense)."""
    key, mu, su, signs = _seed_args(seed, m, start, data.dtype)
    check_compressed(indptr, indices, data, d)
    parts = useful_threads(len(data) + d * m // 4)
    out = np.zeros((m, d), dtype=data.dtype)
    raise_for(_seeded_csc(indptr, indices, data, key, mu, su, signs, n, nnz_chunks(indptr, parts), out))
    return out
