"""Sets of sample matrices (training, validation, test) and the threads a pass over them gets.

``learn_sketch``, ``sketch_error`` and ``fastlr demo`` take matrices as iterables of one
shape; :func:`sample_matrices` checks them into ``TrainingMatrix`` operands with messages
that name each one (``train[3]``). Small matrices are handled on one thread
(:func:`one_thread_if_small`), and a batch of matrices runs side by side on a thread pool
with one kernel thread each (:func:`batch_map`).
"""

from __future__ import annotations

from contextlib import ExitStack

from threadpoolctl import threadpool_limits

from ._gradients import TrainingMatrix
from ._threads import thread_limit
from ._validation import matrix_list

__all__ = ["SMALL_MATRIX", "batch_map", "one_thread_if_small", "sample_matrices"]


def sample_matrices(matrices, name: str, shape=None, like: str = "", first: int = 0) -> list[TrainingMatrix]:
    """Prepared matrices, all of one shape (the first one's, or ``shape``: that of ``like``).

    Error messages call them ``name[first]``, ``name[first + 1]``, ...
    """
    items = matrix_list(matrices, name)
    ops = []
    for i, A in enumerate(items):
        i += first
        op = TrainingMatrix(A, f"{name}[{i}]")
        if min(op.shape) == 0:
            raise ValueError(f"{name}[{i}]: expected a non-empty matrix, got shape {op.shape}")
        expected = shape if shape is not None else ops[0].shape if ops else None
        if expected is not None and op.shape != tuple(expected):
            other = like if shape is not None else f"{name}[0]"
            raise ValueError(f"{name}[{i}]: has shape {op.shape}, but {other} has shape {tuple(expected)}")
        ops.append(op)
    return ops


#: Matrices with fewer stored entries than this are handled on one thread (kernels and BLAS):
#: a pass over them takes microseconds, less than waking threads, and on a busy machine
#: threads that wait for a core make each pass take milliseconds.
SMALL_MATRIX = 1 << 20


def one_thread_if_small(ops, stack: ExitStack) -> bool:
    """Limit this thread's kernels and BLAS to one thread when every matrix is small."""
    if max(op.A.nnz if op.sparse else op.A.size for op in ops) >= SMALL_MATRIX:
        return False
    stack.enter_context(thread_limit(1))
    stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
    return True


def batch_map(fn, items, pool):
    """fn over items: on the pool's threads (one kernel thread each) or here."""
    if pool is None or len(items) == 1:
        return [fn(x) for x in items]

    def one(x):
        with thread_limit(1):
            return fn(x)

    return list(pool.map(one, items))
