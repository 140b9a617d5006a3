"""NumPy reference one-pass product kernels (see csrc/include/fastlr/products.hpp).

``A`` is n x d, dense (C or F order) or CSR given as (indptr, indices, data);
factors are C-contiguous 2-D arrays of A's dtype:

- ``matmul(A, V)``: A @ V, V d x k
- ``rmatmul(A, W)``: A.T @ W, W n x k
- ``gd_products(A, U, V)``: (A @ V, A.T @ U), the two products of a GD step
- ``power_step(A, Q)``: (A @ Q, A.T @ (A @ Q)), one step of subspace iteration
- ``gram_product(A, Q)``: A.T @ (A @ Q) alone (power_step without keeping A @ Q)

The compiled and Numba kernels compute each pair in ONE pass over A.
"""

import numpy as np

from .countsketch import _expand

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


def check_factor(F, name, rows, rows_of, dtype):
    """A factor's checks, worded like the compiled kernels'; returns its column count."""
    if F.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got ndim={F.ndim}")
    if F.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {F.dtype}")
    if not F.flags.c_contiguous:
        raise ValueError(f"{name}: array must be C-contiguous")
    if F.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows ({rows_of}), got {F.shape[0]}")
    return F.shape[1]


def check_pair(U, V, n, d, dtype):
    """U (n x k) and V (d x k) of gd_products; returns k."""
    k = check_factor(V, "V", d, "A's columns", dtype)
    ku = check_factor(U, "U", n, "A's rows", dtype)
    if ku != k:
        raise ValueError(f"U: expected {k} columns (V's), got {ku}")
    return k


def check_dense(A):
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D array, got ndim={A.ndim}")
    if A.dtype not in (np.float32, np.float64):
        raise TypeError(f"A: dtype must be float32 or float64, got {A.dtype}")
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        raise ValueError("A: array must be C- or F-contiguous")


def check_csr(indptr, indices, data):
    """n, after the checks the compiled kernels make on the arrays' types."""
    if data.dtype not in (np.float32, np.float64):
        raise TypeError(f"data: dtype must be float32 or float64, got {data.dtype}")
    if indices.dtype not in (np.int32, np.int64):
        raise TypeError(f"indices: dtype must be int32 or int64, got {indices.dtype}")
    if indptr.ndim != 1 or len(indptr) < 1:
        raise ValueError("indptr: expected a 1-D array of length n + 1 >= 1")
    if len(data) != len(indices):
        raise ValueError(f"data: expected length {len(indices)}, got shape {data.shape}")
    return len(indptr) - 1


def matmul(A, V):
    """A @ V for dense A."""
    check_dense(A)
    check_factor(V, "V", A.shape[1], "A's columns", A.dtype)
    return A @ V


def rmatmul(A, W):
    """A.T @ W for dense A."""
    check_dense(A)
    check_factor(W, "W", A.shape[0], "A's rows", A.dtype)
    return A.T @ W


def gd_products(A, U, V):
    """(A @ V, A.T @ U) for dense A."""
    check_dense(A)
    check_pair(U, V, A.shape[0], A.shape[1], A.dtype)
    return A @ V, A.T @ U


def power_step(A, Q):
    """(A @ Q, A.T @ (A @ Q)) for dense A."""
    check_dense(A)
    check_factor(Q, "Q", A.shape[1], "A's columns", A.dtype)
    Y = A @ Q
    return Y, A.T @ Y


def _csr_forward(entry_row, indices, data, V, n):
    Y = np.zeros((n, V.shape[1]), dtype=data.dtype)
    np.add.at(Y, entry_row, data[:, None] * V[indices])
    return Y


def _csr_backward(entry_row, indices, data, W, d):
    Z = np.zeros((d, W.shape[1]), dtype=data.dtype)
    np.add.at(Z, indices, data[:, None] * W[entry_row])
    return Z


def matmul_csr(indptr, indices, data, V):
    """A @ V for CSR A with len(indptr) - 1 rows and V.shape[0] columns."""
    n = check_csr(indptr, indices, data)
    d = V.shape[0] if V.ndim == 2 else -1
    check_factor(V, "V", d, "A's columns", data.dtype)
    return _csr_forward(_expand(indptr, indices, n, d), indices, data, V, n)


def rmatmul_csr(indptr, indices, data, W, d):
    """A.T @ W for CSR A with d columns."""
    n = check_csr(indptr, indices, data)
    if d < 0:
        raise ValueError(f"d: must be >= 0, got {d}")
    check_factor(W, "W", n, "A's rows", data.dtype)
    return _csr_backward(_expand(indptr, indices, n, d), indices, data, W, d)


def gd_products_csr(indptr, indices, data, U, V):
    """(A @ V, A.T @ U) for CSR A."""
    n = check_csr(indptr, indices, data)
    d = V.shape[0] if V.ndim == 2 else -1
    check_pair(U, V, n, d, data.dtype)
    entry_row = _expand(indptr, indices, n, d)
    return _csr_forward(entry_row, indices, data, V, n), _csr_backward(entry_row, indices, data, U, d)


def power_step_csr(indptr, indices, data, Q):
    """(A @ Q, A.T @ (A @ Q)) for CSR A."""
    n = check_csr(indptr, indices, data)
    d = Q.shape[0] if Q.ndim == 2 else -1
    check_factor(Q, "Q", d, "A's columns", data.dtype)
    entry_row = _expand(indptr, indices, n, d)
    Y = _csr_forward(entry_row, indices, data, Q, n)
    return Y, _csr_backward(entry_row, indices, data, Y, d)


def gram_product(A, Q):
    """A.T @ (A @ Q) for dense A (power_step's Z)."""
    return power_step(A, Q)[1]


def gram_product_csr(indptr, indices, data, Q):
    """A.T @ (A @ Q) for CSR A (power_step_csr's Z)."""
    return power_step_csr(indptr, indices, data, Q)[1]
