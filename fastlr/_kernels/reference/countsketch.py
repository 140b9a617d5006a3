"""NumPy reference CountSketch kernels (see csrc/include/fastlr/countsketch.hpp)."""

import numpy as np

from .._errors import BAD_INDEX, BAD_INDPTR, BAD_ROW, check_matching, raise_for

__all__ = [
    "countsketch_dense",
    "countsketch_csr",
    "countsketch_csc",
    "countsketch_gather_dot",
    "countsketch_gather_dot_csr",
]


def _check_rows(rows, n, m):
    check_matching("rows", rows, n)
    if m < 1:
        raise ValueError(f"m: must be >= 1, got {m}")
    if n and (rows.min() < 0 or rows.max() >= m):
        raise_for(BAD_ROW)


def _expand(indptr, indices, outer, inner):
    """Outer index of each stored entry, after validating the compressed structure."""
    indptr = np.asarray(indptr, dtype=np.int64)
    check_matching("indptr", indptr, outer + 1)
    if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise_for(BAD_INDPTR)
    if len(indices) and (indices.min() < 0 or indices.max() >= inner):
        raise_for(BAD_INDEX)
    return np.repeat(np.arange(outer), np.diff(indptr))


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
