"""scw and randomized_svd for matrices held in row blocks: dask arrays and memory maps.

The algorithm is ``fastlr.scw``'s (see scw.py), with every pass over A split
into row blocks: ``S A`` and ``A^T A V`` are sums of per-block terms, and
``B = A V`` is one block of rows per block of A. Only the small factors
(m x d, d x r, r x r) are ever gathered in one place. The row-block operand
supplies the passes:

* ``_outofcore.ArrayRows`` - an ndarray or ``np.memmap`` read one block at a
  time (bounded memory; B = A V, n x r, is held in memory);
* ``_dask.DaskRows`` - a row-chunked dask array: a task per block, B stays a
  distributed dask array and its thin SVD is dask's tall-skinny QR (tsqr), so
  U comes back as a dask array (persisted).
"""

from __future__ import annotations

import numpy as np

from .scw import SCWFactors, check_finite_sketch, check_scw_args, sketch_basis

__all__ = ["passes", "randomized_svd", "row_operand", "scw", "sketch_parts"]


def sketch_parts(S) -> list:
    """S as a vertical stack of CountSketches and GaussianSketches (each sketched block-wise)."""
    from .learn import LearnedSketch
    from .sketch import CountSketch, GaussianSketch, StackedSketch

    if isinstance(S, LearnedSketch) and S.fixed is not None:
        return [S.learned_part(), S.fixed]
    if isinstance(S, StackedSketch):
        return [leaf for part in S.sketches for leaf in sketch_parts(part)]
    if isinstance(S, (CountSketch, GaussianSketch)):
        return [S]
    raise TypeError(f"S: {type(S).__name__} cannot be applied to row-blocked (dask or memory-mapped) input")


def row_operand(A, block_rows=None):
    """The row-block operand for A (a dask array, or an ndarray / memmap read in blocks)."""
    from ._dask import DaskRows, is_dask_array
    from ._outofcore import ArrayRows

    if is_dask_array(A):
        if block_rows is not None:
            raise ValueError("block_rows: not used for dask arrays; their row chunks are the blocks")
        return DaskRows(A)
    return ArrayRows(A, block_rows)


def passes(S, n_iter: int) -> int:
    """Passes over A that scw makes: one per part of S, one per power iteration, one for B = A V."""
    return len(sketch_parts(S)) + n_iter + 1


def _factors(op, SA, k, *, n_iter, normalizer, driver, backend) -> SCWFactors:
    """scw.scw_factors with the passes over A done block by block by ``op``."""
    UM, sM, V = sketch_basis(SA, n_iter, normalizer, op.dtype, _gram_for(op, backend))
    return _basis_factors(op, V, k, driver, backend, UM, sM)


def _gram_for(op, backend):
    """``product_for`` of scw.sketch_basis / randomized.range_basis: a pass over the blocks per step."""
    return lambda r, steps: lambda V: op.gram(V, backend=backend)


def _basis_factors(op, V, k, driver, backend, UM=None, sM=None) -> SCWFactors:
    """scw.basis_factors (B = A V and its thin SVD) block by block."""
    B = op.times(V, backend=backend)
    UB, sB, X = op.thin_svd(B, k, driver)
    if UM is None:
        UM, sM = np.zeros((0, 0)), np.zeros(0)
    return SCWFactors(UM, sM, V, B, UB, sB, X)


def _sketch(op, S, check_finite, backend) -> np.ndarray:
    SA = op.sketch(S, backend=backend)
    if check_finite:
        check_finite_sketch(SA)
    return SA


def scw(A, S, k: int, *, n_iter: int = 0, check_finite: bool = True, block_rows=None, on_block=None,
        backend=None):
    """``fastlr.scw`` for a dask array or a memory-mapped array (row blocks).

    Returns a ``LowRank``; for dask input its U is a (persisted) dask array.
    ``on_block()`` is called after every block an array or memmap pass reads
    (``passes(S, n_iter) * n_blocks`` calls in all): a progress hook.
    """
    op = row_operand(A, block_rows)
    op.on_block = on_block
    k, n_iter = check_scw_args(op, S, k, n_iter)
    SA = _sketch(op, S, check_finite, backend)
    f = _factors(op, SA, k, n_iter=n_iter, normalizer="QR", driver="gesdd", backend=backend)
    return op.result(*op.truncate(f, k, flip_sign=True))


def randomized_svd(A, n_components, *, n_oversamples=10, n_iter="auto", power_iteration_normalizer="auto",
                   transpose="auto", flip_sign=True, random_state=None, svd_lapack_driver="gesdd",
                   sketch="auto", check_finite=True, block_rows=None, backend=None):
    """``fastlr.randomized_svd`` for a dask array or a memory-mapped array (row blocks).

    Same parameters and results as the in-memory function (U is a persisted
    dask array for dask input); ``transpose=True`` is not supported here.
    """
    from .randomized import check_options, range_basis

    op = row_operand(A, block_rows)
    k, p, n_iter, normalizer, transpose, driver, sketch, seed = check_options(
        op, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign,
        svd_lapack_driver, sketch, random_state)
    if transpose is True:
        raise ValueError("transpose: True is not supported for row-blocked (dask or memory-mapped) input")
    V = range_basis(op.shape, op.dtype, k + p, sketch=sketch, n_iter=n_iter, normalizer=normalizer, seed=seed,
                    check_finite=check_finite, apply_sketch=lambda S: op.sketch(S, backend=backend),
                    product_for=_gram_for(op, backend))
    f = _basis_factors(op, V, k, driver, backend)
    return op.truncate(f, k, flip_sign=bool(flip_sign))
