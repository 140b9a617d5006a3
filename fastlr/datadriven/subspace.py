"""The dense data-driven sketch: the top left singular vectors of the training matrices side by side."""

from __future__ import annotations

import numpy as np

from .._validation import (
    UINT64_MAX,
    check_bool,
    check_int,
    is_sparse,
)
from ..sketch import CountSketch, DenseSketch, StackedSketch
from ._common import _blas_threads, _check_matrices, _check_sizes, _Rows
from .positions import inner_product_sketch

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


def hybrid_sketch(train, m: int, k: int, *, dense: int | None = None, trials: int = 8,
                  seed: int = 0) -> StackedSketch:
    """A one-shot sketch: the top ``dense`` left singular vectors stacked on inner-product positions.

    ``StackedSketch([subspace_sketch(train, dense), inner_product_sketch(train,
    m - dense, min(k, m - dense), values="sign", trials=trials, seed=seed)])``:
    the dense rows keep the column space the training matrices share; the
    sparse rows, whose buckets group parallel rows with +-1 signs (not the
    buckets' top singular vectors, which point where the dense rows already
    do), catch what a new matrix adds to it (moving objects, another scene).
    Built from a single training matrix in well under a second at the demo's
    sizes, it generalizes better than either part alone (bench/README.md,
    sixth session: worst of 5 seeds, video 8x, hyperspectral 4.6x below a
    random CountSketch from one matrix, against 2.5-4x for the parts alone).

    Parameters
    ----------
    train : 2-D array or scipy.sparse matrix, or an iterable of them (one shape, n x d)
    m : int
        Sketch size, ``2 <= m <= n``.
    k : int
        Target rank (the ridge of the leverage scores the sparse part samples by).
    dense : int, optional
        Dense rows, ``1 <= dense < m`` (default m // 2).
    trials : int, default 8
        Centre draws of the sparse part (see ``inner_product_sketch``).
    seed : int, default 0

    Returns
    -------
    StackedSketch (a DenseSketch on a CountSketch)

    References
    ----------
    Y. Li, H. Lin, S. Liu, A. Vakilian, D. P. Woodruff, "Learning the Positions
    in CountSketch", ICLR 2023; W. Liu et al., arXiv:2209.14637.
    """
    mats = _check_matrices([train] if _is_matrix(train) else train)
    n = mats[0].shape[0]
    m, k = _check_sizes(m, k, n)
    if m < 2:
        raise ValueError(f"m: a hybrid sketch needs m >= 2 (dense and sparse rows), got {m}")
    dense = m // 2 if dense is None else check_int(dense, "dense", minimum=1, maximum=m - 1)
    sparse = inner_product_sketch(mats, m - dense, min(k, m - dense), values="sign", trials=trials, seed=seed)
    return StackedSketch([subspace_sketch(mats, dense, seed=seed), sparse])


def _is_matrix(x) -> bool:
    return is_sparse(x) or (isinstance(x, np.ndarray) and x.ndim == 2)
