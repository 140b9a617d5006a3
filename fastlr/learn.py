"""Learned sketches: train the values of a CountSketch on sample matrices.

Indyk, Vakilian and Yuan (NeurIPS 2019) keep the positions of a CountSketch's
nonzeros and train their values by gradient descent on the SCW error of
matrices from a distribution; on new matrices from the same distribution the
learned sketch is far more accurate than a random one at the same cost.

``learn_sketch`` trains (hand-derived gradients, no autograd; see
``_gradients.py``), ``sketch_error`` is the paper's Err metric, and
``S.save(path)`` / ``load_sketch(path)`` store sketches as .npz files without
pickle.
"""

from __future__ import annotations

import math
import numbers
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from . import _dask
from ._backend import current_backend, get_backend
from ._gradients import GRADIENTS, Operand, loss_and_grad
from ._threads import get_num_threads, thread_limit
from ._validation import UINT64_MAX, check_int, is_sparse
from .datasets import read_npz_arrays, spectral_norm
from .scw import scw
from .sketch import MAX_HASH_ROWS, CountSketch, Sketch, stack

__all__ = ["LearnedSketch", "learn_sketch", "load_sketch", "sketch_error", "HISTORY_DTYPE"]

OPTIMIZERS = ("adam", "sgd", "momentum")
MIXED = (None, "joint", "separate")

#: Default learning rates. The loss is invariant to scaling the values of any
#: row of S, and training matrices are scaled to sigma_1 = 1, so these work on
#: any data set at any scale (Adam's step is also invariant to the gradient's scale).
DEFAULT_LR = {"adam": 0.05, "sgd": 1.0, "momentum": 0.1}
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-12
_MOMENTUM = 0.9
DEFAULT_POWER_ITERS = 10

#: One row of ``LearnedSketch.history``.
HISTORY_DTYPE = np.dtype(
    [("step", np.int64), ("train_loss", np.float64), ("val_err", np.float64), ("seconds", np.float64)]
)


# --------------------------------------------------------------------------- data


def _optimal_error(op: Operand, k: int) -> tuple[float, float]:
    """(||A - A_k||_F, sigma_1) from all singular values, in float64."""
    A = op.A.toarray() if op.sparse else op.A
    s = scipy.linalg.svdvals(np.asarray(A, dtype=np.float64))
    return float(np.sqrt(np.sum(s[k:] ** 2))), float(s[0]) if s.size else 0.0


def _operands(matrices, name: str, shape=None, like: str = "") -> list[Operand]:
    """Prepared matrices, all of one shape (the first one's, or ``shape``: that of ``like``)."""
    if matrices is None or isinstance(matrices, (str, bytes)):
        raise TypeError(f"{name}: expected an iterable of 2-D matrices, got {type(matrices).__name__}")
    if is_sparse(matrices) or (isinstance(matrices, np.ndarray) and matrices.ndim == 2):
        raise TypeError(f"{name}: expected an iterable of matrices, got a single matrix (wrap it in a list)")
    try:
        items = list(matrices)
    except TypeError:
        raise TypeError(f"{name}: expected an iterable of 2-D matrices, got {type(matrices).__name__}") from None
    if not items:
        raise ValueError(f"{name}: is empty; at least one matrix is needed")
    ops = []
    for i, A in enumerate(items):
        op = Operand(A, f"{name}[{i}]")
        if min(op.shape) == 0:
            raise ValueError(f"{name}[{i}]: expected a non-empty matrix, got shape {op.shape}")
        expected = shape if shape is not None else ops[0].shape if ops else None
        if expected is not None and op.shape != tuple(expected):
            other = like if shape is not None else f"{name}[0]"
            raise ValueError(f"{name}[{i}]: has shape {op.shape}, but {other} has shape {tuple(expected)}")
        ops.append(op)
    return ops


# --------------------------------------------------------------------------- the sketch


class LearnedSketch(CountSketch):
    """A CountSketch with trained values, returned by :func:`learn_sketch`.

    Usable everywhere a sketch is (``S @ A``, ``fastlr.scw(A, S, k)``, ...).
    A *mixed* sketch (``mixed="joint"`` or ``"separate"``) is the learned
    CountSketch stacked on a fixed random one: ``rows`` and ``values`` are the
    learned rows ``0 .. m_learned-1``, ``fixed`` holds the random rows below
    them, and ``apply``, ``to_dense``, ``to_scipy`` and ``T`` act on the whole
    m x n operator.

    Attributes
    ----------
    history : ndarray with fields step, train_loss, val_err, seconds
        One row per training step: the batch's mean loss ``||A - SCW(S, A)||_F``
        (each A scaled to sigma_1 = 1; for ``"separate"`` the learned part
        alone), the validation Err (NaN where not evaluated; step 0 is the
        random start) and the training seconds so far (evaluation excluded).
    k : int
        The rank the sketch was trained for.
    mixed : None, "joint" or "separate"
    fixed : CountSketch or None
        The random rows of a mixed sketch.
    """

    def __init__(self, rows, values, m_learned: int, *, k: int, fixed: CountSketch | None = None,
                 mixed: str | None = None, history=None):
        learned = CountSketch.from_arrays(rows, values, m_learned)  # validates rows and values
        self._init(learned.m, learned.rows, learned.values)
        self.k = check_int(k, "k", minimum=1)
        if (fixed is None) != (mixed is None):
            raise ValueError("fixed: a mixed sketch needs its fixed part, and only a mixed one has one")
        if fixed is not None and fixed.n != self.n:
            raise ValueError(f"fixed: has n={fixed.n}, but the learned part has n={self.n}")
        self.fixed = fixed
        self.mixed = mixed
        if fixed is not None:
            self.shape = (m_learned + fixed.m, self.n)
        self.history = np.zeros(0, HISTORY_DTYPE) if history is None else np.asarray(history, HISTORY_DTYPE)

    @property
    def m_learned(self) -> int:
        """Rows with trained values (all of them unless mixed)."""
        return self.shape[0] - (self.fixed.m if self.fixed is not None else 0)

    def learned_part(self) -> CountSketch:
        """The trained rows alone, as a plain CountSketch."""
        return CountSketch.from_arrays(self.rows, self.values, self.m_learned)

    def _operator(self):
        return None if self.fixed is None else stack([self.learned_part(), self.fixed])

    def apply(self, A, *, backend=None) -> np.ndarray:
        if self.fixed is None:
            return super().apply(A, backend=backend)
        return self._operator().apply(A, backend=backend)

    def gather_dot(self, A, D, *, backend=None) -> np.ndarray:
        """g[i] = <A[i, :], D[rows[i], :]>: the gradient of <D, S A> with respect to ``values``.

        For a mixed sketch D may have m_learned rows or all m (the fixed rows are ignored).
        """
        if self.fixed is not None and np.shape(D)[0] == self.m:
            D = np.asarray(D)[: self.m_learned]
        return (self.learned_part() if self.fixed is not None else super()).gather_dot(A, D, backend=backend)

    def to_dense(self) -> np.ndarray:
        if self.fixed is None:
            return super().to_dense()
        return np.vstack([self.learned_part().to_dense(), self.fixed.to_dense()])

    def to_scipy(self):
        if self.fixed is None:
            return super().to_scipy()
        import scipy.sparse as sp

        return sp.csr_array(sp.vstack([self.learned_part().to_scipy(), self.fixed.to_scipy()]))

    @property
    def T(self):
        if self.fixed is None:
            return super().T
        return _StackedTranspose(self.learned_part(), self.fixed)

    def __repr__(self) -> str:
        mixed = "" if self.mixed is None else f", mixed={self.mixed!r}"
        return f"LearnedSketch(m={self.m}, n={self.n}, k={self.k}{mixed}, steps={len(self.history)})"


class _StackedTranspose:
    def __init__(self, top: CountSketch, bottom: CountSketch):
        self.top, self.bottom = top, bottom
        self.shape = (top.n, top.m + bottom.m)

    def __matmul__(self, Y):
        Y = np.asarray(Y)
        if Y.ndim not in (1, 2) or Y.shape[0] != self.shape[1]:
            raise ValueError(f"Y: expected {self.shape[1]} rows (the sketch's m), got shape {Y.shape}")
        return self.top.T @ Y[: self.top.m] + self.bottom.T @ Y[self.top.m :]


# --------------------------------------------------------------------------- evaluation


#: Matrices with fewer stored entries than this are handled on one thread (kernels and BLAS):
#: a pass over them takes microseconds, less than waking threads, and on a busy machine
#: threads that wait for a core make each pass take milliseconds.
SMALL_MATRIX = 1 << 20


def _one_thread_if_small(ops, stack: ExitStack) -> bool:
    """Limit this thread's kernels and BLAS to one thread when every matrix is small."""
    if max(op.A.nnz if op.sparse else op.A.size for op in ops) >= SMALL_MATRIX:
        return False
    stack.enter_context(thread_limit(1))
    stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
    return True


def _batch_map(fn, items, pool):
    """fn over items: on the pool's threads (one kernel thread each) or here."""
    if pool is None or len(items) == 1:
        return [fn(x) for x in items]

    def one(x):
        with thread_limit(1):
            return fn(x)

    return list(pool.map(one, items))


# --------------------------------------------------------------------------- per training matrix
# The training loop sees its matrices only through an executor: ``count``, ``shape`` and
# ``map(task, batch)``, which returns ``task(op)`` for the prepared matrix of every index in the
# batch, in batch order. ``_InMemory`` runs a batch on this process's thread pool;
# ``fastlr._dask.DaskMatrices`` keeps the matrices on dask workers and runs the tasks there.


def _prepare(op: Operand, fixed, backend: str) -> Operand:
    """Once per training matrix: its sigma_1 (losses count each matrix as scaled to sigma_1 = 1)
    and, for ``fixed = (m_fixed, seed)`` (mixed="joint"), the sketch by the fixed random rows,
    which never changes."""
    s1 = spectral_norm(op.A)
    op.scale = s1 if s1 > 0 else 1.0
    if fixed is not None:
        m_fixed, seed = fixed
        op.fixed_sketch = CountSketch(m_fixed, op.shape[0], seed=seed).apply(op.A, backend=backend)
    return op


def _load_operand(A, name: str, *, fixed, backend: str) -> Operand:
    """A training matrix checked and prepared (see _prepare): what a dask worker keeps."""
    return _prepare(Operand(A, name), fixed, backend)


def _values_as(values: np.ndarray, dtype) -> np.ndarray:
    """The sketch's values in a training matrix's dtype."""
    with np.errstate(over="raise"):
        try:
            return values.astype(dtype)
        except FloatingPointError:
            raise FloatingPointError(f"learn_sketch: the values overflow {np.dtype(dtype)}; use a smaller lr") from None


class _GradientTask:
    """One matrix's loss and gradient at the current values, divided by its sigma_1.

    Holds everything but the matrix (backend name, k, the sketch, gradient options) and
    pickles, so it runs on dask workers as well as on this process's threads.
    """

    def __init__(self, backend: str, k: int, rows, values, m: int, gradient: str, power_iters: int, omega):
        self.backend, self.k, self.rows, self.values, self.m = backend, k, rows, values, m
        self.gradient, self.power_iters, self.omega = gradient, power_iters, omega

    def __call__(self, op: Operand):
        loss, grad = loss_and_grad(op, get_backend(self.backend), self.k, self.rows, _values_as(self.values, op.dtype),
                                   self.m, gradient=self.gradient, power_iters=self.power_iters, omega=self.omega)
        return loss / op.scale, grad / op.scale


class _InMemory:
    """Training matrices in this process; a batch's matrices run side by side on the thread pool."""

    def __init__(self, ops: list[Operand], fixed, backend: str, pool):
        self.ops, self.pool = ops, pool
        self.count, self.shape = len(ops), ops[0].shape
        for op in ops:
            _prepare(op, fixed, backend)

    def map(self, task, batch: list[int]) -> list:
        return _batch_map(task, [self.ops[i] for i in batch], self.pool)


class _Evaluator:
    """The paper's Err of sketches on a fixed set of matrices (optimal errors computed once)."""

    def __init__(self, ops: list[Operand], k: int):
        self.ops = ops
        self.k = k
        best = [_optimal_error(op, k) for op in ops]
        self.scale = [s1 if s1 > 0 else 1.0 for _, s1 in best]
        self.optimal = float(np.mean([tail / s for (tail, _), s in zip(best, self.scale)]))

    def error(self, S, *, backend=None, pool=None) -> float:
        """Err = mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F, each A scaled to sigma_1 = 1."""

        def one(i):
            A = self.ops[i].A
            return scw(A, S, self.k, backend=backend).error(A) / self.scale[i]

        return float(np.mean(_batch_map(one, list(range(len(self.ops))), pool))) - self.optimal


def sketch_error(S, matrices, k: int, *, backend=None) -> float:
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
    get_backend(backend)  # an unknown or unavailable backend fails here, before any work
    ops = _operands(matrices, "matrices")
    if ops[0].shape[0] != S.n:
        raise ValueError(f"matrices: have {ops[0].shape[0]} rows but S is {S.m} x {S.n} (it needs {S.n} rows)")
    with ExitStack() as stack:
        _one_thread_if_small(ops, stack)
        return _Evaluator(ops, k).error(S, backend=backend)


# --------------------------------------------------------------------------- training


def _check_option(value, name, choices):
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {shown}")
    return value


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


class _Batches:
    """Mini-batches of matrix indices: shuffled epochs from one seeded generator."""

    def __init__(self, count: int, size: int, rng: np.random.Generator):
        self.count, self.size, self.rng = count, min(size, count), rng
        self.order, self.pos = rng.permutation(count), 0

    def next(self) -> list[int]:
        batch = []
        while len(batch) < self.size:
            if self.pos == self.count:
                self.order, self.pos = self.rng.permutation(self.count), 0
            take = min(self.size - len(batch), self.count - self.pos)
            batch.extend(int(i) for i in self.order[self.pos : self.pos + take])
            self.pos += take
        return batch


def learn_sketch(train, m: int, k: int, *, steps: int, batch_size: int = 1, optimizer: str = "adam",
                 lr: float | None = None, lr_decay=None, gradient: str = "exact", power_iters: int | None = None,
                 mixed: str | None = None, seed: int = 0, val=None, eval_every: int | None = None,
                 progress: bool = True, callback=None, backend=None) -> LearnedSketch:
    """Learn the values of an m x n CountSketch for rank-k SCW on matrices like ``train``.

    Minimizes the mean of ``||A - SCW(S, A)||_F`` over the training matrices
    (each scaled to sigma_1 = 1) with respect to the sketch's values; the
    positions of the nonzeros stay those of ``CountSketch(m, n, seed)``, whose
    +/-1 values are the starting point.

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
        appended (Mixed (S)).
    seed : int, default 0
        Seeds the positions and starting values (``CountSketch(m, n, seed)``;
        the random rows of a mixed sketch use ``seed + 1``) and the batches.
    val : iterable of matrices, optional
        Held-out matrices: the paper's Err on them is recorded in ``history``
        (evaluated in this process; a dask bag or delayed list is computed here).
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
    LearnedSketch

    Raises
    ------
    ValueError
        For matrices of different shapes (naming the index), NaN or infinity in
        a matrix, an empty training set, m < 1, k < 1, k > m, steps < 1, or an
        unknown optimizer, gradient or mixed value.

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
    m = check_int(m, "m", minimum=1)
    k = check_int(k, "k", minimum=1)
    if k > m:
        raise ValueError(f"k: must be <= m (the sketch size), got k={k} > m={m}")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX - 1)  # mixed sketches' random rows: seed + 1
    _check_option(optimizer, "optimizer", OPTIMIZERS)
    _check_option(gradient, "gradient", GRADIENTS)
    _check_option(mixed, "mixed", MIXED)
    if mixed is not None and m < 2:
        raise ValueError(f"m: a mixed sketch needs m >= 2 (half learned, half random), got {m}")
    lr = DEFAULT_LR[optimizer] if lr is None else _check_positive(lr, "lr")
    schedule = _lr_schedule(lr_decay)
    power_iters = DEFAULT_POWER_ITERS if power_iters is None else check_int(power_iters, "power_iters", minimum=0)
    eval_every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every", minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    get_backend(backend)  # an unknown or unavailable backend fails here, before any work
    backend = current_backend() if backend is None else backend  # by name: the same in pool threads and on workers
    m_learned = m if mixed is None else m // 2
    fixed = (m - m_learned, seed + 1) if mixed == "joint" else None  # CountSketch(m_fixed, n, seed) of the random rows

    remote = _dask.is_dask_matrices(train)
    if remote:  # loaded, checked and prepared on the dask workers, kept there for every step
        matrices = _dask.DaskMatrices(train, "train", partial(_load_operand, fixed=fixed, backend=backend))
        ops, shape = [], matrices.shape
    else:
        ops = _operands(train, "train")
        shape = ops[0].shape
    n, d = shape
    if k > min(n, d):
        raise ValueError(f"k: must be <= min(n, d) = {min(n, d)} for {n} x {d} training matrices, got {k}")
    if _dask.is_dask_matrices(val):
        val = _dask.gather_matrices(val)
    val_ops = [] if val is None else _operands(val, "val", shape=(n, d), like="train[0]")
    from tqdm.auto import tqdm

    with ExitStack() as stack:
        workers = min(batch_size, matrices.count if remote else len(ops), get_num_threads())
        pool = None
        if workers > 1:  # matrices of a batch side by side, one kernel and one BLAS thread each
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
        elif ops or val_ops:
            _one_thread_if_small(ops + val_ops, stack)
        if not remote:
            matrices = _InMemory(ops, fixed, backend, pool)
        run = _Training(matrices, val_ops, m, k, mixed=mixed, seed=seed, gradient=gradient, power_iters=power_iters,
                        optimizer=optimizer, lr=lr, schedule=schedule, batch_size=batch_size, backend=backend,
                        pool=pool)
        label = progress if isinstance(progress, str) else "learn_sketch"
        bar = stack.enter_context(tqdm(total=steps, desc=label, disable=not progress, leave=False))
        run.record(0, math.nan, 0.0, evaluate=True)
        seconds = 0.0
        for step in range(1, steps + 1):
            start = time.perf_counter()
            loss = run.step(step)
            seconds += time.perf_counter() - start
            row = run.record(step, loss, seconds, evaluate=step % eval_every == 0 or step == steps)
            if not math.isnan(row["val_err"]):
                bar.set_postfix(loss=f"{loss:.4g}", val_err=f"{row['val_err']:.4g}", refresh=False)
            bar.update(1)
            if callback is not None and callback(row):
                if math.isnan(row["val_err"]):  # the last step always has its val Err
                    run.history.pop()
                    run.record(step, loss, seconds, evaluate=True)
                break
        return run.result()


class _Training:
    """The state of one learn_sketch run: the matrices' executor, values, optimizer state, history."""

    def __init__(self, matrices, val_ops, m, k, *, mixed, seed, gradient, power_iters, optimizer, lr, schedule,
                 batch_size, backend, pool):
        n, d = matrices.shape
        self.matrices, self.k, self.mixed, self.backend, self.pool = matrices, k, mixed, backend, pool
        self.kernels = get_backend(backend)
        self.gradient, self.power_iters = gradient, power_iters
        self.optimizer, self.lr, self.schedule = optimizer, lr, schedule
        self.m_learned = m if mixed is None else m // 2
        start = CountSketch(self.m_learned, n, seed=seed)
        self.rows, self.values = start.rows, start.values.copy()
        self.fixed = None if mixed is None else CountSketch(m - self.m_learned, n, seed=seed + 1)
        self.evaluator = _Evaluator(val_ops, k) if val_ops else None
        self.omega = np.random.default_rng(seed).standard_normal((d, k)) if gradient == "power" else None
        n_state = {"adam": 2, "momentum": 1, "sgd": 0}[optimizer]
        self.state = np.zeros((n_state, n))
        self.batches = _Batches(matrices.count, batch_size, np.random.default_rng(seed))
        self.history = []

    def step(self, step: int) -> float:
        """One optimizer step on the next mini-batch; returns the batch's mean loss."""
        task = _GradientTask(self.backend, self.k, self.rows, self.values, self.m_learned, self.gradient,
                             self.power_iters, self.omega)
        results = self.matrices.map(task, self.batches.next())
        loss = float(np.mean([r[0] for r in results]))
        grad = np.mean([r[1] for r in results], axis=0) if len(results) > 1 else results[0][1]
        beta1 = _ADAM_BETAS[0] if self.optimizer == "adam" else _MOMENTUM
        hyper = (self.lr * self.schedule(step), beta1, _ADAM_BETAS[1], _ADAM_EPS, step)
        self.kernels.optimizer_step(self.values, np.ascontiguousarray(grad), self.state, self.optimizer, hyper)
        if not np.isfinite(self.values).all():
            raise FloatingPointError(f"learn_sketch: the values diverged at step {step}; use a smaller lr")
        return loss

    def sketch(self, history=None) -> LearnedSketch:
        return LearnedSketch(self.rows, self.values, self.m_learned, k=self.k, fixed=self.fixed, mixed=self.mixed,
                             history=history)

    def record(self, step: int, loss: float, seconds: float, *, evaluate: bool):
        """Append a history row (with the validation Err when ``evaluate``) and return it."""
        err = math.nan
        if evaluate and self.evaluator is not None:
            err = self.evaluator.error(self.sketch(), backend=self.backend, pool=self.pool)
        self.history.append((step, loss, err, seconds))
        return np.array(self.history[-1], HISTORY_DTYPE)[()]

    def result(self) -> LearnedSketch:
        return self.sketch(np.array(self.history, HISTORY_DTYPE))


# --------------------------------------------------------------------------- files

_FORMAT = "fastlr.sketch"
_VERSION = 1


def save_sketch(S: CountSketch, path) -> None:
    """Write a CountSketch (or LearnedSketch) to ``path`` as an .npz file (no pickle).

    ``path`` is a file name (written as given, no suffix added) or a binary file object.
    """
    if not isinstance(S, CountSketch):
        raise TypeError(f"S: only CountSketch (and LearnedSketch) can be saved, got {type(S).__name__}")
    learned = isinstance(S, LearnedSketch)
    m = S.m_learned if learned else S.m
    arrays = {
        "format": np.array(_FORMAT),
        "version": np.array(_VERSION),
        "kind": np.array("learned" if learned else "countsketch"),
        "m": np.array(m, dtype=np.int64),
        "rows": S.rows,
        "values": S.values,
        "seed": np.array(-1, dtype=np.int64) if S.seed is None else np.array(S.seed, dtype=np.uint64),
    }
    if learned:
        arrays.update(k=np.array(S.k, dtype=np.int64), mixed=np.array(S.mixed or ""), history=S.history)
        if S.fixed is not None:
            arrays.update(fixed_m=np.array(S.fixed.m, dtype=np.int64), fixed_rows=S.fixed.rows,
                          fixed_values=S.fixed.values)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    with open(path, "wb") as f:
        np.savez(f, **arrays)


_ZIP_MAGIC = b"PK\x03\x04"  # every .npz (np.savez) starts with a zip entry
_NPY_MAGIC = b"\x93NUMPY"


def _read(path) -> dict:
    """The arrays of an .npz file; ValueError naming ``path`` when it is not a readable one."""
    if isinstance(path, (int, np.integer)):  # open(1) would take over (and then close) file descriptor 1
        raise TypeError(f"path: expected a file name or path, got {type(path).__name__} {path!r}")
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if not magic.startswith(_ZIP_MAGIC):
        if magic == _NPY_MAGIC:
            what = "it is a NumPy .npy array"
        elif not magic:
            what = "the file is empty"
        else:
            what = "it is not an .npz archive"
        raise ValueError(f"path: {path} is not a fastlr sketch file ({what}; sketches are .npz files "
                         "written by S.save(path))")
    try:  # every member's header is checked against the file's size before anything is allocated
        return read_npz_arrays(path)
    except ValueError as exc:
        if "objects" in str(exc):  # an entry of dtype object: fastlr never unpickles
            raise ValueError(f"path: {path} is not a fastlr sketch file (it holds an object array, "
                             "which fastlr does not load)") from None
        raise ValueError(f"path: {path} is not a readable fastlr sketch file: {exc}") from None


def load_sketch(path) -> CountSketch:
    """Read a sketch written by ``S.save(path)``.

    Returns
    -------
    CountSketch or LearnedSketch

    Raises
    ------
    ValueError
        If the file is corrupted, truncated, not a fastlr sketch, of an unknown
        version, or its arrays do not fit together.
    """
    z = _read(path)

    def get(name, kind="", ndim=0):
        if name not in z:
            raise ValueError(f"path: {path} is not a fastlr sketch file (no {name!r} entry)")
        a = z[name]
        if a.ndim != ndim or (kind and a.dtype.kind not in kind):
            raise ValueError(f"path: {path} has a malformed {name!r} entry (dtype {a.dtype}, shape {a.shape})")
        return a if ndim else a[()]

    if "format" not in z or str(z["format"]) != _FORMAT:
        raise ValueError(f"path: {path} is not a fastlr sketch file")
    version = int(get("version", "iu"))
    if version != _VERSION:
        raise ValueError(f"path: {path} has format version {version}; this fastlr reads version {_VERSION}")
    kind = str(get("kind", "U"))
    if kind not in ("countsketch", "learned"):
        raise ValueError(f"path: {path} holds an unknown sketch kind {kind!r}")

    def countsketch(prefix):
        m, rows, values = int(get(prefix + "m", "iu")), get(prefix + "rows", "iu", 1), get(prefix + "values", "f", 1)
        if m < 1 or len(rows) == 0:
            raise ValueError(f"path: {path} holds an empty sketch (m={m}, n={len(rows)})")
        if m > MAX_HASH_ROWS:  # as for CountSketch(m, n): S @ A would be m x d
            raise ValueError(f"path: {path} holds a sketch of m={m} rows; at most {MAX_HASH_ROWS} are supported")
        if len(values) != len(rows):
            raise ValueError(f"path: {path} is inconsistent: {len(rows)} rows but {len(values)} values")
        if rows.min() < 0 or rows.max() >= m:
            raise ValueError(f"path: {path} is inconsistent: row indices outside [0, {m})")
        if not np.isfinite(values).all():
            raise ValueError(f"path: {path} holds non-finite values")
        return CountSketch.from_arrays(rows, values, m)

    S = countsketch("")
    seed = int(get("seed", "iu"))
    if kind == "countsketch":
        S.seed = None if seed < 0 else seed
        return S
    mixed = str(get("mixed", "U")) or None
    if mixed not in MIXED:
        raise ValueError(f"path: {path} holds an unknown mixed value {mixed!r}")
    fixed = countsketch("fixed_") if mixed is not None else None
    if fixed is not None and fixed.n != S.n:
        raise ValueError(f"path: {path} is inconsistent: the fixed part has n={fixed.n}, the learned part {S.n}")
    history = get("history", "V", 1)
    if history.dtype != HISTORY_DTYPE:
        raise ValueError(f"path: {path} has a malformed 'history' entry (dtype {history.dtype})")
    out = LearnedSketch(S.rows, S.values, S.m, k=int(get("k", "iu")), fixed=fixed, mixed=mixed, history=history)
    out.seed = None if seed < 0 else seed
    return out
