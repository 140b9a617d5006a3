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

from ._batch_small import (
    STACKED_MAX_ENTRIES,
    stacked_in_parallel,
    stacked_randomized_svd,
)
from ._linalg import blas_limit
from ._threads import get_num_threads, thread_limit
from ._validation import is_sparse, random_seed

__all__ = ["STACKED_MAX_ENTRIES", "is_batch", "run_batch", "seeds_for", "stacked_in_parallel",
           "stacked_randomized_svd"]


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
