"""The paper's Err of a sketch on sample matrices: ``mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F``.

Indyk, Vakilian and Yuan (NeurIPS 2019) scale each matrix to sigma_1 = 1 first, so Err is
comparable across data sets; 0 means SCW with S is optimal. :func:`sketch_error` is the
public entry point; :class:`Evaluator` keeps the optimal errors of a fixed set of matrices
for evaluating many sketches on it (validation while training, the demo's table).
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import scipy.linalg

from ._backend import get_backend
from ._gradients import TrainingMatrix
from ._sample_matrices import batch_map, one_thread_if_small, sample_matrices
from ._validation import check_bool, check_int
from .scw import scw
from .sketch import Sketch

__all__ = ["Evaluator", "mean_scaled_error", "optimal_error", "sketch_error"]


def optimal_error(op: TrainingMatrix, k: int) -> tuple[float, float]:
    """(||A - A_k||_F, sigma_1) from all singular values, in float64 (the tail's squares taken of s / sigma_1, as
    they over- or underflow for entries near 1e+-200)."""
    A = op.A.toarray() if op.sparse else op.A
    s = scipy.linalg.svdvals(np.asarray(A, dtype=np.float64))
    s1 = float(s[0]) if s.size else 0.0
    return (s1 * float(np.sqrt(np.sum((s[k:] / s1) ** 2))) if s1 > 0.0 else 0.0), s1


def mean_scaled_error(S, mats: list, k: int, scales, *, backend=None, pool=None, guard: bool = False) -> float:
    """Mean ``||A - SCW(S, A)||_F / scale`` over the matrices: the one formula by which fastlr compares sketches on
    matrices (Err before the optimal error is subtracted: :class:`Evaluator`; the data-driven sketches' guards and
    trial ranking, on sigma_1 from ``spectral_norm``). S: a sketch, or a list of sketches, one per matrix (each
    judged on its own). ``scales``: each matrix's sigma_1 (1 for a zero matrix). The residual is formed, so two
    exact sketches' errors are rounding (~1e-16), which the guards' absolute tie expects; from ``||A||^2`` minus the
    top-k energy (the training loss) they would be ~1e-8. ``pool``: an executor running the matrices side by side.
    ``guard``: scw's (False: each sketch alone, as training and the guards compare sketches; True: as ``fastlr.scw``
    returns it to a user)."""
    sketches = S if isinstance(S, list) else [S] * len(mats)

    def one(i):
        A = mats[i]
        return scw(A, sketches[i], min(k, *A.shape), backend=backend, guard=guard).error(A) / scales[i]

    return float(np.mean(batch_map(one, list(range(len(mats))), pool)))


class Evaluator:
    """The paper's Err of sketches on a fixed set of matrices (optimal errors computed once)."""

    def __init__(self, ops: list[TrainingMatrix], k: int):
        self.ops = ops
        self.k = k
        best = [optimal_error(op, k) for op in ops]
        self.scale = [s1 if s1 > 0 else 1.0 for _, s1 in best]
        self.optimal = float(np.mean([tail / s for (tail, _), s in zip(best, self.scale)]))

    def error(self, S, *, backend=None, pool=None, guard: bool = False) -> float:
        """Err = mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F, each A scaled to sigma_1 = 1 (guard: scw's)."""
        return mean_scaled_error(S, [op.A for op in self.ops], self.k, self.scale, backend=backend,
                                 pool=pool, guard=guard) - self.optimal


def sketch_error(S, matrices, k: int, *, backend=None, guard: bool = True) -> float:
    """The paper's Err: ``mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F``.

    Each matrix is scaled to sigma_1 = 1 first, as in Indyk, Vakilian and Yuan
    (2019), so Err is comparable across data sets; 0 means SCW with S is optimal.

    Parameters
    ----------
    S : Sketch
        Any fastlr sketch with ``S.n`` equal to the matrices' row count.
    matrices : iterable of 2-D arrays or scipy.sparse matrices, one shape
    k : int
        Target rank, >= 1.
    backend : {"cpp", "numba", "numpy"}, optional
    guard : bool, default True
        As ``fastlr.scw``'s: with True, a sketch carrying a ``reference``
        (learned and data-driven sketches) is judged by what ``scw`` returns,
        the more accurate of it and its reference on each matrix; False: the
        sketch alone.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = [np.random.default_rng(i).standard_normal((200, 30)) for i in range(3)]
    >>> err = fastlr.sketch_error(fastlr.CountSketch(20, 200), A, k=5)
    >>> bool(err >= 0)
    True
    """
    if not isinstance(S, Sketch):
        raise TypeError(f"S: expected a fastlr sketch, got {type(S).__name__}")
    k = check_int(k, "k", minimum=1)
    check_bool(guard, "guard")
    get_backend(backend)  # an unknown or unavailable backend fails here, before any work
    ops = sample_matrices(matrices, "matrices")
    if ops[0].shape[0] != S.n:
        raise ValueError(f"matrices: have {ops[0].shape[0]} rows but S is {S.m} x {S.n} (it needs {S.n} rows)")
    if k > min(ops[0].shape):  # mean_scaled_error would take min(A.shape) instead: scw's own message
        raise ValueError(f"k: must be <= min(A.shape) = {min(ops[0].shape)}, got {k}")
    with ExitStack() as stack:
        one_thread_if_small(ops, stack)
        return Evaluator(ops, k).error(S, backend=backend, guard=guard)
