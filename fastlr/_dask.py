"""learn_sketch's training matrices from a dask bag or dask.delayed loaders, on any dask scheduler.

``DaskMatrices`` loads and prepares each matrix once on a worker, where it stays; every step maps
the gradient over the batch's matrices where they live and sums the gradients here. (dask arrays
as the matrix of scw / randomized_svd / sketches are the matrix layer's: ``_matrix.DaskRows``.)
dask is imported only when a dask object is passed in.
"""

from __future__ import annotations

import operator
import sys

from ._linalg import blas_single_thread
from ._matrix.dask import is_dask_array
from ._threads import thread_limit

__all__ = ["DaskMatrices", "gather_matrices", "is_dask_array", "is_dask_matrices"]


# --------------------------------------------------------------------------- learn_sketch's matrices


def is_dask_matrices(matrices) -> bool:
    """True for a ``dask.bag.Bag`` or a list/tuple holding ``dask.delayed`` objects (dask not imported)."""
    bag = sys.modules.get("dask.bag")
    if bag is not None and isinstance(matrices, bag.Bag):
        return True
    delayed = sys.modules.get("dask.delayed")
    return (delayed is not None and isinstance(matrices, (list, tuple))
            and any(isinstance(x, delayed.Delayed) for x in matrices))


def _items(matrices) -> list:
    """One delayed object (or plain matrix) per matrix; a bag's partitions are persisted first."""
    import dask
    from dask.delayed import delayed

    bag = sys.modules.get("dask.bag")  # not loaded: no bag was passed in
    if bag is None or not isinstance(matrices, bag.Bag):
        return list(matrices)
    with blas_single_thread():
        parts = dask.persist(*matrices.to_delayed())  # each partition loaded once, where it is computed
        lengths = dask.compute(*[delayed(len)(p) for p in parts])
    return [delayed(operator.getitem)(p, j) for p, count in zip(parts, lengths) for j in range(count)]


def gather_matrices(matrices) -> list:
    """The matrices of a dask bag or a list of dask.delayed loaders, computed into this process."""
    import dask

    with blas_single_thread():
        return list(dask.compute(*_items(matrices)))


# Tasks run side by side: one kernel thread each. Two named functions, so that dask's dashboard
# and task stream show what runs.


def learn_sketch_load(prepare, A, name):
    with thread_limit(1):
        return prepare(A, name)


def learn_sketch_gradient(task, op):
    with thread_limit(1):
        return task(op)


def _describe(op):
    return op.shape


class DaskMatrices:
    """Training matrices that live on the workers of the active dask scheduler.

    ``prepare(A, name)`` (picklable; it returns an ``Operand``) loads, checks and prepares each
    matrix once on a worker, and the result stays there (``dask.persist``): a
    ``dask.distributed.Client`` if one is active, else dask's default (local threads). ``map``
    then runs ``task(op)`` for a batch on the workers holding the matrices; only the task (the
    sketch's values) goes out and the results (a loss and n gradient entries each) come back.

    Parameters
    ----------
    matrices : dask.bag.Bag or list of dask.delayed objects (plain matrices may be mixed in)
    name : str
        The argument's name, for error messages (``name[i]`` for matrix i).
    prepare : callable
    """

    def __init__(self, matrices, name: str, prepare):
        import dask
        from dask.delayed import delayed

        items = _items(matrices)
        if not items:
            raise ValueError(f"{name}: is empty; at least one matrix is needed")
        tasks = [delayed(learn_sketch_load)(prepare, A, f"{name}[{i}]") for i, A in enumerate(items)]
        with blas_single_thread():
            self.ops = dask.persist(*tasks)
            shapes = dask.compute(*[delayed(_describe)(op) for op in self.ops])
        for i, shape in enumerate(shapes):
            if shape != shapes[0]:
                raise ValueError(f"{name}[{i}]: has shape {shape}, but {name}[0] has shape {shapes[0]}")
        self.count, self.shape = len(self.ops), shapes[0]

    def map(self, task, batch: list[int]) -> list:
        """``[task(op_i) for i in batch]``, each computed on the worker that holds matrix i."""
        import dask
        from dask.delayed import delayed

        shared = delayed(task)  # one graph node: shipped once per worker, not once per matrix
        with blas_single_thread():
            return list(dask.compute(*[delayed(learn_sketch_gradient)(shared, self.ops[i]) for i in batch]))
