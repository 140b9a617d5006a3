"""Helpers shared by the tests: tolerances, layouts and messy sparse inputs."""

import numpy as np
import scipy.sparse as sp

ALL_BACKENDS = ("cpp", "numba", "numpy")
FAST_BACKENDS = ("cpp", "numba")

#: Relative tolerances for comparing a backend with the NumPy reference.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def layouts(A):
    """The same matrix C-ordered, F-ordered and as a non-contiguous view."""
    big = np.zeros((A.shape[0] * 2, A.shape[1] * 3), dtype=A.dtype)
    big[::2, ::3] = A
    return {"C": np.ascontiguousarray(A), "F": np.asfortranarray(A), "view": big[::2, ::3]}


def assert_close(actual, expected, dtype, scale=None):
    """Compare with a tolerance relative to the magnitude of ``expected`` (or ``scale``)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(initial=0.0), 1e-30) if scale is None else scale
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[np.dtype(dtype)] * scale * 10)


def messy_csr(n, d, density, rng, dtype=np.float64, index_dtype=np.int32):
    """A CSR matrix with unsorted column indices, duplicate entries and empty rows."""
    A = sp.random(n, d, density=density, format="coo", random_state=rng, dtype=np.float64)
    rows = np.concatenate([A.row, A.row[: len(A.row) // 3]])  # duplicates
    cols = np.concatenate([A.col, A.col[: len(A.col) // 3]])
    vals = np.concatenate([A.data, rng.standard_normal(len(A.row) // 3)])
    order = rng.permutation(len(rows))  # unsorted within rows after the stable sort below
    rows, cols, vals = rows[order], cols[order], vals[order]
    by_row = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    M = sp.csr_matrix(
        (vals[by_row].astype(dtype), cols[by_row].astype(index_dtype), indptr), shape=(n, d)
    )
    return M
