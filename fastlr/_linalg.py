"""Small dense helpers shared by the algorithms: thin SVDs, orthonormal bases, rank cuts, the
svd_flip sign convention, exact power-of-two scaling and BLAS thread limits.

No fastlr imports: the products with a large matrix that ``thin_svd`` needs are passed in by the
caller (the algorithms run them on fastlr's kernels).
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np
import scipy.linalg
from scipy.linalg.lapack import dgeqrf as _geqrf, dgesdd as _gesdd, dorgqr as _orgqr
from threadpoolctl import ThreadpoolController

__all__ = [
    "LAPACK_DRIVERS", "blas_call", "blas_limit", "blas_product", "blas_single_thread", "blas_swapped", "blas_times",
    "column_extremes", "column_peak_signs",
    "complete", "flip_signs", "gram", "normalize", "orthonormal", "peak", "peak_signs", "power_of_two", "sketch_svd",
    "svqb", "thin_svd", "truncate", "truncate_parts",
]

LAPACK_DRIVERS = ("gesdd", "gesvd")

#: B with at most this many rows per column gets LAPACK's SVD directly.
_LAPACK_ROWS_PER_COLUMN = 16

#: A round of SVQB whose scaled Gram matrix has smallest eigenvalue above this
#: yields Q orthonormal to working precision (loss ~ eps / theta_min).
_SVQB_DONE = 0.1
#: The same for float32 B, whose factors are returned in float32: one round's loss of orthogonality,
#: eps64 / theta_min, is then at most 2e-10, far below float32's rounding (a second round over the
#: 5760 x 50 B of randomized_svd's float32 finish cost 1.3 ms of its 1.8).
_SVQB_DONE_FLOAT32 = 1e-6
_SVQB_MAX_ROUNDS = 4

_controller = None
_controller_lock = threading.Lock()


class _BlasLimit:
    """BLAS libraries set to n threads inside the block, each restored on exit; a library already at
    n is not touched. threadpoolctl's ``limit`` sets every library even then (~15 us), and OpenBLAS's
    next call after ``openblas_set_num_threads`` ran slower: the 10 ms sgemm of 5760 x 1080 by 1080 x 60,
    already on one thread, by 0.12-0.3 ms (medians of paired rounds). ``libraries``: (controller, its
    thread-count getter) pairs (``_thread_getter``)."""

    def __init__(self, libraries, n: int):
        self.libraries, self.n, self.restore = libraries, n, []

    def __enter__(self):
        for lib, threads in self.libraries:
            old = threads()
            if old != self.n:
                lib.set_num_threads(self.n)
                self.restore.append((lib, old))
        return self

    def __exit__(self, *exc):
        while self.restore:
            lib, old = self.restore.pop()
            lib.set_num_threads(old)
        return False


def _thread_getter(lib):
    """A function of no arguments giving ``lib.num_threads``: for OpenBLAS's pthreads build the count it keeps
    (its exported ``blas_cpu_number``, which ``openblas_get_num_threads`` returns and ``openblas_set_num_threads``
    sets) read in C, without a Python frame, else OpenBLAS's own getter (ctypes), else the property. The property
    runs three Python frames and an f-string per read, which a product's BLAS route pays on every call: 40-50 us
    for NumPy's and SciPy's OpenBLAS right after a 5760 x 1080 GEMM has flushed the caches (Zen 2), 0.4% of a
    10 ms sgemm; the getter's ctypes call 0.8 us (5 us after the GEMM), the counter's read 0.1 us."""
    try:
        if lib.internal_api == "openblas" and lib.threading_layer == "pthreads":
            getter = lib._get_symbol("openblas_get_num_threads")  # threadpoolctl's own lookup (3.x)
            if getter is not None and getter() == lib.num_threads:
                return _counter(lib, getter) or getter
    except (AttributeError, TypeError):  # another threadpoolctl: its public property
        pass
    return lambda: lib.num_threads


def _counter(lib, getter):
    """``getattr(blas_cpu_number, "value")`` as a C-level callable where ``lib`` exports that counter and it reads
    what ``getter`` returns; else None."""
    try:
        count = ctypes.c_int.in_dll(lib.dynlib, "blas_cpu_number")  # threadpoolctl's handle on the library
    except (AttributeError, ValueError, TypeError):  # not exported (ValueError), or another threadpoolctl
        return None
    return functools.partial(getattr, count, "value") if count.value == getter() else None


def _libraries() -> list:
    """(threadpoolctl's controller, ``_thread_getter``) of each BLAS library loaded, found once."""
    global _controller
    if _controller is None:
        with _controller_lock:
            if _controller is None:  # found once
                _controller = [(lib, _thread_getter(lib))
                               for lib in ThreadpoolController().select(user_api="blas").lib_controllers]
    return _controller


def blas_limit(n: int):
    """A context manager limiting BLAS to n threads (libraries already at n are left alone)."""
    return _BlasLimit(_controller if _controller is not None else _libraries(), n)


def blas_call(n: int, fn, *args):
    """``fn(*args)`` with BLAS on n threads: inside ``blas_limit(n)`` where a library runs another count now, else
    directly (the limit's object and frames cost ~10 us right after a large GEMM has flushed the caches, on every
    product). The counts are read at each call: the user may have set others since (threadpoolctl)."""
    for _, threads in _controller if _controller is not None else _libraries():
        if threads() != n:
            with blas_limit(n):
                return fn(*args)
    return fn(*args)


def blas_single_thread():
    """Limit BLAS to one thread: the algorithms alternate fastlr's OpenMP kernels with
    small LAPACK calls, and two spinning thread pools on the same cores slow both
    down (by several times on a busy 2-core machine). Large products run on
    fastlr's own threads, or on BLAS with fastlr's thread count (``scw._dense_product``).
    """
    return blas_limit(1)


def blas_times(M: np.ndarray, F: np.ndarray, swap: bool | None = None) -> np.ndarray:
    """``M @ F`` by BLAS, C order. M the transpose of a C-order matrix (``A.T`` of C-order A, or F-order
    A) goes in as ``(F.T @ M.T).T`` where OpenBLAS runs that layout faster (1 thread, 20-60 columns):
    float64 always (5760 x 1080 C-order A, ``A.T @ W``, 60 columns: 18.2 vs 19.9 ms with the Haswell
    kernel on a Zen 4, 18.0 vs 25.9 SkylakeX; the wide 1080 x 5760's ``A.T @ W``: 18.3 vs 19.4, 17.9 vs 26.2),
    float32 where the sum runs over M's long side (``A.T @ W`` of tall A: 8.5 vs 10.4, 9.7 vs 11.7; over the
    short side, the wide case, 11.5 vs 10.8 ms with SkylakeX: left as it is). ``A @ V`` of C-order A
    stays as it is (float32 with SkylakeX: 10.7 vs 11.6 ms the other way). ``swap`` (for such M only)
    overrides the float64/float32 rule: the dense product choice measures it per machine and width
    (``choice.blas_swap``: on a Zen 2 the Haswell kernel ran the swapped layout 2-10% slower at widths
    6 or 7 mod 8)."""
    return blas_product(M, F, blas_swapped(M, swap))


def blas_swapped(M: np.ndarray, swap: bool | None = None) -> bool:
    """Whether ``blas_times(M, F, swap)`` runs ``(F.T @ M.T).T``: M the transpose of a C-order matrix, and ``swap``
    or, for None, its float64/float32 rule. Depends on M's layout, dtype and shape only: a product's route reads it
    once (``InMemory._route``; M's two flags cost ~7 us a call right after a large GEMM has flushed the caches)."""
    if M.flags.f_contiguous and not M.flags.c_contiguous:
        return bool(M.dtype == np.float64 or M.shape[1] >= M.shape[0]) if swap is None else bool(swap)
    return False


def blas_product(M: np.ndarray, F: np.ndarray, swapped: bool) -> np.ndarray:
    """``M @ F`` by BLAS, C order, as ``(F.T @ M.T).T`` where ``swapped`` (``blas_swapped``). NumPy's matmul of two
    2-D ndarrays returns a new C-order array: only the swapped layout's result needs the copy (the no-op
    ``ascontiguousarray`` on the other cost 3-5 us a call right after a one-column GEMV over 5760 x 1080 or
    100000 x 200 has flushed the caches, Zen 4; bench/README.md, twenty-second session, HV)."""
    if swapped:
        return np.ascontiguousarray((F.T @ M.T).T)
    return M @ F


def peak(X) -> float:
    """max |X| (0.0 for an empty X; NaN or inf when X holds them)."""
    if X.size == 0:
        return 0.0
    return float(max(np.max(X), -np.min(X)))


def power_of_two(x: float) -> float:
    """The power of two nearest to x > 0 (1.0 for 0, inf or NaN): scaling by it is exact."""
    if not (np.isfinite(x) and x > 0.0):
        return 1.0
    return float(np.ldexp(1.0, int(np.round(np.log2(x)))))


def orthonormal(Z: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """An orthonormal basis of Z's columns (same shape and dtype); ``overwrite``: Z's memory may be
    reused (saves a copy of a tall Z)."""
    return scipy.linalg.qr(Z, mode="economic", overwrite_a=overwrite, check_finite=False)[0]


def normalize(Z: np.ndarray, normalizer: str) -> np.ndarray:
    """Z renormalized between power steps: "QR", "LU" or "none" (exact power-of-two scaling)."""
    if normalizer == "QR":
        return orthonormal(Z)
    if normalizer == "LU":
        return scipy.linalg.lu(Z, permute_l=True, check_finite=False)[0]
    return Z / power_of_two(peak(Z))  # "none": same span, magnitude near 1 (exact scaling)


def svqb(X: np.ndarray, G: np.ndarray | None = None):
    """One round of SVQB (Stathopoulos and Wu, 2002): ``X = Q R`` via the Gram matrix.

    Columns are scaled to unit norm, the Gram matrix is diagonalized, and
    eigenvalues are floored so rank-deficient X gives bounded Q. ``G``: ``X^T X``
    when the caller has it (else ``gram(X)``).

    Returns
    -------
    M : (l, l) with ``Q = X @ M``;  R : (l, l) with ``X = Q @ R``;  theta_min : float,
    the smallest eigenvalue of the scaled Gram matrix (near 1: this round's Q is
    orthonormal to working precision).
    """
    G = gram(X) if G is None else G
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    norms[norms == 0.0] = 1.0
    C = G / np.outer(norms, norms)
    theta, Z = np.linalg.eigh(C)
    theta_min = float(theta[0])
    floor = max(theta[-1], 1.0) * X.shape[1] * np.finfo(np.float64).eps
    theta = np.maximum(theta, floor)
    root = np.sqrt(theta)
    M = (Z / norms[:, None]) / root
    R = (root[:, None] * Z.T) * norms
    return M, R, theta_min


def gram(X: np.ndarray) -> np.ndarray:
    """``X^T X`` of a tall float64 X, by BLAS: NumPy sends ``X.T @ X`` to SYRK (half a GEMM's work,
    exactly symmetric). Zen 2, x86-64-v3, one thread: 1.7x faster than fastlr's ``A.T @ W`` kernel
    with W = X at 5760 x 5-20, 1.35-1.45x at 100000 x 5-20, 1.01-1.08x at 40-100 columns."""
    return X.T @ X


#: ``thin_svd`` skips B's power-of-two scaling when the largest diagonal entry of ``B^T B`` lies
#: within 2^+-GRAM_RANGE: B's entries are then below 2^(GRAM_RANGE / 2) (nothing overflows), and
#: what underflows lies below 2^-(1022 - GRAM_RANGE) of the largest column's squared norm, far under
#: eps^2, so the scaled and unscaled SVQB agree to rounding.
_GRAM_RANGE = 500


def thin_svd(B: np.ndarray, k: int, product, driver: str = "gesdd"):
    """Thin SVD of a tall n x r matrix B: (UB (n x min(k, r)), sB (r,), X (r x r)).

    Tall B is orthonormalized by rounds of SVQB (Gram matrices and products,
    one pass over an n x r matrix each, in float64; usually two rounds, more
    only for graded spectra; float32 B usually one, as its factors need only
    float32's precision), then the small r x r factor gets LAPACK's SVD:
    several times faster than Householder QR on tall-skinny matrices, with the
    same backward error. Short B goes to LAPACK directly.

    ``product(X, Y)`` computes ``X @ Y`` for the tall float64 X: the caller chooses how (fastlr's
    kernels or BLAS). The Gram matrices are BLAS's SYRK (``gram``).
    """
    n, r = B.shape
    if r == 0:
        return np.zeros((n, 0)), np.zeros(0), np.zeros((0, 0))
    B64 = np.asarray(B, dtype=np.float64)
    G = None
    if n > _LAPACK_ROWS_PER_COLUMN * r:
        with np.errstate(over="ignore", invalid="ignore"):  # out of range: B is scaled and G redone
            G = gram(B64)  # the first SVQB round's; its diagonal tells whether B needs scaling
        top = float(np.max(np.diag(G)))
        scaled = not (np.isfinite(top) and 2.0 ** -_GRAM_RANGE <= top <= 2.0 ** _GRAM_RANGE)
    else:
        scaled = True
    # A power-of-two scale (exact) keeps B^T B representable for entries near 1e+-200 (skipped when
    # B^T B already is: _GRAM_RANGE; saves a pass over B).
    c = power_of_two(peak(B)) if scaled else 1.0
    if c != 1.0:
        B64, G = np.multiply(B, 1.0 / c, dtype=np.float64), None
    if n <= _LAPACK_ROWS_PER_COLUMN * r:
        U, s, Xt = scipy.linalg.svd(B64, full_matrices=False, lapack_driver=driver, check_finite=False)
        return U[:, :k], s * c, Xt.T
    Q, R = B64, np.eye(r)
    done = _SVQB_DONE_FLOAT32 if B.dtype == np.float32 else _SVQB_DONE
    for _ in range(_SVQB_MAX_ROUNDS):
        M, Rj, theta_min = svqb(Q, G)
        G = None
        R = Rj @ R
        if theta_min > done:
            break  # Q @ M is orthonormal: fold it into the final product
        Q = product(Q, M)
        M = None
    P, s, Xt = _small_svd(R, driver)
    Pk = P[:, :k] if M is None else M @ P[:, :k]
    return product(Q, Pk), s * c, Xt.T


def _small_svd(R: np.ndarray, driver: str):
    """SVD of a small square float64 R; gesdd called directly (scipy.linalg.svd's checks and workspace
    query cost as much as a 20 x 20 SVD: 0.18 against 0.09 ms after a pass over a large A)."""
    if driver == "gesdd":
        P, s, Xt, info = _gesdd(R)
        if info == 0:
            return P, s, Xt
    return scipy.linalg.svd(R, lapack_driver=driver, check_finite=False)  # gesvd, or raises as SciPy does


@functools.lru_cache(maxsize=64)
def _lower_mask(m: int) -> np.ndarray:
    return np.tril(np.ones((m, m)))


def ritz_pairs(V: np.ndarray, Z: np.ndarray, *, relative: bool = False, values_only: bool = False):
    """Ritz values and vectors of a symmetric G over span(V), from V (d x r) and ``Z = G V``.

    Solves ``(V^T Z) x = theta (V^T V) x`` in float64, so V need not be orthonormal (power steps
    hand over an LU basis scaled by a power of two). Returns (theta ascending, X) with
    ``X^T V^T V X = I``: ``V X`` is an orthonormal basis of span(V) and ``(V X)^T G (V X) =
    diag(theta)``. None when V^T V is not numerically positive definite (V rank-deficient).
    ``relative``: theta only up to a positive factor (Z scaled near 1 too), for tests on their
    ratios that must not over- or underflow (V near 1e-200 and Z near 1e200 in a float64 power step).
    ``values_only``: (theta, None), without the eigenvectors.
    """
    # Scaled by a power of two near 1 / max|V| (exact; theta unchanged, as G (V / a) = Z / a): power steps
    # hand over V / c with c near sigma_1, so |V| reaches 1e200 for float64 entries near 1e-200.
    a = power_of_two(peak(V))
    b = power_of_two(peak(Z)) if relative else a
    V64, Z64 = np.multiply(V, 1.0 / a, dtype=np.float64), np.multiply(Z, 1.0 / b, dtype=np.float64)
    H = V64.T @ Z64
    try:
        if values_only:
            return scipy.linalg.eigh((H + H.T) / 2, V64.T @ V64, eigvals_only=True), None
        theta, X = scipy.linalg.eigh((H + H.T) / 2, V64.T @ V64)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return theta, X / a  # (V / a) X orthonormal: V (X / a) is


def numerical_rank(s: np.ndarray, size: int, eps: float) -> int:
    """How many of the descending singular values s lie above ``size * eps * s[0]``."""
    return int(np.count_nonzero(s > size * eps * s[0])) if s.size else 0


def sketch_svd(M: np.ndarray, eps: float, size: int | None = None):
    """Compact SVD of the sketch M in float64, cut at the numerical rank.

    Keeps singular values above ``size * eps * sigma_1`` (eps of the data's
    dtype: M carries that dtype's rounding errors; ``size`` defaults to
    ``max(M.shape)``, NumPy's matrix_rank rule). A wide M (m < d, the usual
    sketch) is first reduced by a QR of M^T, so LAPACK's SVD runs on m x m.

    Returns
    -------
    U : (m, r), s : (r,), Vt : (r, d)
    """
    M = np.asarray(M, dtype=np.float64)
    if M.shape[0] < M.shape[1]:
        # M^T = Q R (Householder, LAPACK directly: numpy's qr wrapper costs as much as the work here)
        m = M.shape[0]
        qr, tau, _, info = _geqrf(M.T)
        L = qr[:m].T * _lower_mask(m)  # R^T (geqrf keeps Householder vectors below R's diagonal)
        Q, _, info2 = _orgqr(qr, tau)
        U, s, Wt, info3 = _gesdd(L)  # M = R^T Q^T = U diag(s) (Q Wt^T)^T
        if info or info2 or info3:  # pragma: no cover - no bad arguments; m x m SVDs converge
            raise np.linalg.LinAlgError("SVD of the sketch failed")
        Vt = (Q @ Wt.T).T  # a transposed C-order V: scw takes V = Vt.T without a copy
    else:
        U, s, Vt = np.linalg.svd(M, full_matrices=False)
    r = numerical_rank(s, max(M.shape) if size is None else size, eps)
    return U[:, :r], s[:r], Vt[:r]


def complete(Q: np.ndarray, k: int) -> np.ndarray:
    """Q (n x j, orthonormal columns) extended to n x k orthonormal columns, deterministically.

    The new columns come from a fixed Gaussian matrix projected off Q: O(n k^2) work and
    memory, whatever n is.
    """
    n, j = Q.shape
    if j >= k:
        return Q
    G = np.random.default_rng(0).standard_normal((n, k - j))
    for _ in range(2):  # project twice: one pass loses orthogonality to Q in floating point
        G -= Q @ (Q.T @ G)
        G = scipy.linalg.qr(G, mode="economic", check_finite=False)[0]
    return np.hstack([Q, G])


def peak_signs(peaks: np.ndarray) -> np.ndarray:
    """svd_flip's signs from the largest-magnitude entry of each column of U: +-1 (+1 for 0)."""
    signs = np.sign(peaks)
    signs[signs == 0] = 1.0
    return signs


def flip_signs(U: np.ndarray, Vt: np.ndarray):
    """svd_flip's convention: the largest-magnitude entry of each column of U is positive."""
    signs = column_peak_signs(U)
    return U * signs, Vt * signs[:, None]


def column_peak_signs(U: np.ndarray) -> np.ndarray:
    """``peak_signs`` of U's columns: the sign of each column's first largest-magnitude entry.

    From the column maxima and minima (``column_extremes``); a column whose largest and smallest
    entry tie in magnitude takes the first of them, by argmax, as svd_flip does.
    """
    if U.shape[1] == 0:
        return np.ones(0)
    top, bottom = column_extremes(U)
    peaks = np.where(top >= -bottom, top, bottom)
    for j in np.flatnonzero((top == -bottom) & (top != 0)):
        peaks[j] = U[int(np.argmax(np.abs(U[:, j]))), j]
    return peak_signs(peaks)


def column_extremes(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, min) of each column of an n x k U. NumPy reduces a C-order U along axis 0 one k-long
    row at a time (5760 x 10: 0.18 ms for the max); here m rows at a time, each block of m rows
    viewed as one m k-long row, then the m partial results reduced (0.02 ms)."""
    n, k = U.shape
    m = max(1, 512 // max(k, 1))
    blocks = n // m
    if not U.flags.c_contiguous or blocks < 2:
        return U.max(axis=0), U.min(axis=0)
    wide = U[:blocks * m].reshape(blocks, m * k)
    top = wide.max(axis=0).reshape(m, k).max(axis=0)
    bottom = wide.min(axis=0).reshape(m, k).min(axis=0)
    if blocks * m < n:
        top = np.maximum(top, U[blocks * m:].max(axis=0))
        bottom = np.minimum(bottom, U[blocks * m:].min(axis=0))
    return top, bottom


def truncate_parts(f, k: int, dtype):
    """The rank cut of ``truncate``, for any container of U: ``(U, s, V)`` with U = f.UB's
    columns above the cut (not completed), s (k,) zero-padded, V (d x k) float64 completed."""
    kk = f.UB.shape[1]
    s = f.sB[:kk]
    keep = numerical_rank(s, max(f.B.shape[1], 1), np.finfo(dtype).eps)
    V = complete(f.V.astype(np.float64, copy=False) @ f.X[:, :keep], k)
    return f.UB[:, :keep], np.concatenate([s[:keep], np.zeros(k - keep)]), V


def truncate(f, k: int, dtype, *, flip_sign: bool = True):
    """Rank-k (U, s, Vt) in ``dtype`` from SCW factors (``scw.SCWFactors``: UB, sB, B, V, X).

    Components whose singular value is zero at working precision (rank(A) < k)
    get s = 0 and orthonormal vectors completing the others, so U and Vt stay
    orthonormal and nothing is NaN.
    """
    U, s, V = truncate_parts(f, k, dtype)
    U = complete(U, k)
    signs = column_peak_signs(U) if flip_sign else np.ones(k)
    # The signs applied and the dtype cast in one pass over U (C order whatever U's layout)
    Uo = np.empty(U.shape, dtype=dtype)
    np.multiply(U, signs, out=Uo, casting="same_kind")
    return Uo, s.astype(dtype), np.ascontiguousarray(V.T * signs[:, None], dtype=dtype)
