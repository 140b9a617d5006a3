"""The dense data-driven sketch: the top left singular vectors of the training matrices side by side."""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import (
    UINT64_MAX,
    check_bool,
    check_int,
    is_sparse,
)
from ..heavy_rows import HeavyRowSketch
from ..sketch import CountSketch, DenseSketch, StackedSketch, guarded_by_random
from ._common import (
    _blas_threads,
    _check_matrices,
    _check_sizes,
    _one_matrix_guard,
    _Rows,
    _smooth,
    _smoothing_width,
    _text_like_instead,
    check_heavy_rows,
    heavy_rows_rule,
    with_heavy_rows,
)
from .positions import _inner_product

# --------------------------------------------------------------------------- dense data-driven sketch

#: subspace_sketch from one matrix: random CountSketch rows under its m - this dense ones. Measured (bench/README.md,
#: nineteenth session; smoothed dense rows): m = 10 on the audit's generated families, 2 random rows against 3; m = 20
#: on the first real bikes frames (4 frames x 4 seeds, unguarded), 2 / 4 / 6 random rows: 0.414 / 0.436 / 0.475 of
#: random's held-out Err (all 20 dense: 0.414; unsmoothed, as before: 0.427).
ONE_MATRIX_RANDOM = 2


@guarded_by_random
def subspace_sketch(train, m: int, *, k: int | None = None, mixed: bool = False, seed: int = 0,
                    heavy_rows="auto") -> DenseSketch | StackedSketch | CountSketch | HeavyRowSketch:
    """The dense data-driven sketch: S = the top-m left singular vectors of ``[A_1 ... A_N]``, transposed.

    Each matrix is scaled to sigma_1 = 1 first. ``S A`` then keeps the part of
    A in the column space the training matrices share; SCW with S is optimal
    for a test matrix whose column space lies in it. Applying S costs
    O(m nnz(A)) (a dense product), like a Gaussian sketch.

    Two fallbacks keep it from doing worse than random where nothing in the
    training data says it will carry over; both return the random
    ``CountSketch(m, n, seed)`` with a ``fastlr.LearnedSketchWarning``:

    * training matrices whose row energies sit on under a tenth of the rows
      (term-document counts, ``hybrid_sketch``'s test). Measured (3 seeds,
      bench/README.md, eighth session): from one text matrix 2.1-3.3x random's
      held-out Err, from 2-3 1.4-3.7x; from all 36, 2.3-3.5x on new topics, but
      0.41-0.58x on the same topics, the gain this fallback gives up;
    * one training matrix on which the sketch does not beat, by rank-k SCW
      error, ``CountSketch(m, n, seed)`` and the mean of 16 other random
      CountSketches by twice their standard deviation (``one_shot_sketch``'s
      guard). On images it always passed (it fits its one matrix by construction).

    From one training matrix (and m >= 2, not ``mixed``) the sketch is the
    top ``m - 2`` left singular vectors of the matrix with its columns smoothed
    as ``hybrid_sketch(smooth="auto")`` does (rough matrices: not smoothed)
    stacked on ``CountSketch(2, n, seed)`` (m = 2: 1 and 1), then the guard
    above. One matrix's singular vectors carry its own noise; smoothed ones
    carry over, and the random rows catch what new matrices add. Measured
    (bench/guard_audit.py, m = 10; bench/README.md, nineteenth session): the
    plain top-m was 1.55x ``CountSketch(m, n, seed)``'s held-out Err on one
    video seed; now none above it in 300 seeds, and the mean ratio 0.184 ->
    0.121 (video), 0.282 -> 0.198 (hyperspectral) on seeds 0-99; from the
    first real bikes frames (m = 20, 24 cases) 0.423 -> 0.411.

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices, one shape (n x d)
    m : int
        Sketch size, ``1 <= m <= n``.
    k : int, optional
        Target rank of the one-matrix check (default ``min(m, d) // 2``, at least 1).
    mixed : bool, default False
        Stack the top m // 2 singular vectors on a random ``CountSketch(m - m // 2,
        n, seed)``: the random half keeps the worst-case guarantee of a random sketch.
    seed : int, default 0
        Seeds the random half and the fallback (and the subspace iteration used when n > 4096).
    heavy_rows : "auto", True or False, default "auto"
        As ``fastlr.learn_sketch``'s, for the random CountSketch fallbacks only
        (``fastlr.HeavyRowSketch`` reserves buckets of CountSketches; the dense
        sketch is returned as it is): ``"auto"`` wraps the counts fallback
        (threshold 0.5, at most m // 2 rows; see ``inner_product_sketch``),
        True both fallbacks (threshold 1.5 on other data), False neither.

    Returns
    -------
    DenseSketch, or StackedSketch when ``mixed`` or from one matrix; the random CountSketch(m, n, seed) on a fallback,
    a HeavyRowSketch of it when ``heavy_rows`` says so

    Raises
    ------
    ValueError
        If an argument is out of range (``heavy_rows`` not "auto", True or False, ...).

    References
    ----------
    W. Liu et al., "Tensor-based sketching method for the low-rank approximation
    of data streams", 2022 (arXiv:2209.14637); the matrix case here.
    """
    mats = _check_matrices(train)
    n, d = mats[0].shape
    m, _ = _check_sizes(m, None, n)
    k = max(1, min(m, d) // 2) if k is None else check_int(k, "k", minimum=1, maximum=min(m, d))
    mixed = check_bool(mixed, "mixed")
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    if mixed and m < 2:
        raise ValueError(f"m: a mixed sketch needs m >= 2 (half data-driven, half random), got {m}")
    heavy_rows = check_heavy_rows(heavy_rows)
    with _blas_threads(mats):
        rows = _Rows(mats)
        rule = heavy_rows_rule(heavy_rows, mats, rows)
        if (S := _text_like_instead("subspace_sketch", rows, m, seed)) is not None:
            return with_heavy_rows(S, rule)

        def build(_):
            if len(mats) > 1 or mixed or m < 2:
                return _subspace(rows, m, dense=m // 2 if mixed else m, seed=seed)
            # One matrix: its noise is in its singular vectors; those of the smoothed matrix (hybrid_sketch's) carry
            # over, and ONE_MATRIX_RANDOM random rows catch what new matrices add (bench/README.md, nineteenth session)
            dense_rows, _ = _smoothed_rows(mats, rows, "auto")
            return _subspace(dense_rows, m, dense=max(1, m - ONE_MATRIX_RANDOM), seed=seed)

        return with_heavy_rows(_one_matrix_guard("subspace_sketch", build, mats, m, k, seed), rule)


def _subspace(rows: _Rows, m: int, *, dense: int | None = None, seed: int = 0) -> DenseSketch | StackedSketch:
    """subspace_sketch without its checks and fallbacks (hybrid_sketch's dense part): the top ``dense`` (default m)
    left singular vectors, stacked on ``CountSketch(m - dense, n, seed)`` when fewer than m."""
    dense = m if dense is None else dense
    _, U = rows.top_eig(dense, seed=seed)
    S = DenseSketch(U.T)
    return StackedSketch([S, CountSketch(m - dense, rows.n, seed=seed)]) if dense < m else S


def _smoothed_rows(mats: list, rows: _Rows, smooth) -> tuple[_Rows, bool]:
    """The training matrices' rows with each matrix's columns smoothed (``smooth``: "auto" - by _smoothing_width -, a
    width, or None / 0 for none; sparse matrices never), and whether any was: hybrid_sketch's dense rows."""
    widths = [0.0 if is_sparse(A) else _smoothing_width(A) if smooth == "auto" else float(smooth or 0) for A in mats]
    if not any(widths):
        return rows, False
    return _Rows([_smooth(A, w) if w > 0 else A for A, w in zip(mats, widths)]), True


@guarded_by_random
def hybrid_sketch(train, m: int, k: int, *, dense: int | None = None, smooth="auto", trials: int = 8,
                  seed: int = 0, heavy_rows="auto") -> StackedSketch | CountSketch | HeavyRowSketch:
    """A one-shot sketch: the top ``dense`` left singular vectors stacked on inner-product positions.

    ``StackedSketch([subspace_sketch(smoothed train, dense), inner_product_sketch(train,
    m - dense, min(k, m - dense), values="sign", trials=trials, refine=0, seed=seed)])``
    (the paper's buckets, unrefined: the figures below were measured so):
    the dense rows keep the column space the training matrices share; the
    sparse rows, whose buckets group parallel rows with +-1 signs (not the
    buckets' top singular vectors, which point where the dense rows already
    do), catch what a new matrix adds to it (moving objects, another scene).

    Images and spectral bands are smooth along their rows: each matrix's
    columns are then smoothed (``smooth="auto"``) before its singular vectors
    are taken, by the widest Gaussian that changes the matrix by at most twice
    its noise (estimated from second differences along the rows; rough or
    sparse matrices are left alone). Beyond the few directions one matrix
    knows, its noisy singular vectors become smooth ones, which other images
    share, so more of the rows are dense (``7 m // 10``). From a single
    training matrix in well under a second at the demo's sizes (bench/README.md,
    eighth session; m = 20, k = 10, worst of 5 seeds): 10x below a random
    CountSketch's Err on video, 6.6x on hyperspectral (4.6x unsmoothed).

    Data whose rows are used sparsely (row energies on under a tenth of the
    rows: term-document counts, where new matrices use other words) say
    nothing about new matrices' rows, and this sketch was up to 1.5x worse
    than random on them: the random ``CountSketch(m, n, seed)`` is returned
    instead, with a ``fastlr.LearnedSketchWarning``.

    Parameters
    ----------
    train : 2-D array or scipy.sparse matrix, or an iterable of them (one shape, n x d)
    m : int
        Sketch size, ``2 <= m <= n``.
    k : int
        Target rank (the ridge of the leverage scores the sparse part samples by).
    dense : int, optional
        Dense rows, ``1 <= dense < m`` (default ``7 m // 10`` when a matrix was
        smoothed, else ``m // 2``).
    smooth : "auto", None or float, default "auto"
        Gaussian width (in rows) of the smoothing; None or 0: none (sparse
        matrices are never smoothed).
    trials : int, default 8
        Centre draws of the sparse part (see ``inner_product_sketch``).
    seed : int, default 0
    heavy_rows : "auto", True or False, default "auto"
        As ``subspace_sketch``'s: ``"auto"`` and True wrap the random
        CountSketch returned on counts in ``fastlr.HeavyRowSketch`` (threshold
        0.5, at most m // 2 rows); the stack (with its dense part) is returned
        as it is; False: never wrapped.

    Returns
    -------
    StackedSketch (a DenseSketch on a CountSketch), or the random CountSketch(m, n, seed), a HeavyRowSketch of it when
    ``heavy_rows`` says so

    Raises
    ------
    ValueError
        If an argument is out of range (``heavy_rows`` not "auto", True or False, ...).

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
    if dense is not None:
        dense = check_int(dense, "dense", minimum=1, maximum=m - 1)
    if smooth is not None and smooth != "auto" and (isinstance(smooth, bool) or not isinstance(smooth, numbers.Real)
                                                    or not 0 <= smooth < float("inf")):
        raise ValueError(f"smooth: expected 'auto', None or a finite number >= 0, got {smooth!r}")
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX - 1)
    heavy_rows = check_heavy_rows(heavy_rows)
    with _blas_threads(mats):
        rows = _Rows(mats)
        if (S := _text_like_instead("hybrid_sketch", rows, m, seed)) is not None:
            return with_heavy_rows(S, heavy_rows_rule(heavy_rows, mats, rows))
        dense_rows, smoothed = _smoothed_rows(mats, rows, smooth)
        if dense is None:
            dense = max(1, min(m - 1, (7 * m) // 10 if smoothed else m // 2))
        sparse = _inner_product(mats, rows, m - dense, min(k, m - dense), values="sign", trials=trials, seed=seed)
        return StackedSketch([_subspace(dense_rows, dense, seed=seed), sparse])


def _is_matrix(x) -> bool:
    return is_sparse(x) or (isinstance(x, np.ndarray) and x.ndim == 2)
