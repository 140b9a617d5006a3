"""Many matrices of one shape at once: ``randomized_svd`` / ``scw`` of a 3-D array or a list.

"Thousands of similar matrices a day" are small one by one: a single factorization of a
480 x 90 matrix cannot keep two cores busy, and a Python loop pays its overheads serially.
The batch runs the matrices side by side, one per worker thread, each with one kernel
thread and one BLAS thread (fastlr's kernels and LAPACK release the GIL), and stacks the
factors: U (b, n, k), s (b, k), Vt (b, k, d).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._linalg import blas_limit, peak_signs
from ._threads import get_num_threads, thread_limit
from ._validation import float_dtype, is_sparse, random_seed

__all__ = ["is_batch", "run_batch", "seeds_for", "stacked_in_parallel", "stacked_randomized_svd"]

#: Batches of dense matrices with at most this many entries each take the stacked path
#: (``stacked_randomized_svd``): there the per-call overhead of one factorization (a few
#: hundred microseconds of Python and small LAPACK calls) is what a loop costs.
STACKED_MAX_ENTRIES = 1 << 20


def is_batch(A) -> bool:
    """A 3-D ndarray, or a list/tuple of matrices (2-D arrays or scipy.sparse) - not one matrix."""
    if isinstance(A, np.ndarray):
        return A.ndim == 3
    # a list of lists of numbers is ONE matrix; a batch is a list of arrays or sparse matrices
    return isinstance(A, (list, tuple)) and len(A) > 0 and all(
        is_sparse(x) or (isinstance(x, np.ndarray) and x.ndim == 2) for x in A)


def _items(A, name: str) -> list:
    items = list(A)  # a 3-D array: its 2-D slices (views)
    if not items:
        raise ValueError(f"{name}: is an empty batch")
    shape = np.shape(items[0]) if not is_sparse(items[0]) else items[0].shape
    for i, X in enumerate(items):
        got = X.shape if is_sparse(X) else np.shape(X)
        if got != shape:
            raise ValueError(f"{name}[{i}]: has shape {got}, but {name}[0] has shape {shape}; a batch is of one shape")
    return items


def seeds_for(random_state, count: int) -> list:
    """One random_state per matrix: an int is used for every matrix (what a loop of calls with it
    gives); a RandomState or Generator gives a seed per matrix, drawn in order; None, fresh seeds."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return [random_state] * count
    return [random_seed(random_state) for _ in range(count)]


def run_batch(fn, A, name: str = "A", random_state=None, threads=None):
    """``fn(A_i, random_state_i)`` for every matrix of the batch A, in parallel; stacked results.

    ``fn`` returns ``(U, s, Vt)`` (or a LowRank); the batch returns ``(U, s, Vt)`` stacked along a
    new first axis. Errors name the matrix (``A[3]: ...``).
    """
    items = _items(A, name)
    # a list: one random_state per matrix, already drawn (seeds_for); else drawn here
    states = random_state if isinstance(random_state, list) else seeds_for(random_state, len(items))
    workers = min(len(items), get_num_threads() if threads is None else threads)

    def one(i):
        try:
            with thread_limit(1):
                return tuple(fn(items[i], states[i]))
        except (ValueError, TypeError) as exc:
            message = str(exc).removeprefix("A: ")  # the matrix's own name is its place in the batch
            raise type(exc)(f"{name}[{i}]: {message}") from exc

    with blas_limit(1):  # the matrices run side by side: one BLAS thread each (set once, for every worker)
        if workers <= 1:
            results = [one(i) for i in range(len(items))]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(one, range(len(items))))
    U, s, Vt = zip(*results)
    return np.stack(U), np.stack(s), np.stack(Vt)


def stacked_randomized_svd(B: np.ndarray, k: int, l: int, n_iter: int, seeds: list, flip_sign: bool,
                           transpose: bool = False):
    """randomized_svd's default path for a stack of small dense matrices B (b, n, d), as whole-stack
    array operations (each a loop of BLAS/LAPACK calls in C, no Python per matrix).

    The same algorithm as one call per matrix (Gaussian start, n_iter + 1 power steps on the row
    space, the SVD of A V), with QR between the power steps (one call renormalizes with LU or
    none; the span is the same); results agree to rounding. Returns (U, s, Vt) or None when a
    matrix needs the one-call path: not finite, rank-deficient below k, or scaled so far from 1
    that the unscaled products over- or underflow.
    """
    b, n, d = B.shape
    dtype = float_dtype(B.dtype)
    A = np.asarray(B, dtype=dtype)  # NaN/inf in A reach every power step's product: checked there
    F = A.transpose(0, 2, 1) if transpose else A  # the range finder's matrix (A^T: its columns)
    rows, cols = F.shape[1:]
    l = min(l, cols)
    if len(set(seeds)) == 1:  # one seed for all: one start, as a loop of calls with it gives
        omega = np.broadcast_to(np.random.default_rng(seeds[0]).standard_normal((cols, l)), (b, cols, l))
    else:
        omega = np.stack([np.random.default_rng(seed).standard_normal((cols, l)) for seed in seeds])
    # Products with the matrices: a loop of 2-D BLAS calls (NumPy's stacked matmul does not call BLAS
    # and ran 4-5x slower on 480 x 90 x 20); QR and SVD of the small factors: stacked LAPACK calls.
    gram = cols <= rows and cols <= 4 * l * (n_iter + 1)  # as InMemory: F^T F once, or F^T (F V) per step
    G = np.stack([X.T @ X for X in F]) if gram else None  # SYRK each
    V = omega.astype(dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for _ in range(n_iter + 1):
            Z = np.stack([G[i] @ V[i] for i in range(b)]) if gram else np.stack(
                [F[i].T @ (F[i] @ V[i]) for i in range(b)])
            if not np.isfinite(Z).all():
                return None
            V = np.linalg.qr(Z)[0]
        if transpose:  # V spans A's columns; A^T V its rows (the Rayleigh-Ritz finish of randomized_svd)
            V = np.linalg.qr(np.stack([F[i] @ V[i] for i in range(b)]))[0]
        Y = np.stack([A[i] @ V[i] for i in range(b)])  # (b, n, l)
        if not np.isfinite(Y).all():
            return None
    Qy, R = np.linalg.qr(Y.astype(np.float64))  # the SVD of the tall Y through its l x l factor
    u, sb, Xt = np.linalg.svd(R)
    tiny = np.finfo(dtype).eps * l * sb[:, :1]
    if not np.all(sb[:, k - 1:k] > tiny) or not np.all(sb[:, :1] > np.sqrt(np.finfo(dtype).tiny)):
        return None  # rank-deficient (s_k = 0 needs completed vectors) or badly scaled: the one-call path
    U = np.stack([Qy[i] @ u[i, :, :k] for i in range(b)])
    s = sb[:, :k]
    Vt = np.stack([Xt[i, :k] @ V[i].T.astype(np.float64) for i in range(b)])  # (V X_k)^T
    if flip_sign:  # svd_flip: the largest-magnitude entry of each column of U positive
        rows = np.abs(U).argmax(axis=1)  # (b, k)
        peaks = np.take_along_axis(U, rows[:, None, :], axis=1)[:, 0, :]
        signs = peak_signs(peaks)
        U = U * signs[:, None, :]
        Vt = Vt * signs[:, :, None]
    return U.astype(dtype), s.astype(dtype), np.ascontiguousarray(Vt, dtype=dtype)


def stacked_in_parallel(B: np.ndarray, k: int, l: int, n_iter: int, seeds: list, flip_sign: bool,
                        transpose: bool = False, threads=None):
    """``stacked_randomized_svd`` on contiguous slices of the batch, one per fastlr thread (BLAS on
    one thread each: small products do not gain from BLAS threads); None if any slice needs the
    one-call path."""
    workers = min(len(B), get_num_threads() if threads is None else threads)
    if workers <= 1:
        with blas_limit(1):
            return stacked_randomized_svd(B, k, l, n_iter, seeds, flip_sign, transpose)
    edges = np.linspace(0, len(B), workers + 1).astype(int)

    def part(lo, hi):
        return stacked_randomized_svd(B[lo:hi], k, l, n_iter, seeds[lo:hi], flip_sign, transpose)

    with blas_limit(1), ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(part, edges[:-1], edges[1:]))
    if any(p is None for p in parts):
        return None
    return tuple(np.concatenate(x) for x in zip(*parts))
