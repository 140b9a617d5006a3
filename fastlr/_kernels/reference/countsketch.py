"""NumPy reference CountSketch kernels (see csrc/include/fastlr/countsketch.hpp)."""

import numpy as np

from .._errors import BAD_INDEX, BAD_INDPTR, BAD_ROW, check_matching, raise_for

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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijective 64-bit mixer (Steele, Lea and Flood, 2014)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def countsketch_hash(seed, m, start, stop):
    """Rows (int64, in [0, m)) and signs (float64, +-1) of CountSketch columns start .. stop-1.

    z = mix64(mix64(seed) + (column + 1) * golden) (wrapping uint64 arithmetic); the row is
    Lemire's multiply-shift of z's top 32 bits onto [0, m), the sign z's lowest bit.
    """
    if not 1 <= m <= 2**32:
        raise ValueError(f"m: must lie in [1, 2**32], got {m}")
    with np.errstate(over="ignore"):
        key = _mix64(np.array([seed], dtype=np.uint64))[0]
        counter = np.arange(start, stop, dtype=np.uint64) + np.uint64(1)
        z = _mix64(key + counter * _GOLDEN)
    rows = ((z >> np.uint64(32)) * np.uint64(m)) >> np.uint64(32)
    signs = np.where(z & np.uint64(1), -1.0, 1.0)
    return rows.astype(np.int64), signs


def _check_rows(rows, n, m):
    check_matching("rows", rows, n)
    if m < 1:
        raise ValueError(f"m: must be >= 1, got {m}")
    if n and (rows.min() < 0 or rows.max() >= m):
        raise_for(BAD_ROW)


def _entry_outer(indptr, nnz, outer):
    """Outer index of each of the nnz stored entries, after validating indptr (outer + 1 long, 0 to nnz,
    nondecreasing)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    check_matching("indptr", indptr, outer + 1)
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
        raise_for(BAD_INDPTR)
    return np.repeat(np.arange(outer), np.diff(indptr))


def _expand(indptr, indices, outer, inner):
    """Outer index of each stored entry, after validating the compressed structure."""
    entry_outer = _entry_outer(indptr, len(indices), outer)
    if len(indices) and (indices.min() < 0 or indices.max() >= inner):
        raise_for(BAD_INDEX)
    return entry_outer


def countsketch_dense(A, rows, values, m):
    """S @ A: out[rows[i], :] += values[i] * A[i, :]."""
    _check_rows(rows, A.shape[0], m)
    out = np.zeros((m, A.shape[1]), dtype=A.dtype)
    np.add.at(out, rows, values[:, None] * A)
    return out


def countsketch_csr(indptr, indices, data, rows, values, m, d):
    """S @ A for CSR A with len(rows) rows and d columns."""
    n = len(rows)
    _check_rows(rows, n, m)
    entry_row = _expand(indptr, indices, n, d)
    out = np.zeros((m, d), dtype=data.dtype)
    np.add.at(out, (rows[entry_row], indices), values[entry_row] * data)
    return out


def countsketch_csc(indptr, indices, data, rows, values, m, d):
    """S @ A for CSC A with len(rows) rows and d columns."""
    n = len(rows)
    _check_rows(rows, n, m)
    entry_col = _expand(indptr, indices, d, n)
    out = np.zeros((m, d), dtype=data.dtype)
    np.add.at(out, (rows[indices], entry_col), values[indices] * data)
    return out


def countsketch_gather_dot(A, rows, D):
    """g[i] = <A[i, :], D[rows[i], :]>."""
    _check_rows(rows, A.shape[0], D.shape[0])
    if D.shape[1] != A.shape[1]:
        raise ValueError(f"D: expected {A.shape[1]} columns (A's), got {D.shape[1]}")
    return np.einsum("ij,ij->i", A, D[rows]).astype(A.dtype, copy=False)


def countsketch_gather_dot_csr(indptr, indices, data, rows, D):
    """g[i] = <A[i, :], D[rows[i], :]> for CSR A with len(rows) rows."""
    n = len(rows)
    _check_rows(rows, n, D.shape[0])
    entry_row = _expand(indptr, indices, n, D.shape[1])
    g = np.zeros(n, dtype=data.dtype)
    np.add.at(g, entry_row, data * D[rows[entry_row], indices])
    return g


def _seeded(seed, m, n, start, dtype):
    """The materialized sketch the seeded kernels apply: rows and signs cast to ``dtype``."""
    if start < 0:
        raise ValueError(f"start: must be >= 0, got {start}")
    rows, signs = countsketch_hash(seed, m, start, start + n)
    return rows, signs.astype(dtype)


def countsketch_seeded_dense(A, seed, m, start=0):
    """S @ A for the seeded CountSketch: countsketch_dense with countsketch_hash(seed, m, start, start + n)."""
    rows, values = _seeded(seed, m, A.shape[0], start, A.dtype)
    return countsketch_dense(A, rows, values, m)


def countsketch_seeded_csr(indptr, indices, data, seed, m, n, d, start=0):
    """S @ A for CSR A (n x d) and the seeded CountSketch (as countsketch_seeded_dense)."""
    rows, values = _seeded(seed, m, n, start, data.dtype)
    return countsketch_csr(indptr, indices, data, rows, values, m, d)


def countsketch_seeded_csc(indptr, indices, data, seed, m, n, d, start=0):
    """S @ A for CSC A (n x d) and the seeded CountSketch (as countsketch_seeded_dense)."""
    rows, values = _seeded(seed, m, n, start, data.dtype)
    return countsketch_csc(indptr, indices, data, rows, values, m, d)
