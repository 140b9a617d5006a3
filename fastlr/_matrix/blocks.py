"""Matrices larger than memory: an ndarray or ``np.memmap`` read one row block at a time.

Every pass is a sum or a stack of per-block terms: ``S A = sum_b S[:, rows_b] A_b``,
``A^T A V = sum_b A_b^T (A_b V)``, and ``A V`` is one block of rows per block.
Only one block (converted to float) is in memory at a time, plus the small
factors and B = A V (n x r). ``block_rows`` sets the block size (default:
blocks of about ``DEFAULT_BLOCK_BYTES`` as float64).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import numpy as np

from .._validation import as_matrix, check_int, dtype_for
from ..lowrank import LowRank
from .base import Operand
from .memory import InMemory

__all__ = ["DEFAULT_BLOCK_BYTES", "RowBlocks", "block_rows_for", "on_each_block", "row_blocks"]

#: Bytes of one row block after conversion to float64 (the default block size).
DEFAULT_BLOCK_BYTES = 64 * 2**20

_block_hook = contextvars.ContextVar("fastlr_block_hook", default=None)


@contextmanager
def on_each_block(fn):
    """Call ``fn()`` after every row block read by the ``RowBlocks`` made inside the ``with`` block.

    A progress hook for code that does not expose one, e.g. ``fastlr.randomized_svd`` of a
    memory-mapped array: ``with on_each_block(bar.update): randomized_svd(A, k)``.
    """
    token = _block_hook.set(fn)
    try:
        yield
    finally:
        _block_hook.reset(token)


def block_rows_for(A, block_rows: int | None = None) -> int:
    """Rows per block: ``block_rows`` if given, else blocks of about DEFAULT_BLOCK_BYTES as float64."""
    if block_rows is not None:
        return check_int(block_rows, "block_rows", minimum=1)
    row_bytes = 8 * max(int(np.prod(A.shape[1:])), 1)
    return max(1, DEFAULT_BLOCK_BYTES // row_bytes)


def row_blocks(n: int, block_rows: int):
    """``(start, stop)`` of consecutive row blocks covering ``range(n)``."""
    for start in range(0, n, block_rows):
        yield start, min(start + block_rows, n)


class RowBlocks(Operand):
    """An ndarray or memmap as row blocks, each converted to float only while it is used.

    Parameters
    ----------
    A : numpy.ndarray or numpy.memmap, shape (n, d)
    block_rows : int, optional
        Rows per block (default: about DEFAULT_BLOCK_BYTES per block as float64).
    name, backend :
        As for ``InMemory``.
    """

    def __init__(self, A, block_rows=None, *, name: str = "A", backend=None):
        if not isinstance(A, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array or memmap, got {type(A).__name__}")
        if A.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array, got ndim={A.ndim} with shape {A.shape}")
        self.dtype = dtype_for(A, name)
        self.A = A
        self.name = name
        self.backend = backend
        self.shape = A.shape
        self.step = block_rows_for(A, block_rows)
        self.on_block = _block_hook.get()  # called after each block read (e.g. a progress bar's update)

    def __repr__(self) -> str:
        return f"RowBlocks(shape={self.shape}, dtype={self.dtype}, block_rows={self.step})"

    @property
    def n_blocks(self) -> int:
        return -(-self.shape[0] // self.step)

    def for_each_block(self, fn) -> None:
        """Call ``fn(start, stop, block)`` on each row block, an ``InMemory`` of floats.

        The block is dropped before the next one is read, so one block is in memory at a time.
        """
        for start, stop in row_blocks(self.shape[0], self.step):
            # no local name for the block: the previous one is freed before the next is read
            fn(start, stop, InMemory.wrap(as_matrix(np.asarray(self.A[start:stop]), self.name), name=self.name,
                                          backend=self.backend))
            if self.on_block is not None:
                self.on_block()

    def _sum(self, shape, term) -> np.ndarray:
        total = np.zeros(shape, dtype=self.dtype)

        def add(start, stop, block):
            np.add(total, term(start, stop, block), out=total)

        self.for_each_block(add)
        return total

    def column_sums(self) -> np.ndarray:
        """``A^T 1`` in float64: the blocks' sums, added."""
        total = np.zeros(self.shape[1])

        def add(start, stop, block):
            total[:] += block.column_sums()

        self.for_each_block(add)
        return total

    def centered_squared_norm(self, mu) -> float:
        total = [0.0]

        def add(start, stop, block):
            total[0] += block.centered_squared_norm(mu)

        self.for_each_block(add)
        return total[0]

    def residual_norm(self, approximation) -> float:
        """``Operand.residual_norm`` a row block at a time (A is never converted whole)."""
        norms = []
        self.for_each_block(lambda start, stop, block: norms.append(block.residual_norm(
            LowRank(approximation.U[start:stop], approximation.s, approximation.Vt))))
        return float(np.hypot.reduce(norms))

    def row_squared_norms(self) -> np.ndarray:
        out = np.zeros(self.shape[0])

        def put(start, stop, block):
            out[start:stop] = block.row_squared_norms()

        self.for_each_block(put)
        return out

    def countsketch(self, rows, values, m: int) -> np.ndarray:
        return self._sum((m, self.shape[1]),
                         lambda start, stop, block: block.countsketch(rows[start:stop], values[start:stop], m))

    def countsketch_seeded(self, seed: int, m: int, start: int = 0) -> np.ndarray:
        return self._sum((m, self.shape[1]),
                         lambda lo, hi, block: block.countsketch_seeded(seed, m, start + lo))

    def dense_sketch(self, G) -> np.ndarray:
        return self._sum((G.shape[0], self.shape[1]), lambda start, stop, block: block.dense_sketch(G[:, start:stop]))

    def gram_product(self, V) -> np.ndarray:
        return self._sum((self.shape[1], V.shape[1]), lambda start, stop, block: block.gram_product(V))

    def times(self, V) -> np.ndarray:
        B = np.empty((self.shape[0], V.shape[1]), dtype=self.dtype)

        def put(start, stop, block):
            B[start:stop] = block.times(V)

        self.for_each_block(put)
        return B

    def thin_svd(self, B, k: int, driver: str = "gesdd"):
        return InMemory.wrap(B, name="B", backend=self.backend).thin_svd(B, k, driver)
