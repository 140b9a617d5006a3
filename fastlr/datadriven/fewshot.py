"""Few-shot sketches (Indyk, Wagner and Woodruff, NeurIPS 2021): 1Shot1Vec, FewShotSGD, and value refinement."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .._backend import get_backend
from .._gradients import TrainingMatrix, loss_and_grad
from .._safeguards import SPORADIC, LearnedSketchWarning, row_consistency
from .._validation import (
    UINT64_MAX,
    check_choice,
    check_int,
    is_sparse,
    user_stacklevel,
)
from ..datasets import spectral_norm
from ..heavy_rows import HeavyRowSketch
from ..sketch import CountSketch, guarded_by_random, keeps_reference
from ._common import (
    SPARSE_ROWS,
    _beats_random,
    _blas_threads,
    _bucket_values,
    _check_matrices,
    _check_sizes,
    _kernel_threads,
    _row_share,
    _Rows,
    check_heavy_rows,
    few_rows,
    heavy_rows_rule,
    with_heavy_rows,
)

# --------------------------------------------------------------------------- few-shot


ONE_SHOT_VALUES = ("guarded", "paper")
#: Exponent of the tempered one-shot magnitudes ``max(|u_i|, 1) ** TEMPER`` (u scaled to RMS 1 per
#: bucket): measured over 0, 0.15, 0.25, 0.35, 0.5 (bench/README.md, seventh session).
TEMPER = 0.25


def _tempered(values: np.ndarray) -> np.ndarray:
    """The paper's bucket values (RMS 1 per bucket) with their magnitudes compressed to
    ``max(|u_i|, 1) ** TEMPER``, signs kept: a row the one matrix barely uses counts as a typical one
    (the next matrix may use it heavily: a word of another topic), heavy rows only a little more."""
    return np.where(values < 0, -1.0, 1.0) * np.maximum(np.abs(values), 1.0) ** TEMPER


@guarded_by_random
def one_shot_sketch(A, m: int, *, k: int | None = None, values: str = "guarded", seed: int = 0,
                    heavy_rows="auto") -> CountSketch | HeavyRowSketch:
    """1Shot1Vec: random CountSketch positions, values from one training matrix.

    The positions are those of ``CountSketch(m, n, seed)``; the paper's bucket j
    values are the top left singular vector u of ``A[rows == j, :]`` (scaled to
    RMS 1, sign: largest entry positive), the unit vector keeping most of the
    bucket's energy in ``S A``. A list of matrices uses their rows side by side
    (each scaled to sigma_1 = 1). Cost: one Gram matrix per bucket, about
    ``n^2 d / m`` flops.

    Parameters
    ----------
    A : 2-D array or scipy.sparse matrix (n x d), or a list of them
    m : int
        Sketch size, ``1 <= m <= n``.
    k : int, optional
        Target rank of the guard's check (default ``min(m, d) // 2``, at least 1).
    values : {"guarded", "paper"}, default "guarded"
        ``"paper"``: the values u themselves (Indyk, Wagner and Woodruff). It
        can be worse than a random CountSketch on new matrices: on count data
        (text) every bucket's u sits on that matrix's few heavy rows (its
        topic's words) and nearly drops the others, 1.7x random's Err on held-out
        text; on non-negative pixels every bucket's u is positive and the rows
        of ``S A`` nearly parallel (up to 1.37x on video; bench/README.md).
        ``"guarded"``: magnitudes tempered to ``max(|u_i|, 1) ** 0.25`` (signs
        of u), kept only when they beat, on the given matrices (rank-k SCW
        error, each scaled to sigma_1 = 1), the random ``CountSketch(m, n,
        seed)``, and the mean error of 16 other random CountSketches by twice
        their standard deviation (a margin as wide as the luck of a random
        draw), and when the matrices use their rows broadly
        (row energies spread over more than a tenth of the rows: not
        term-document counts, where new matrices use other words); otherwise
        that random ``CountSketch(m, n, seed)`` itself is returned. Measured
        (one training matrix, 14 generated and real families x 8 seeds):
        never above random's held-out Err; on images (video, hyperspectral,
        real frames) 0.86-1.00 of it on average, the values kept in 15 of 72
        cases; text always falls back. The seventh session's guard (beat
        ``CountSketch(m, n, seed)`` alone) reached 1.15 on real video and 1.10
        on text; "paper": up to 2.2x random's on text and 1.4x on video.
    seed : int, default 0
    heavy_rows : "auto", True or False, default "auto"
        As ``fastlr.learn_sketch``'s: ``"auto"`` returns the sketch wrapped in
        ``fastlr.HeavyRowSketch`` (each matrix's heaviest rows get a bucket of
        their own when it is applied; threshold 0.5, at most m // 2 rows) when
        the matrices' energy sits on few rows (term-document counts, where the
        guarded sketch is the random ``CountSketch(m, n, seed)``): measured
        (bench/guard_audit.py, text and text-topic, m = 10, k = 5, 100 seeds;
        bench/README.md, twenty-first session) 0.176 [worst 0.306] and 0.178
        [0.329] of the plain sketch's held-out Err; elsewhere the plain sketch
        (the same sketch, bit for bit). True: always wrapped (threshold 1.5 on
        other data); False: never.

    Returns
    -------
    CountSketch, or HeavyRowSketch (of it) when ``heavy_rows`` says so

    Raises
    ------
    ValueError
        If an argument is out of range (``heavy_rows`` not "auto", True or False, ...).

    Notes
    -----
    Either way the one-shot sketch is a weak one: ``hybrid_sketch(A, m, k)`` from
    the same single matrix does far better on images and spectral bands.

    References
    ----------
    P. Indyk, T. Wagner, D. P. Woodruff, "Few-Shot Data-Driven Algorithms for
    Low Rank Approximation", NeurIPS 2021.
    """
    mats = _check_matrices([A] if is_sparse(A) or (isinstance(A, np.ndarray) and A.ndim == 2) else A, "A")
    n, d = mats[0].shape
    m, _ = _check_sizes(m, None, n)
    k = max(1, min(m, d) // 2) if k is None else check_int(k, "k", minimum=1, maximum=min(m, d))
    check_choice(values, "values", ONE_SHOT_VALUES)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    heavy_rows = check_heavy_rows(heavy_rows)
    with _blas_threads(mats):
        rows = _Rows(mats)
        return with_heavy_rows(_one_shot(mats, rows, m, k, values, seed), heavy_rows_rule(heavy_rows, mats, rows))


def _one_shot(mats: list, rows: _Rows, m: int, k: int, values: str, seed: int) -> CountSketch:
    """one_shot_sketch without its heavy rows."""
    start = CountSketch(m, rows.n, seed=seed)
    if values == "guarded" and _row_share(rows) < SPARSE_ROWS:
        return start
    u = _bucket_values(rows, start.rows, m, start.values, seed)
    if values == "paper":
        return CountSketch.from_arrays(start.rows, u, m)
    S = CountSketch.from_arrays(start.rows, _tempered(u), m)
    return S if _beats_random(S, mats, k, seed) else start


@guarded_by_random
def few_shot_sketch(train, m: int, k: int, *, steps: int = 50, lr: float = 0.05, values: str = "guarded",
                    seed: int = 0, backend=None, heavy_rows="auto") -> CountSketch | HeavyRowSketch:
    """FewShotSGD: 1Shot1Vec values from a few training matrices, refined by a few Adam steps.

    ``one_shot_sketch(train, m, k=k, values=values, seed=seed)`` (random positions,
    bucket values from the matrices side by side), then ``refine_values`` for ``steps`` steps of
    learn_sketch's loss (``||A - SCW(S, A)||_F``, exact gradient, Adam).

    With ``values="guarded"``, matrices that use different rows (energy on under a tenth of the rows,
    ``one_shot_sketch``'s test, or ``fastlr.learn_sketch``'s consistency test: text, each matrix a few
    topics) are not refined on: a few steps on 2-3 of them fit their topics' words and are worse
    than random on new topics (measured, 3 text matrices, 5 seeds: held-out Err 0.97 [worst 1.18]
    of random's with 300 steps on topic-shifted text, 0.86 [0.96] without; freezing the rarely
    used columns: 0.96 [1.07]); the guarded one-shot
    sketch is returned with a ``fastlr.LearnedSketchWarning`` (on such counts, whose energy sits on
    few rows, that is the random ``CountSketch(m, n, seed)`` itself: see ``one_shot_sketch``).

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices (2-3 are enough)
    m, k : int
        Sketch size and target rank, ``1 <= k <= m <= n``.
    steps : int, default 50
        Adam steps (0: the 1Shot1Vec sketch itself).
    lr : float, default 0.05
    values : {"guarded", "paper"}, default "guarded"
        The start's values (see ``one_shot_sketch``; "paper" is the paper's).
    seed : int, default 0
    backend : {"cpp", "numba", "numpy"}, optional
    heavy_rows : "auto", True or False, default "auto"
        As ``one_shot_sketch``'s (and ``fastlr.learn_sketch``'s): on counts the
        result (the random ``CountSketch(m, n, seed)`` by default; with
        ``values="paper"`` the refined sketch) wrapped in
        ``fastlr.HeavyRowSketch``: 0.18 of its held-out Err on average
        (bench/guard_audit.py, text and text-topic, 3 matrices, 100 seeds).

    Returns
    -------
    CountSketch, or HeavyRowSketch (of it) when ``heavy_rows`` says so

    References
    ----------
    P. Indyk, T. Wagner, D. P. Woodruff, "Few-Shot Data-Driven Algorithms for
    Low Rank Approximation", NeurIPS 2021.
    """
    mats = _check_matrices(train)
    m, k = _check_sizes(m, k, mats[0].shape[0])
    steps = check_int(steps, "steps", minimum=0)
    k = check_int(k, "k", minimum=1, maximum=min(m, mats[0].shape[1]))  # one_shot_sketch's bound
    check_choice(values, "values", ONE_SHOT_VALUES)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    heavy_rows = check_heavy_rows(heavy_rows)
    guarded = steps > 0 and values == "guarded"
    with _blas_threads(mats):  # one pass of spectral norms for the start, the heavy-row rule and the guard
        rows = _Rows(mats)
        S = _one_shot(mats, rows, m, k, values, seed)
        rule = heavy_rows_rule(heavy_rows, mats, rows)
        why = rows_not_shared(mats, rows) if guarded else None
    if steps == 0:
        return with_heavy_rows(S, rule)
    if why:
        warnings.warn(f"few_shot_sketch: no gradient steps: {why}, where a few steps fit their rows and not new "
                      "matrices'; returning the guarded one-shot sketch (values='paper' forces the steps)",
                      LearnedSketchWarning, stacklevel=user_stacklevel())
        return with_heavy_rows(S, rule)
    return with_heavy_rows(refine_values(mats, S, k, steps=steps, lr=lr, seed=seed, backend=backend), rule)


def rows_not_shared(mats: list, rows: _Rows | None = None) -> str | None:
    """Why new matrices may use other rows than these (None: nothing says so): energy on under SPARSE_ROWS of the
    rows (term-document counts; one_shot_sketch's test), or rows used unlike each other (row_consistency). The
    consistency alone let 1-4 in 100 draws of 3 text matrices through (bench/guard_audit.py's text and text-topic:
    consistency 0.80-0.84 by chance), and 50 steps on them held out up to 1.65x random's Err on new topics."""
    return few_rows(mats, rows) or rows_used_unlike(mats)


def rows_used_unlike(mats: list) -> str | None:
    """rows_not_shared's second reason: two or more matrices whose rows are used unlike each other, else None."""
    if len(mats) > 1 and (consistency := row_consistency(mats)) < SPORADIC:
        return f"the training matrices use different rows (consistency {consistency:.2f} < {SPORADIC})"
    return None


# --------------------------------------------------------------------------- value refinement


@keeps_reference
def refine_values(train, S: CountSketch, k: int, *, steps: int, lr: float = 0.05, batch_size: int = 1,
                  seed: int = 0, backend=None) -> CountSketch | HeavyRowSketch:
    """Adam steps on the values of S (positions fixed), from S's own values.

    The loop of ``fastlr.learn_sketch`` (same loss, exact gradient, Adam with
    betas (0.9, 0.999), mini-batches of shuffled epochs from
    ``default_rng(seed)``), but starting from any CountSketch: from
    ``CountSketch(m, n, seed)`` it takes the same steps as
    ``learn_sketch(train, m, k, steps=steps, seed=seed)``.

    S may be a HeavyRowSketch of a CountSketch (what the data-driven sketches
    return on counts, ``heavy_rows``): its base is trained and the result
    wrapped by the same rule.

    Returns
    -------
    CountSketch with S's positions and the trained values (a HeavyRowSketch of it for a wrapped S).
    """
    if isinstance(S, HeavyRowSketch):
        return S.rebased(refine_values(train, S.base, k, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                                       backend=backend))
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
