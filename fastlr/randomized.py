"""randomized_svd: a drop-in for ``sklearn.utils.extmath.randomized_svd`` on fastlr's kernels."""

from __future__ import annotations

import functools

import numpy as np

from ._krylov import krylov_applies, krylov_depth, krylov_factors
from ._linalg import LAPACK_DRIVERS, blas_single_thread, numerical_rank, orthonormal
from ._matrix import Operand, operand
from .batch import STACKED_MAX_ENTRIES, is_batch, run_batch, seeds_for, stacked_in_parallel
from ._validation import check_bool, check_choice, check_int, random_seed
from .scw import basis_factors, gaussian_range, sketch_basis, sketch_sigma
from .sketch import CountSketch, GaussianSketch

__all__ = ["randomized_svd"]

SKETCHES = ("auto", "countsketch", "gaussian")
_NORMALIZERS = ("auto", "QR", "LU", "none")


def auto_n_iter(k: int, shape) -> int:
    """scikit-learn's ``n_iter="auto"``: 7 power iterations when k < 0.1 * min(shape), else 4."""
    return 7 if k < 0.1 * min(shape) else 4


def check_options(A, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign,
                  svd_lapack_driver, sketch, random_state):
    """Validate randomized_svd's options for a matrix of A's shape; resolve the "auto" values.

    ``n_components`` above ``min(A.shape)`` gives ``min(A.shape)`` components,
    as scikit-learn's randomized_svd does.

    Returns (k, n_oversamples, n_iter, normalizer, transpose, driver, sketch, seed).
    """
    k = min(check_int(n_components, "n_components", minimum=1), min(A.shape))
    p = check_int(n_oversamples, "n_oversamples", minimum=0)
    if isinstance(n_iter, str) and n_iter == "auto":
        n_iter = auto_n_iter(k, A.shape)
    else:
        n_iter = check_int(n_iter, "n_iter", minimum=0)
    normalizer = check_choice(power_iteration_normalizer, "power_iteration_normalizer", _NORMALIZERS)
    sketch = check_choice(sketch, "sketch", SKETCHES)
    if normalizer == "auto":  # as scikit-learn: none for up to 2 steps (the Gaussian start takes one more)
        normalizer = "none" if n_iter + (sketch == "auto") <= 2 else "LU"
    transpose = check_choice(transpose, "transpose", ("auto", True, False))
    if not isinstance(flip_sign, (bool, np.bool_)):
        raise TypeError(f"flip_sign: expected a bool, got {flip_sign!r}")
    driver = check_choice(svd_lapack_driver, "svd_lapack_driver", LAPACK_DRIVERS)
    seed = random_seed(random_state)
    return k, p, n_iter, normalizer, transpose, driver, sketch, seed


def range_basis(op: Operand, l: int, *, sketch: str, n_iter: int, normalizer: str, seed: int,
                k: int | None = None) -> np.ndarray:
    """The orthonormal basis V (d x r) of randomized_svd's range finder, for an operand of any storage.

    ``sketch="auto"``: a d x l Gaussian start and n_iter + 1 power steps
    (``scw.gaussian_range``). ``"countsketch"`` / ``"gaussian"``: V from the
    SVD of the l x d sketch ``S A`` (cut at its numerical rank), then n_iter
    power steps. ``k``: the rank asked for (default l), for the last step's accuracy test
    (``Operand.power_steps``).
    """
    k = l if k is None else k
    n, d = op.shape
    if sketch == "auto":
        l = min(l, d)

        def estimate_sigma():  # only for entries so large or small that A^T A Omega over/underflows
            return sketch_sigma(op.sketch(CountSketch(min(l, n), n, seed=seed)))

        return gaussian_range(op.power_steps(l, n_iter, k), d, l, n_iter, normalizer, seed, op.dtype,
                              estimate_sigma)
    sketch_type = CountSketch if sketch == "countsketch" else GaussianSketch
    SA = op.sketch(sketch_type(min(l, n), n, seed=seed))  # refused when not finite
    return sketch_basis(SA, n_iter, normalizer, op.dtype, functools.partial(op.power_steps, k=k))[2]


def _krylov_keeps_rows(op: Operand, l: int, n_iter: int) -> bool:
    """Whether a wide A (n < d) runs the Krylov finder on its own rows rather than transposed
    (``transpose="auto"``): where that applies, A^T's finder would not take the Gram route (A A^T,
    the faster one where it pays), and the finder's d x l (q + 1) float64 space stays within a
    quarter of A's memory, and the passes outweigh the space's orthogonalization in d dimensions
    (dense A; sparse A with many entries per column). Its steps are then one fused pass over A each, where A^T's are two
    BLAS products (1080 x 5760, k = 10, 1 thread: float64 70 vs 107 ms, float32 52 vs 74 ms;
    scikit-learn 222 / 100 ms; ninth session)."""
    if not op.transposable:
        return False
    n, d = op.shape
    q = krylov_depth(n_iter)
    fits = 8 * l * (q + 1) * 4 <= n * np.dtype(op.dtype).itemsize
    # The space's orthogonalization, about d (l q)^2 multiply-adds, must be small next to the passes,
    # entries * l (2 q + 1): sparse wide A with few entries per column ran 4-12x slower on its rows
    # (2000 x 50000 with 1M nonzeros: 359 vs 88 ms transposed; 1000 x 200000, 400k: 1142 vs 98 ms).
    entries = op.parts[2].size if op.sparse else n * d
    passes_dominate = entries * (2 * q + 1) >= 8 * d * l * q * q
    # op is in memory (transposable): the Gram route on A A^T is A^T's
    return fits and passes_dominate and krylov_applies(op, l, n_iter) and not op.T._gram_pays(l, n_iter)


def row_space_basis(finder: Operand, B: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the tall B's columns, cut at its numerical rank.

    B = A^T V is d x l with d the long side (2,000,000 columns of a wide A): Householder QR of
    it is level-2 LAPACK (seconds); the operand's SVQB thin SVD (Gram rounds on fastlr's
    kernels) gives the same span with orthonormal columns in a few passes. A zero B (A = 0)
    keeps the QR basis, which is orthonormal whatever B holds.
    """
    UB, sB, _ = finder.thin_svd(B, B.shape[1])
    # The cut of truncate_parts (l * eps * sigma_1): B's rounding, not its 2,000,000-long side, sets it.
    keep = numerical_rank(sB, B.shape[1], np.finfo(finder.dtype).eps)
    return UB[:, :keep] if keep else orthonormal(B, overwrite=True)


_MISSING = object()


def _stacked(M, n_components, n_oversamples, n_iter, normalizer, transpose, flip_sign, seeds, driver, sketch,
             block_rows):
    """The whole-stack path for a batch of small dense matrices with the default start (None if it
    does not apply, or a matrix needs the one-call path: ``batch.stacked_randomized_svd``)."""
    if not (isinstance(M, np.ndarray) and M.ndim == 3 and M.dtype.kind in "biuf") or sketch != "auto":
        return None
    if block_rows is not None or M.shape[0] == 0 or min(M.shape[1:]) == 0:
        return None
    if M.shape[1] * M.shape[2] > STACKED_MAX_ENTRIES:
        return None
    k, p, n_iter, _, transpose, _, _, _ = check_options(
        M[0], n_components, n_oversamples, n_iter, normalizer, transpose, flip_sign, driver, sketch, 0)
    if transpose == "auto":
        transpose = M.shape[1] < M.shape[2]
    return stacked_in_parallel(M, k, k + p, n_iter, seeds, bool(flip_sign), transpose=bool(transpose))


def randomized_svd(M=_MISSING, n_components=_MISSING, *, n_oversamples=10, n_iter="auto",
                   power_iteration_normalizer="auto", transpose="auto", flip_sign=True, random_state=None,
                   svd_lapack_driver="gesdd", sketch="auto", check_finite=True, backend=None, block_rows=None,
                   A=_MISSING):
    """Truncated SVD by randomized subspace iteration, with scikit-learn's interface.

    Same parameters, defaults and return contract as
    ``sklearn.utils.extmath.randomized_svd`` (the matrix may also be passed as
    ``A=``). The range finder works on the row space: by default it starts
    from a d x l Gaussian test matrix Omega (l = n_components + n_oversamples),
    as scikit-learn's does, and takes n_iter + 1 power steps
    ``V <- orth(A^T (A V))``, each ONE pass over A (fused kernel; for narrow
    dense A, products with the Gram matrix A^T A, one SYRK in all); the result
    is the SVD of ``B = A V``. V spans ``A^T Q`` for scikit-learn's basis
    ``Q`` of ``range(A (A^T A)^q Omega)``, and ``A V V^T`` is the best
    approximation with rows in that span, which scikit-learn's ``Q Q^T A`` also
    has: at least as accurate at equal ``n_iter``, with n_iter + 2 passes over
    A instead of 2 n_iter + 2. ``sketch="countsketch"`` starts from a CountSketch ``S A``
    instead (one O(nnz) pass; saves one pass over A, but with l = k + p rows it
    is not a subspace embedding: two heavy rows of A hashed to one bucket lose
    a direction, so only use it with power iterations on matrices without
    dominant rows).

    float32 A on the Gram route with n_iter >= 4 replaces the last three steps by
    a Rayleigh-Ritz step over two Krylov blocks ``[V, G V]`` (G = A^T A, two
    products with G) and finishes on the top k Ritz vectors (B = A V has k
    columns): not more accurate by construction, but on every spectrum tried
    (flat to steep, k = 20-100) at most 0.9x scikit-learn's worst excess error,
    and far below it on decaying spectra; refused (the steps run) where G's
    float32 rounding could show (``InMemory._gram_ritz_tail``).

    On in-memory tall matrices too wide for the Gram route (dense, or sparse
    with many entries per row), the default start runs block Krylov iteration
    instead (``fastlr._krylov``; C. Musco and C. Musco, NeurIPS 2015): it keeps
    every block ``Omega, G Omega, ..., G^q Omega`` (G = A^T A) and finishes with
    the best approximation whose rows lie in their span. Each step's pass
    returns ``A V`` too, so the finish needs one more pass: 2 q + 1 passes,
    with q = ``min((n_iter + 3) // 2, ceil(sqrt(2 n_iter + 2)))`` (4 for
    n_iter = 7: 9 passes where subspace iteration takes 17), at least
    scikit-learn's accuracy at the same ``n_iter`` on every spectrum tested
    (tests/test_worst_case_accuracy.py; bench/README.md, seventh session).
    At x86-64-v3, l = 17-20 (k = 10 at the default p) takes blocks of 16
    columns, one of the kernel's register tiles in float32 and two in
    float64, and one block more: 2 q + 3 passes of 16 columns cost less than
    2 q + 1 of 20, for a space as accurate or more. float32 A on the Gram
    route with d large enough (about 1000 at k = 50) takes blocks of 16
    columns, ``q + ceil(l / 16) + 1`` of them, instead of the SYRK. They
    are judged as they are built: refused (the Gram route runs) where 16
    top Ritz values coincide, or where after 6 blocks their Ritz sums grow
    too slowly to converge by a cap a few blocks deeper; at the planned
    depth kept where converged, else deepened a block at a time up to that
    cap while they promise to converge, else refused
    (``fastlr._krylov.krylov_block``, ``_NarrowWatch``).

    Parameters
    ----------
    M : array_like or scipy.sparse matrix, shape (n, d)
        Dense (any memory order) or sparse (CSR is best; other formats are
        converted once). float32 stays float32; other real dtypes (integers,
        bool) compute in float64. A ``np.memmap`` is read in row blocks
        (bounded memory); a row-chunked dask array is processed a task per
        block (U comes back as a persisted dask array); neither takes
        ``transpose=True``. A 3-D array (b, n, d) or a list of b matrices of one
        shape is a batch: the matrices are factored side by side (one per
        fastlr thread, each with one kernel and one BLAS thread) and the
        factors come back stacked, U (b, n, k), s (b, k), Vt (b, k, d); an int
        ``random_state`` seeds every matrix alike (as a loop would), a
        RandomState or Generator draws a seed per matrix in order.
    n_components : int
        Number of singular triplets, >= 1; above ``min(n, d)``, ``min(n, d)``
        triplets are returned (as scikit-learn does).
    n_oversamples : int, default 10
        Extra columns: the subspace has ``l = n_components + n_oversamples``
        columns (at most ``d``).
    n_iter : int or "auto", default "auto"
        Power iterations; "auto" is 7 when ``n_components < 0.1 * min(A.shape)``, else 4.
        For the block Krylov finder (see above) it sets the depth q.
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default "auto"
        Renormalization between power iterations ("auto": "none" for at most two
        power steps in all, else "LU"; the default start takes n_iter + 1).
        It acts on d x l matrices, so even "QR" is cheap.
    transpose : bool or "auto", default "auto"
        Run the range finder on ``A.T``. Its d x l work arrays (the start, the
        power steps' products) then live on the smaller side of a wide matrix:
        "auto" transposes when n < d (as scikit-learn's "auto" does), so a
        330 x 2,000,000 matrix needs 330 x l of them, not 2,000,000 x l, except
        where the block Krylov finder runs on A's own rows (dense or sparse
        in-memory A whose n rows hold its d x l (q + 1) space four times over,
        and too many for the Gram route on A A^T: its steps are then one fused
        pass each). The transposed finder costs one more pass over A (it ends
        with the same Rayleigh-Ritz step on A's rows as the untransposed one).
        Row-blocked input is never transposed.
    flip_sign : bool, default True
        Make the largest-magnitude entry of each left singular vector positive
        (scikit-learn's ``svd_flip`` convention).
    random_state : None, int, numpy RandomState or Generator, default None
        Seed of the test matrix. None draws fresh entropy (never the global np.random).
    svd_lapack_driver : {"gesdd", "gesvd"}, default "gesdd"
        LAPACK driver for the small SVDs.
    sketch : {"auto", "countsketch", "gaussian"}, default "auto"
        First pass: "auto", the Gaussian start above; "countsketch", a
        CountSketch ``S A`` (l x d); "gaussian", a dense Gaussian ``S A``
        (l x n Gaussian S, one GEMM).
    check_finite : bool, default True
        Accepted for compatibility; NaN or inf in A always raise ValueError.
        They show up in the first pass's small result (a sketch, or
        ``A^T A Omega``), which is checked at a cost of O(d l), not a pass over A.
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.
    block_rows : int, optional
        Rows per block for a numpy array or memmap read in row blocks (see
        ``fastlr.scw``).

    Returns
    -------
    U : ndarray, shape (n, k)
    s : ndarray, shape (k,)
        Descending; zero beyond the numerical rank of A.
    Vt : ndarray, shape (k, d)
        k = min(n_components, n, d).

    Raises
    ------
    ValueError
        Bad sizes or options, empty A, NaN/inf in A.
    TypeError
        A not a real numeric matrix; random_state of an unknown type.

    Notes
    -----
    Entries of any finite magnitude are handled: the power steps rescale V by
    a power of two near sigma_1(A), so float64 entries near 1e-200 or 1e200
    and float32 entries near 1e18 give singular values accurate to rounding.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. Tropp, "Finding structure with randomness",
    SIAM Review 53(2), 2011. K. Clarkson and D. Woodruff, "Low rank approximation
    and regression in input sparsity time", STOC 2013.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((300, 80))
    >>> U, s, Vt = fastlr.randomized_svd(A, 5, random_state=0)
    >>> U.shape, s.shape, Vt.shape
    ((300, 5), (5,), (5, 80))
    """
    if A is not _MISSING:
        if M is not _MISSING:
            raise TypeError("randomized_svd: got the matrix twice (M and A); pass one")
        M = A
    if M is _MISSING or n_components is _MISSING:
        raise TypeError("randomized_svd: missing required argument " + ("'M'" if M is _MISSING else "'n_components'"))
    if is_batch(M):  # many matrices of one shape: side by side, stacked factors
        seeds = seeds_for(random_state, len(M))  # drawn once: the stacked path and its fallback agree
        stacked = _stacked(M, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose,
                           flip_sign, seeds, svd_lapack_driver, sketch, block_rows)
        if stacked is not None:
            return stacked
        return run_batch(lambda X, rs: randomized_svd(
            X, n_components, n_oversamples=n_oversamples, n_iter=n_iter,
            power_iteration_normalizer=power_iteration_normalizer, transpose=transpose, flip_sign=flip_sign,
            random_state=rs, svd_lapack_driver=svd_lapack_driver, sketch=sketch, check_finite=check_finite,
            backend=backend, block_rows=block_rows), M, random_state=seeds)
    check_bool(check_finite, "check_finite")
    op = operand(M, backend=backend, block_rows=block_rows).check_nonempty()
    k, p, n_iter, normalizer, transpose, driver, sketch, seed = check_options(
        op, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign,
        svd_lapack_driver, sketch, random_state)
    if transpose == "auto":
        transpose = (op.shape[0] < op.shape[1] and op.transposable
                     and not (sketch == "auto" and _krylov_keeps_rows(op, k + p, n_iter)))
    finder = op.T if transpose is True else op
    if n_iter > 0 or sketch == "auto":
        finder = finder.for_power_steps()
    with blas_single_thread():
        V = None
        if sketch == "auto" and krylov_applies(finder, k + p, n_iter):
            f = krylov_factors(finder, k, k + p, n_iter, seed, driver)
            if f is not None and transpose is not True:
                return op.truncate(f, k, flip_sign=bool(flip_sign))
            if f is not None:  # the top k Ritz vectors of A^T's rows: a basis of A's columns
                V = np.ascontiguousarray(f.V @ f.X[:, :k], dtype=op.dtype)
        if V is None:
            V = range_basis(finder, k + p, sketch=sketch, n_iter=n_iter, normalizer=normalizer, seed=seed, k=k)
        if transpose is True:
            # V spans the column space of A; A^T V (one pass) spans its row space. Finishing on A's rows
            # as the untransposed path does (Rayleigh-Ritz: the SVD of A Q) keeps its exactness: the
            # columns of A Vt^T are exactly orthogonal, as PCA scores are expected to be.
            V = np.ascontiguousarray(row_space_basis(finder, finder.times(V)), dtype=op.dtype)
        f = basis_factors(op, V, k, driver)
        return op.truncate(f, k, flip_sign=bool(flip_sign))
