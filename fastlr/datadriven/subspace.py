"""The dense data-driven sketch: the top left singular vectors of the training matrices side by side."""

from __future__ import annotations

from .._validation import (
    UINT64_MAX,
    check_bool,
    check_int,
)
from ..sketch import CountSketch, DenseSketch, StackedSketch
from ._common import _blas_threads, _check_matrices, _check_sizes, _Rows

# --------------------------------------------------------------------------- dense data-driven sketch


def subspace_sketch(train, m: int, *, mixed: bool = False, seed: int = 0) -> DenseSketch | StackedSketch:
    """The dense data-driven sketch: S = the top-m left singular vectors of ``[A_1 ... A_N]``, transposed.

    Each matrix is scaled to sigma_1 = 1 first. ``S A`` then keeps the part of
    A in the column space the training matrices share; SCW with S is optimal
    for a test matrix whose column space lies in it. Applying S costs
    O(m nnz(A)) (a dense product), like a Gaussian sketch.

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices, one shape (n x d)
    m : int
        Sketch size, ``1 <= m <= n``.
    mixed : bool, default False
        Stack the top m // 2 singular vectors on a random ``CountSketch(m - m // 2,
        n, seed)``: the random half keeps the worst-case guarantee of a random sketch.
    seed : int, default 0
        Seeds the random half (and the subspace iteration used when n > 4096).

    Returns
    -------
    DenseSketch, or StackedSketch when ``mixed``

    References
    ----------
    W. Liu et al., "Tensor-based sketching method for the low-rank approximation
    of data streams", 2022 (arXiv:2209.14637); the matrix case here.
    """
    mats = _check_matrices(train)
    n = mats[0].shape[0]
    m, _ = _check_sizes(m, None, n)
    mixed = check_bool(mixed, "mixed")
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    if mixed and m < 2:
        raise ValueError(f"m: a mixed sketch needs m >= 2 (half data-driven, half random), got {m}")
    m_data = m // 2 if mixed else m
    with _blas_threads(mats):
        _, U = _Rows(mats).top_eig(m_data, seed=seed)
    S = DenseSketch(U.T)
    return StackedSketch([S, CountSketch(m - m_data, n, seed=seed)]) if mixed else S
