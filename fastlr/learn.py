"""Learned sketches: train the values of a CountSketch on sample matrices.

Indyk, Vakilian and Yuan (NeurIPS 2019) keep the positions of a CountSketch's
nonzeros and train their values by gradient descent on the SCW error of
matrices from a distribution; on new matrices from the same distribution the
learned sketch is far more accurate than a random one at the same cost.

``learn_sketch`` trains (hand-derived gradients, no autograd; see
``_gradients.py``; the loop is in ``_training.py``). The sketch it returns and
its file format live in the sketch layer (``learned_sketch.py``,
``sketch_file.py``), the paper's Err in ``evaluation.py``; this module
re-exports them, so ``S.save(path)`` / ``load_sketch(path)`` and
``sketch_error`` are also found here.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from . import _dask, datadriven
from ._backend import current_backend, get_backend
from ._gradients import GRADIENTS
from ._safeguards import (
    DEFAULT_HOLDOUT,
    DEFAULT_PATIENCE,
    DEFAULT_SHRINK,
    SPORADIC,
    Checkpoint,
    LearnedSketchWarning,
    check_holdout,
    check_max_time,
    check_shrink,
    holdout_split,
    rounding_ties,
    row_consistency,
)
from ._sample_matrices import one_thread_if_small, sample_matrices
from ._threads import get_num_threads
from ._training import InMemoryMatrices, Training, load_operand, run_training
from ._validation import UINT64_MAX, check_choice, check_int, user_stacklevel
from .datadriven._common import check_heavy_rows, heavy_rows_rule, with_heavy_rows
from .evaluation import sketch_error
from .heavy_rows import HeavyRowSketch
from .learned_sketch import HISTORY_DTYPE, MIXED, LearnedSketch, load_sketch
from .sketch import CountSketch, guarded_by_random

__all__ = ["HISTORY_DTYPE", "LearnedSketch", "LearnedSketchWarning", "learn_sketch", "load_sketch", "sketch_error"]

OPTIMIZERS = ("adam", "sgd", "momentum")

#: Default learning rates. The loss is invariant to scaling the values of any
#: row of S, and training matrices are scaled to sigma_1 = 1, so these work on
#: any data set at any scale (Adam's step is also invariant to the gradient's scale).
DEFAULT_LR = {"adam": 0.05, "sgd": 1.0, "momentum": 0.1}
DEFAULT_POWER_ITERS = 10


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)


def _lr_schedule(lr_decay):
    """step -> multiplier of the learning rate."""
    if lr_decay is None:
        return lambda step: 1.0
    if callable(lr_decay):
        return lambda step: float(lr_decay(step))
    try:
        factor, every = lr_decay
    except (TypeError, ValueError):
        raise ValueError(f"lr_decay: expected None, (factor, every) or a callable, got {lr_decay!r}") from None
    factor = _check_positive(factor, "lr_decay factor")
    every = check_int(every, "lr_decay every", minimum=1)
    return lambda step: factor ** ((step - 1) // every)


INITS = ("random", "inner_product", "one_shot")


def _init_subspace(count: int, m: int, k: int) -> int | None:
    """``init="inner_product"``'s ``subspace=``: the rows whitened in the top min(2k, m) directions when the start is
    built from several matrices (better than the full-row buckets on real video, bench/README.md, thirteenth
    session); None (full rows) from one matrix, where the whitened top directions of a single matrix fail
    inner_product_sketch's held-out-columns check (generated video: random fallback in 8 of 8 seeds)."""
    return min(2 * k, m) if count > 1 else None


def _initial_sketch(init, train, m: int, n: int, k: int, seed: int, shrink: float, mixed):
    """Where training starts: ``(start, freeze)``, start an m x n CountSketch (None: the random
    ``CountSketch(m, n, seed)``), freeze True when the low-evidence columns stay at the start.

    ``train``: the in-memory training matrices (without the held-out ones), None for dask input.
    With the shift guard on (``shrink > 0``) and training matrices that use different rows (words of
    different topics), a data-driven start is not built (it fits the rows they use, and on matrices
    that use others it is worse than random: bench/README.md, sixth session); instead a mixed
    sketch's learned half starts from the random positions with positive values, and the columns
    training knows little about keep them (``_safeguards.frozen_columns``; seventh session: with the
    random half beside it this is better under topic shift, without it no better and on a small text
    family worse than random, so a plain learned sketch keeps its +-1 start). ``init=CountSketch(m, n,
    seed)`` (a given start) or ``shrink=0`` keeps the +-1 values.
    """
    if isinstance(init, HeavyRowSketch):  # a wrapped learned sketch: training restarts from its values
        init = init.base
    if init is not None and not isinstance(init, str):
        if not isinstance(init, CountSketch) or len(init.parts()) != 1:
            raise TypeError(f"init: expected None, one of {', '.join(map(repr, INITS))} or a CountSketch, "
                            f"got {type(init).__name__}")
        if init.shape != (m, n):
            raise ValueError(f"init: expected a {m} x {n} CountSketch (the learned rows x the matrices' rows), "
                             f"got {init.shape[0]} x {init.shape[1]}")
        return init, False
    if init is not None:
        check_choice(init, "init", INITS)
        init = None if init == "random" else init
        if init is not None and train is None:
            raise ValueError(f"init: {init!r} needs in-memory training matrices, not dask ones; pass a CountSketch")
    consistency = row_consistency(train) if shrink > 0 and train is not None and len(train) > 1 else 1.0
    sporadic = consistency < SPORADIC
    if not sporadic:
        if init is None:
            return None, False
        if init == "inner_product":  # positions and values from the training matrices (ICLR 2023, Alg. 3)
            return datadriven.inner_product_sketch(train, m, k, trials=8, subspace=_init_subspace(len(train), m, k),
                                                   seed=seed, heavy_rows=False), False
        # 1Shot1Vec (NeurIPS 2021); the start's heavy rows are the trained sketch's rule (heavy_rows_rule)
        return datadriven.one_shot_sketch(train[0], m, seed=seed, heavy_rows=False), False
    if init is not None:
        warnings.warn(f"learn_sketch: init={init!r} ignored: the training matrices use different rows "
                      f"(consistency {consistency:.2f} < {SPORADIC}), where data-driven starts do not carry "
                      "over to new matrices; starting from the random CountSketch (positive values for "
                      "a mixed sketch; shrink=0 forces the data-driven start)", LearnedSketchWarning,
                      stacklevel=user_stacklevel())
    if mixed is None:
        return None, False
    random = CountSketch(m, n, seed=seed)
    return CountSketch.from_arrays(random.rows, np.abs(random.values), m), True


@guarded_by_random
def learn_sketch(train, m: int, k: int, *, steps: int, batch_size: int = 1, optimizer: str = "adam",
                 lr: float | None = None, lr_decay=None, gradient: str = "exact", power_iters: int | None = None,
                 mixed: str | None = None, seed: int = 0, val=None, holdout: float = DEFAULT_HOLDOUT,
                 patience: int | None = DEFAULT_PATIENCE, refit: bool = True, shrink: float = DEFAULT_SHRINK,
                 max_time: float | None = None, init=None, heavy_rows="auto",
                 eval_every: int | None = None, progress: bool = True, callback=None,
                 backend=None) -> LearnedSketch | HeavyRowSketch:
    """Learn the values of an m x n CountSketch for rank-k SCW on matrices like ``train``.

    Minimizes the mean of ``||A - SCW(S, A)||_F`` over the training matrices
    (each scaled to sigma_1 = 1) with respect to the sketch's values; the
    positions of the nonzeros stay those of ``CountSketch(m, n, seed)``, whose
    +/-1 values are the starting point.

    The result is never worse than that random start *on validation*: the
    validation Err (on ``val``, or else on the last ``holdout`` fraction of
    ``train``, which is then not trained on) is evaluated every ``eval_every``
    steps, the best values are kept (not the last ones), training stops early
    after ``patience`` evaluations without improvement, and when no step beats
    the random start, the random start itself is returned with a
    :class:`fastlr.LearnedSketchWarning` (``S.fallback`` is True).
    ``S.validation`` records what happened. With a single training matrix and
    no ``val`` there is nothing to validate on: the last values are returned,
    unchecked (``S.validation`` is None), as with ``holdout=0``.

    Validation judges the sketch on matrices seen in training, so a new matrix
    can still fare worse with it than with the random start: the result
    carries ``S.reference = CountSketch(m, n, seed)``, and ``fastlr.scw``
    runs both on each matrix and returns the more accurate result
    (``guard=True``; about twice S's cost, no extra pass over A to judge it):
    never worse than the random start on any matrix. ``sketch_error``
    judges the same way; ``guard=False`` in either judges S alone.

    Validation cannot see new rows: on text-like training data (energy on few
    rows: term-document counts) the result, fallback included, goes out
    wrapped in :class:`fastlr.HeavyRowSketch`, which gives each matrix's
    heaviest rows buckets of their own when it is applied (``heavy_rows``).

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices, dask.bag.Bag, or list of dask.delayed
        Training matrices, all n x d (float32 stays float32). From a dask bag
        or a list of ``dask.delayed`` loaders (e.g. ``dask.delayed(np.load)(path)``),
        every matrix is loaded, checked and prepared once on a worker of the
        active dask scheduler (a ``dask.distributed.Client`` if one is active,
        else dask's default local threads) and stays there; each step computes
        the per-matrix losses and gradients on the workers that hold the batch's
        matrices and sums them here. Only the sketch's values go out and n
        gradient entries per matrix come back; the result equals in-memory
        training with the same seed.
    m : int
        Sketch size, >= k.
    k : int
        Target rank, >= 1.
    steps : int
        Optimizer steps, >= 1.
    batch_size : int, default 1
        Matrices per step; a batch runs in parallel on ``fastlr.get_num_threads()``
        threads (one kernel and one BLAS thread each), or as one task per matrix
        on the dask workers.
    optimizer : {"adam", "sgd", "momentum"}, default "adam"
    lr : float, optional
        Learning rate. Default: 0.05 for Adam (works on every data family
        without tuning), 1.0 for SGD (the paper's) and 0.1 for momentum.
    lr_decay : None, (factor, every) or callable, optional
        Multiply the rate by ``factor`` every ``every`` steps (the paper:
        ``(0.3, 1000)``), or by ``lr_decay(step)``.
    gradient : {"exact", "power"}, default "exact"
        The closed-form gradient, or the adjoint of ``power_iters`` steps of
        subspace iteration (the paper's differentiable SVD).
    power_iters : int, optional
        Steps of subspace iteration for ``gradient="power"`` (default 10).
    mixed : {None, "joint", "separate"}
        None: all m rows are learned. ``"joint"``: m // 2 learned rows stacked
        on m - m // 2 random rows, trained together (Mixed (J) in the paper).
        ``"separate"``: m // 2 rows trained alone, then the random rows
        appended (Mixed (S)). With validation, the result (or its fallback, the
        learned half at +-1 on the random rows) is also compared with the random
        ``CountSketch(m, n, seed)`` and replaced by it (``S.mixed`` None,
        ``S.fallback`` True, a warning) when that is better on validation; not
        on sporadic rows (text, see ``shrink``), where validation cannot see a
        topic shift (bench/README.md, fourteenth session). After a ``refit``
        (trained again on the held-out matrices too, which then no longer
        judge it) the same comparison runs on up to 8 of all the training
        matrices (sixteenth session).
    seed : int, default 0
        Seeds the positions and starting values (``CountSketch(m, n, seed)``;
        the random rows of a mixed sketch use ``seed + 1``) and the batches.
    val : iterable of matrices, optional
        Validation matrices: the paper's Err on them is recorded in ``history``,
        selects the returned step and decides the fallback (evaluated in this
        process; a dask bag or delayed list is computed here). Pass matrices
        like those the sketch will be used on (e.g. later video frames).
    holdout : float in [0, 1), default 0.2
        Without ``val``: the fraction of ``train`` held out for validation,
        taken from the *end* of ``train`` (so a time-ordered set validates on
        its latest matrices): ``round(holdout * len(train))`` matrices, at
        least one, none when ``train`` has one matrix. 0: no validation, no
        checkpoint, no fallback (the last values are returned).
    patience : int or None, default 5
        Stop after this many evaluations in a row that do not lower the best
        validation Err by more than 0.1%; None: train all ``steps``.
    refit : bool, default True
        With matrices held out of ``train`` and a learned sketch that beat
        the random start: train again from the start on *all* of ``train``
        for the best checkpoint's number of steps, and return those values
        (``S.validation.refit``; ``history`` stays that of the validated run).
        The held-out matrices are then not wasted, at the cost of up to twice
        the training time. If ``max_time`` runs out first, the validated
        checkpoint is returned; so it is (with a warning) when the refit
        sketch (not mixed) is worse than ``CountSketch(m, n, seed)`` on the
        validation matrices.
    shrink : float >= 0, default 2
        The shift guard. Validation on matrices like ``train`` cannot see a
        shift the training set does not contain (text about new topics: their
        heavy rows are words training barely saw, whose values it pushed
        toward 0 as noise). So each value's magnitude is pulled toward the
        RMS of its row of S (its bucket) as far as the training matrices give
        little evidence for it: ``|v_i| <- r + w_i (|v_i| - r)`` with
        ``w_i = u_i / (u_i + shrink (1 - c_i))``, ``u_i`` row i of A's mean
        (sigma_1-scaled) energy relative to the mean row and ``c_i`` in [0, 1]
        the fraction of the matrices that effectively use it
        (``mean(e)^2 / mean(e^2)``). Rows that every matrix uses alike
        (``c_i = 1``: pixels of video frames) are left alone, so the guard
        costs nothing there; on text without shift the held-out Err is about
        10% higher, and on topic-shifted text it keeps learned sketches
        better than random (bench/README.md, sixth session). On in-memory
        training matrices that use different rows (energy-weighted mean
        ``c_i`` < 0.8: text), data-driven starts (``init``) are not built, and a mixed
        sketch's learned half starts from the random positions with *positive*
        values and leaves the columns with ``w_i < 0.5`` at that start (words
        training barely saw, which new matrices may use heavily: positive,
        a bucket's words of one new topic add up instead of cancelling); only
        the well-seen rows are learned. The result is still compared with the
        +-1 start on validation (fallback as for ``init``). Topic-shifted text,
        ``mixed="joint"``: 0.73 -> 0.68 of random's Err, worst of 8 seeds
        0.94 -> 0.78 (bench/README.md, seventh session): **for text whose
        topics may change, use mixed="joint"** (plain learned: 0.85, worst
        0.98); ``heavy_rows`` (on by default there) takes both to about a
        fifth of random's Err. 0: off (+-1 start, nothing frozen).
    max_time : float, optional
        Wall-clock budget in seconds for the whole call: training stops after
        the step during which it ran out (at least one step; the last
        validation evaluation may run over it).
    init : None, "random", "inner_product", "one_shot", CountSketch or HeavyRowSketch, default None
        Where training starts (positions and values; the positions stay fixed).
        None / "random": ``CountSketch(m_learned, n, seed)`` with +-1 values
        (a mixed sketch on sporadic data: positive ones, see ``shrink``; pass
        that CountSketch itself to force +-1).
        "inner_product": positions and values from the training matrices
        (``fastlr.datadriven.inner_product_sketch``: Li, Lin, Liu, Vakilian and
        Woodruff, ICLR 2023, Alg. 3; best of 8 draws, each refined by 10 Lloyd
        iterations, ``refine``); from two or more matrices the buckets are
        clustered on the rows whitened in the training matrices' top
        min(2k, m) left singular directions (``subspace=min(2 * k, m)``: every
        top direction gets buckets, not only the most energetic ones), from
        one matrix on the full rows. Measured (bench/README.md, thirteenth
        session; m = 20, k = 10, 8 seeds, later frames held out), held-out Err
        over random's after the values are trained, mean / worst seed: real
        video bikes 0.168 / 0.238 (full-row buckets 0.198 / 0.242; default
        start 0.285 / 0.359), bigbuckbunny 0.038 / 0.042 (full-row 0.043 /
        0.061; default start 0.047 / 0.058); generated video and
        hyperspectral families (bench/learn_shift.py's and
        bench/datadriven_err.py's) 0.05-0.17 on average, below random on
        every seed, the full-row buckets lower on average only on the larger
        generated video (0.072 vs 0.107, worst 0.151 vs 0.275).
        "one_shot":
        1Shot1Vec from the first training matrix (Indyk, Wagner and
        Woodruff, NeurIPS 2021). A CountSketch: that sketch
        (m_learned x n; m_learned is m, or m // 2 for mixed sketches); a
        HeavyRowSketch (an earlier result on counts): its base. The
        never-worse guard compares with this start, and then with the random
        ``CountSketch(m_learned, n, seed)``: a data-driven start can be worse
        than random on new data (inner-product buckets that unseen rows leave
        empty), and then that random sketch is returned (with the warning).
        The string forms need in-memory training matrices. With ``shrink > 0``
        they are ignored (with the warning) when the training matrices use
        different rows (energy-weighted mean ``c_i`` < 0.8, text): their
        positions and values fit the rows training uses, and new matrices may
        use others (measured: inner-product starts up to 1.8x random's Err on
        topic-shifted text).
    heavy_rows : "auto", True or False, default "auto"
        Return the learned sketch wrapped in ``fastlr.HeavyRowSketch``: for
        each matrix A it sketches, the rows with ``||A_i||^2 >= t ||A||_F^2 /
        m`` (at most m // 2, heaviest first) get buckets of their own (``S A``
        holds them exactly), every other row keeps its learned bucket and
        value. ``"auto"`` wraps it, with t = 0.5, when the training matrices
        (in memory: all of them; dask: the held-out or ``val`` matrices, none
        without) put their energy on under 10% of their rows (term-document
        counts: the test ``few_shot_sketch`` makes before trusting
        data-driven values; ``S.reason`` says so). There validation cannot
        vouch for new matrices: a new topic's frequent words are rows
        training barely saw. The random fallback is wrapped too. Measured
        (bench/README.md, twenty-first session; held-out Err over
        ``CountSketch(m, n, seed)``'s, 100 seeds, mean [worst]):
        topic-shifted text at m = 10, k = 5, plain -> default: learned 0.81
        [1.09] -> 0.16 [0.29], ``mixed="joint"`` 0.68 [1.16] -> 0.14 [0.27];
        at m = 20, k = 10: learned 0.81 [1.15] -> 0.22 [0.30]; at m, k = 6,
        5 / 5, 5 / 4, 2 below random at every seed (t = 1.5 there: up to 11
        of 50 seeds above it). Frames, spectral bands and low-rank matrices:
        "auto" returns the plain LearnedSketch, as before (applying it costs
        no row-norm pass, ``to_dense`` works). The wrapper has the learned
        sketch's ``history``, ``validation``, ``fallback``, ``mixed``, ``k``
        and ``save`` (``load_sketch`` reads it back; the validation Errs are
        the plain sketch's); ``S.base`` is the plain LearnedSketch (what
        ``heavy_rows=False`` returns: the training is the same);
        ``S.to_dense()`` raises, its buckets depend on the matrix
        (``S.adapted(A)`` is the plain sketch used for A). Applying it costs
        a pass over A for its row norms (scw on 20000 x 1000 topic-shifted
        text: 1.05-1.11x the plain sketch's CPU time, one thread).
        True: always wrapped (t = 0.5 on counts, else the class default 1.5);
        False: never.
    eval_every : int, optional
        Steps between validation evaluations (default: about 20 per run).
    progress : bool or str, default True
        Show a progress bar (tqdm, on stderr); a string labels the bar.
    callback : callable, optional
        Called as ``callback(record)`` after every step with the step's
        ``history`` row; returning True stops training.
    backend : {"cpp", "numba", "numpy"}, optional

    Returns
    -------
    LearnedSketch or HeavyRowSketch
        A HeavyRowSketch of the LearnedSketch when ``heavy_rows`` says so.

    Raises
    ------
    ValueError
        For matrices of different shapes (naming the index), NaN or infinity in
        a matrix, an empty training set, m < 1, k < 1, k > m, steps < 1, an
        unknown optimizer, gradient or mixed value, holdout outside [0, 1),
        patience < 1, max_time not a positive finite number, or heavy_rows
        not "auto", True or False.

    Warns
    -----
    LearnedSketchWarning
        When the learned values do not beat the random start on validation
        and the random start is returned, or when a data-driven ``init`` is
        ignored (see ``init``).

    Examples
    --------
    >>> import fastlr
    >>> data = fastlr.datasets.lowrank(12, shape=(300, 40), seed=0)
    >>> S = fastlr.learn_sketch(data[:8], m=10, k=3, steps=50, val=data[8:], progress=False)
    >>> bool(S.history["val_err"][-1] < S.history["val_err"][0])
    True

    The same training with the matrices on dask workers (here dask's local threads):

    >>> import dask.bag as db
    >>> T = fastlr.learn_sketch(db.from_sequence(data[:8], npartitions=2), m=10, k=3, steps=50,
    ...                         val=data[8:], progress=False)
    >>> bool(abs(T.history["val_err"][-1] - S.history["val_err"][-1]) < 1e-10)
    True

    References
    ----------
    P. Indyk, A. Vakilian, Y. Yuan, "Learning-Based Low-Rank Approximations",
    NeurIPS 2019.
    """
    started = time.perf_counter()  # max_time counts from here
    m = check_int(m, "m", minimum=1)
    k = check_int(k, "k", minimum=1)
    if k > m:
        raise ValueError(f"k: must be <= m (the sketch size), got k={k} > m={m}")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX - 1)  # mixed sketches' random rows: seed + 1
    check_choice(optimizer, "optimizer", OPTIMIZERS)
    check_choice(gradient, "gradient", GRADIENTS)
    check_choice(mixed, "mixed", MIXED)
    if mixed is not None and m < 2:
        raise ValueError(f"m: a mixed sketch needs m >= 2 (half learned, half random), got {m}")
    lr = DEFAULT_LR[optimizer] if lr is None else _check_positive(lr, "lr")
    schedule = _lr_schedule(lr_decay)
    power_iters = DEFAULT_POWER_ITERS if power_iters is None else check_int(power_iters, "power_iters", minimum=0)
    eval_every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every", minimum=1)
    holdout = check_holdout(holdout)
    patience = None if patience is None else check_int(patience, "patience", minimum=1)
    max_time = check_max_time(max_time)
    shrink = check_shrink(shrink)
    heavy_rows = check_heavy_rows(heavy_rows)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    get_backend(backend)  # an unknown or unavailable backend fails here, before any work
    backend = current_backend() if backend is None else backend  # by name: the same in pool threads and on workers
    m_learned = m if mixed is None else m // 2
    fixed = (m - m_learned, seed + 1) if mixed == "joint" else None  # CountSketch(m_fixed, n, seed) of the random rows

    remote = _dask.is_dask_matrices(train)
    held = None  # the last training matrices, held out for validation (without val)
    if remote:  # loaded, checked and prepared on the dask workers, kept there for every step
        if val is None and holdout > 0:
            items = _dask._items(train)
            cut = holdout_split(len(items), holdout)
            train, held = items[:cut], _dask.gather_matrices(items[cut:]) if cut < len(items) else None
        load = partial(load_operand, fixed=fixed, backend=backend)
        matrices = _dask.DaskMatrices(train, "train", load)
        ops, shape = [], matrices.shape
    else:
        ops = sample_matrices(train, "train")
        shape = ops[0].shape
        if val is None:
            cut = holdout_split(len(ops), holdout)
            ops, held = ops[:cut], ops[cut:] or None
    n, d = shape
    if k > min(n, d):
        raise ValueError(f"k: must be <= min(n, d) = {min(n, d)} for {n} x {d} training matrices, got {k}")
    start, freeze = _initial_sketch(init, None if remote else [op.A for op in ops], m_learned, n, k, seed, shrink,
                                    mixed)
    if _dask.is_dask_matrices(val):
        val = _dask.gather_matrices(val)
    if held is not None:
        val_ops = held if not remote else sample_matrices(held, "train", shape=(n, d), like="train[0]", first=cut)
    else:
        val_ops = [] if val is None else sample_matrices(val, "val", shape=(n, d), like="train[0]")
    # in memory: every training matrix (held-out ones too); dask: the matrices this process holds (held out or val)
    rule = heavy_rows_rule(heavy_rows, [op.A for op in (val_ops if remote else ops + (held or []))])
    from tqdm.auto import tqdm

    with ExitStack() as stack:
        workers = min(batch_size, matrices.count if remote else len(ops), get_num_threads())
        pool = None
        if workers > 1:  # matrices of a batch side by side, one kernel and one BLAS thread each
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
        elif ops or val_ops:
            one_thread_if_small(ops + val_ops, stack)
        if not remote:
            matrices = InMemoryMatrices(ops, fixed, backend, pool)
        options = {"mixed": mixed, "seed": seed, "gradient": gradient, "power_iters": power_iters,
                   "optimizer": optimizer, "lr": lr, "schedule": schedule, "batch_size": batch_size,
                   "backend": backend, "pool": pool, "shrink": shrink, "start": start, "freeze": freeze,
                   "start_name": "its positive start (sporadic rows)" if freeze else None}
        run = Training(matrices, val_ops, m, k, **options)
        label = progress if isinstance(progress, str) else "learn_sketch"
        bar = stack.enter_context(tqdm(total=steps, desc=label, disable=not progress, leave=False))
        deadline = None if max_time is None else started + max_time
        checkpoint = Checkpoint(patience, rounding_ties([op.dtype for op in val_ops]),
                                run.evaluator.optimal) if val_ops else None
        stopped = run_training(run, steps, eval_every=eval_every, checkpoint=checkpoint, deadline=deadline,
                         callback=callback, bar=bar)
        S = run.result(checkpoint, stopped, source="val" if held is None else "holdout")
        if held is None or not refit or S.fallback or stopped == "callback":
            return with_heavy_rows(S, rule)
        # Validation said learning helps, and for how many steps: learn again on every matrix.
        if remote:
            everything = _dask.DaskMatrices(list(train) + list(held), "train", load)
        else:
            everything = InMemoryMatrices(ops + held, fixed, backend, pool, prepared=len(ops))
        again = Training(everything, [], m, k, **options)
        bar.reset(total=S.validation.best_step)
        if run_training(again, S.validation.best_step, eval_every=0, checkpoint=None, deadline=deadline, callback=None,
                  bar=bar) == "steps":  # finished in time (else the validated values stay)
            validated = S.values.copy()
            S.values[:] = again.shrunk(again.values)
            S.validation.refit = True
            S = run.refit_kept_on_validation(S, validated)
            S = again.never_worse_after_refit(S, [] if remote else ops + held)
        return with_heavy_rows(S, rule)
