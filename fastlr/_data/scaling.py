"""Scaling: sigma_1 of a matrix and the matrix scaled to sigma_1 = 1 (as the paper does)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from .._validation import as_matrix, is_sparse

__all__ = ["normalize", "spectral_norm"]

#: ARPACK's Lanczos vectors for sigma_1 (svds' default for k = 1: 20). Where sigma_1 stands apart (images,
#: video frames) it converges in about this many products, not the 20 of svds' default; where it does not (a
#: Gaussian matrix) the restarts cost about as much: 3840 x 720, 50 bigbuckbunny frames 0.49 -> 0.28 s, a
#: Gaussian matrix 36 -> 38 ms, 1/i singular values 46 -> 25 ms (bench/README.md, fifteenth session).
LANCZOS_VECTORS = 10


def spectral_norm(A) -> float:
    """sigma_1(A), the largest singular value (dense or sparse), in float64.

    A dense SVD for small matrices, Lanczos (``scipy.sparse.linalg.svds``,
    deterministic start, LANCZOS_VECTORS Lanczos vectors) otherwise; both
    accurate to machine precision.
    """
    A = as_matrix(A)
    finite = np.isfinite(A.data if is_sparse(A) else A).all()
    if not finite:
        raise ValueError("A: contains NaN or infinity")
    if A.size == 0:
        return 0.0
    if min(A.shape) < 3 or A.shape[0] * A.shape[1] <= 40_000:
        dense = A.toarray() if is_sparse(A) else A
        return float(scipy.linalg.svdvals(np.asarray(dense, dtype=np.float64))[0])
    if (A.count_nonzero() if is_sparse(A) else np.count_nonzero(A)) == 0:
        return 0.0
    v0 = np.ones(min(A.shape), dtype=A.dtype)
    return float(scipy.sparse.linalg.svds(A, k=1, ncv=min(LANCZOS_VECTORS, min(A.shape) - 1), v0=v0,
                                          return_singular_vectors=False)[0])


def normalize(A):
    """``A / sigma_1(A)``: the matrix scaled to spectral norm 1 (a new array; sparse stays sparse).

    Raises
    ------
    ValueError
        If A is all zeros or holds NaN/infinity.
    """
    A = as_matrix(A)
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    s1 = spectral_norm(A)
    if s1 == 0.0:
        raise ValueError("A: is all zeros; it cannot be scaled to sigma_1 = 1")
    return A / A.dtype.type(s1) if not is_sparse(A) else (A * (1.0 / s1)).astype(A.dtype)
