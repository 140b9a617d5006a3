"""Few-shot sketches (Indyk, Wagner and Woodruff, NeurIPS 2021): 1Shot1Vec, FewShotSGD, and value refinement."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import get_backend
from .._gradients import TrainingMatrix, loss_and_grad
from .._validation import (
    UINT64_MAX,
    check_int,
    is_sparse,
)
from ..datasets import spectral_norm
from ..sketch import CountSketch
from ._common import (
    _blas_threads,
    _bucket_values,
    _check_matrices,
    _check_sizes,
    _kernel_threads,
    _Rows,
)

# --------------------------------------------------------------------------- few-shot


def one_shot_sketch(A, m: int, *, seed: int = 0) -> CountSketch:
    """1Shot1Vec: random CountSketch positions, values from one training matrix.

    The positions are those of ``CountSketch(m, n, seed)``; bucket j's values
    are the top left singular vector of ``A[rows == j, :]`` (scaled to RMS 1,
    sign: largest entry positive), the unit vector keeping most of the bucket's
    energy in ``S A``. A list of matrices uses their rows side by side (each
    scaled to sigma_1 = 1). Cost: one Gram matrix per bucket, about
    ``n^2 d / m`` flops.

    Parameters
    ----------
    A : 2-D array or scipy.sparse matrix (n x d), or a list of them
    m : int
        Sketch size, ``1 <= m <= n``.
    seed : int, default 0

    Returns
    -------
    CountSketch

    Notes
    -----
    On non-negative data (images, counts) every bucket's top singular vector
    is positive, so the m rows of ``S A`` are weighted averages of similar rows
    and nearly parallel: measured on fastlr's generators it is no better than a
    random CountSketch (bench/README.md); ``inner_product_sketch([A], m, k)``
    or ``subspace_sketch([A], m)`` from the same single matrix do far better.

    References
    ----------
    P. Indyk, T. Wagner, D. P. Woodruff, "Few-Shot Data-Driven Algorithms for
    Low Rank Approximation", NeurIPS 2021.
    """
    mats = _check_matrices([A] if is_sparse(A) or (isinstance(A, np.ndarray) and A.ndim == 2) else A, "A")
    n = mats[0].shape[0]
    m, _ = _check_sizes(m, None, n)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    start = CountSketch(m, n, seed=seed)
    with _blas_threads(mats):
        values = _bucket_values(_Rows(mats), start.rows, m, start.values, seed)
    return CountSketch.from_arrays(start.rows, values, m)


def few_shot_sketch(train, m: int, k: int, *, steps: int = 50, lr: float = 0.05, seed: int = 0,
                    backend=None) -> CountSketch:
    """FewShotSGD: 1Shot1Vec values from a few training matrices, refined by a few Adam steps.

    ``one_shot_sketch(train, m, seed=seed)`` (random positions, bucket values from
    the matrices side by side), then ``refine_values`` for ``steps`` steps of
    learn_sketch's loss (``||A - SCW(S, A)||_F``, exact gradient, Adam).

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices (2-3 are enough)
    m, k : int
        Sketch size and target rank, ``1 <= k <= m <= n``.
    steps : int, default 50
        Adam steps (0: the 1Shot1Vec sketch itself).
    lr : float, default 0.05
    seed : int, default 0
    backend : {"cpp", "numba", "numpy"}, optional

    References
    ----------
    P. Indyk, T. Wagner, D. P. Woodruff, "Few-Shot Data-Driven Algorithms for
    Low Rank Approximation", NeurIPS 2021.
    """
    mats = _check_matrices(train)
    m, k = _check_sizes(m, k, mats[0].shape[0])
    steps = check_int(steps, "steps", minimum=0)
    S = one_shot_sketch(mats, m, seed=seed)
    if steps == 0:
        return S
    return refine_values(mats, S, k, steps=steps, lr=lr, seed=seed, backend=backend)


# --------------------------------------------------------------------------- value refinement


def refine_values(train, S: CountSketch, k: int, *, steps: int, lr: float = 0.05, batch_size: int = 1,
                  seed: int = 0, backend=None) -> CountSketch:
    """Adam steps on the values of S (positions fixed), from S's own values.

    The loop of ``fastlr.learn_sketch`` (same loss, exact gradient, Adam with
    betas (0.9, 0.999), mini-batches of shuffled epochs from
    ``default_rng(seed)``), but starting from any CountSketch: from
    ``CountSketch(m, n, seed)`` it takes the same steps as
    ``learn_sketch(train, m, k, steps=steps, seed=seed)``.

    Returns
    -------
    CountSketch with S's positions and the trained values.
    """
    if not isinstance(S, CountSketch) or type(S).apply is not CountSketch.apply:
        raise TypeError(f"S: expected a plain CountSketch, got {type(S).__name__}")
    mats = _check_matrices(train)
    if mats[0].shape[0] != S.n:
        raise ValueError(f"train: matrices have {mats[0].shape[0]} rows but S is {S.m} x {S.n}")
    k = check_int(k, "k", minimum=1, maximum=min(S.m, *mats[0].shape))
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr: must be a finite number > 0, got {lr!r}")
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    with _blas_threads(mats), _kernel_threads(mats):
        kernels = get_backend(backend)
        ops = []
        for i, A in enumerate(mats):
            op = TrainingMatrix(A, f"train[{i}]", backend=backend)
            s1 = spectral_norm(A)
            op.scale = s1 if s1 > 0 else 1.0
            ops.append(op)
        rows, values = S.rows, S.values.copy()
        state = np.zeros((2, S.n))
        rng = np.random.default_rng(seed)
        order, pos = rng.permutation(len(ops)), 0
        for step in range(1, steps + 1):
            batch = []
            while len(batch) < min(batch_size, len(ops)):
                if pos == len(ops):
                    order, pos = rng.permutation(len(ops)), 0
                batch.append(int(order[pos]))
                pos += 1
            grads = []
            for i in batch:
                op = ops[i]
                _, g = loss_and_grad(op, backend, k, rows, values.astype(op.dtype), S.m)
                grads.append(g / op.scale)
            grad = np.ascontiguousarray(np.mean(grads, axis=0) if len(grads) > 1 else grads[0])
            kernels.optimizer_step(values, grad, state, "adam", (lr, 0.9, 0.999, 1e-12, step))
            if not np.isfinite(values).all():
                raise FloatingPointError(f"refine_values: the values diverged at step {step}; use a smaller lr")
        return CountSketch.from_arrays(rows, values, S.m)
