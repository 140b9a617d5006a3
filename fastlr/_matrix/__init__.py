"""The matrix layer: one interface for "a matrix fastlr makes passes over".

Every algorithm (sketches, SCW, randomized_svd, learned-sketch training, GD)
takes an :class:`Operand` from :func:`operand` and asks it for products
(``S A``, ``A V``, ``A^T W``, ``A^T A V``, ...), never for its storage. Three
storages implement it:

* :class:`InMemory` - a dense ndarray (C or F order) or a scipy.sparse CSR/CSC
  matrix; it picks the kernel (or BLAS) for each product and is the only
  caller of the matrix kernels;
* :class:`RowBlocks` - an ndarray or ``np.memmap`` read one row block at a time
  (bounded memory); each block is an ``InMemory``;
* :class:`DaskRows` - a row-chunked dask array, a task per block.

Sketches describe themselves as leaves (``Sketch.parts()``; each leaf's
``sketch_of(op)`` calls ``op.countsketch`` or ``op.dense_sketch``), so this
layer never imports the sketch classes.
"""

import numpy as np

from .base import Operand, as_operand
from .blocks import DEFAULT_BLOCK_BYTES, RowBlocks, block_rows_for, on_each_block, row_blocks
from .dask import DaskRows, is_dask_array
from .memory import STREAM_ENTRY_WORK, InMemory, seeded_countsketch, threads_for

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DaskRows",
    "InMemory",
    "Operand",
    "RowBlocks",
    "STREAM_ENTRY_WORK",
    "as_operand",
    "block_rows_for",
    "is_dask_array",
    "on_each_block",
    "operand",
    "row_blocks",
    "seeded_countsketch",
    "threads_for",
]


def operand(A, *, name: str = "A", backend=None, block_rows=None) -> Operand:
    """The operand for A: ``InMemory`` (ndarray, scipy.sparse, array-likes), ``RowBlocks``
    (``np.memmap``, or any ndarray when ``block_rows`` is given) or ``DaskRows`` (a dask
    array). An Operand passes through unchanged (``backend``/``block_rows`` must then be None).

    Checks A's type and dtype (errors name ``name``); emptiness is the caller's to check.
    """
    if isinstance(A, Operand):
        if backend is not None or block_rows is not None:
            return as_operand(A, backend=backend, block_rows=block_rows)
        return A
    if is_dask_array(A):
        if block_rows is not None:
            raise ValueError("block_rows: not used for dask arrays; their row chunks are the blocks")
        return DaskRows(A, name=name, backend=backend)
    if isinstance(A, np.memmap) or (block_rows is not None and isinstance(A, np.ndarray)):
        return RowBlocks(A, block_rows, name=name, backend=backend)
    if block_rows is not None:
        raise ValueError("block_rows: only used for numpy arrays, memory maps and dask arrays")
    return InMemory(A, name=name, backend=backend)
