"""The training loop of :func:`fastlr.learn_sketch`: optimizer steps on mini-batches, validation, history.

The loop sees its matrices only through an executor: ``count``, ``shape`` and
``map(task, batch)``, which returns ``task(op)`` for the prepared matrix of every index in the
batch, in batch order. :class:`InMemoryMatrices` runs a batch on this process's thread pool;
``fastlr._dask.DaskMatrices`` keeps the matrices on dask workers and runs the tasks there
(each one a picklable :class:`_GradientTask`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

from ._backend import get_backend
from ._gradients import TrainingMatrix, loss_and_grad
from ._safeguards import (
    Checkpoint,
    LearnedSketchWarning,
    Validation,
    evidence_weights,
    frozen_columns,
    pull_to_buckets,
    rounding_ties,
    spread,
    tie_width,
)
from ._sample_matrices import batch_map
from ._validation import user_stacklevel
from .datasets import spectral_norm
from .evaluation import Evaluator
from .learned_sketch import HISTORY_DTYPE, LearnedSketch
from .sketch import CountSketch

__all__ = ["InMemoryMatrices", "Training", "load_operand", "run_training"]

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-12
_MOMENTUM = 0.9


def _prepare(op: TrainingMatrix, fixed, backend: str) -> TrainingMatrix:
    """Once per training matrix: its sigma_1 (losses count each matrix as scaled to sigma_1 = 1)
    and, for ``fixed = (m_fixed, seed)`` (mixed="joint"), the sketch by the fixed random rows,
    which never changes."""
    s1 = spectral_norm(op.A)
    op.scale = s1 if s1 > 0 else 1.0
    if fixed is not None:
        m_fixed, seed = fixed
        op.fixed_sketch = CountSketch(m_fixed, op.shape[0], seed=seed).apply(op.A, backend=backend)
    return op


def load_operand(A, name: str, *, fixed, backend: str) -> TrainingMatrix:
    """A training matrix checked and prepared (see _prepare): what a dask worker keeps."""
    return _prepare(TrainingMatrix(A, name), fixed, backend)


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

    def __call__(self, op: TrainingMatrix):
        loss, grad = loss_and_grad(op, self.backend, self.k, self.rows, _values_as(self.values, op.dtype),
                                   self.m, gradient=self.gradient, power_iters=self.power_iters, omega=self.omega)
        return loss / op.scale, grad / op.scale


def _row_energy(op: TrainingMatrix) -> np.ndarray:
    """||A[i, :]||^2 for every row i of a training matrix, A scaled to sigma_1 = 1 (for ``shrink``)."""
    A = op.A
    if op.sparse:
        energy = np.asarray(A.multiply(A).sum(axis=1), dtype=np.float64).ravel()
    else:
        energy = np.einsum("ij,ij->i", A, A, dtype=np.float64)
    return energy / op.scale**2


class InMemoryMatrices:
    """Training matrices in this process; a batch's matrices run side by side on the thread pool."""

    def __init__(self, ops: list[TrainingMatrix], fixed, backend: str, pool, prepared: int = 0):
        self.ops, self.pool = ops, pool
        self.count, self.shape = len(ops), ops[0].shape
        for op in ops[prepared:]:  # the first ``prepared`` ones already are
            _prepare(op, fixed, backend)

    def map(self, task, batch: list[int]) -> list:
        return batch_map(task, [self.ops[i] for i in batch], self.pool)


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


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def run_training(run: Training, steps: int, *, eval_every: int, checkpoint: Checkpoint | None, deadline, callback,
           bar) -> str:
    """Run up to ``steps`` steps, evaluating every ``eval_every`` (0: never) and at the end; return why it
    stopped: "steps", "patience", "max_time" (``deadline`` passed, a ``time.perf_counter()``) or "callback"."""
    row = run.record(0, math.nan, 0.0, evaluate=eval_every > 0)
    if checkpoint is not None:
        checkpoint.update(0, row["val_err"], run.values)
    seconds = 0.0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        loss = run.step(step)
        seconds += time.perf_counter() - start
        row = run.record(step, loss, seconds, evaluate=eval_every > 0 and (step % eval_every == 0 or step == steps))
        if not math.isnan(row["val_err"]):
            bar.set_postfix(loss=f"{loss:.4g}", val_err=f"{row['val_err']:.4g}", refresh=False)
        bar.update(1)
        stopped = None
        if checkpoint is not None and not math.isnan(row["val_err"]) and \
                checkpoint.update(step, row["val_err"], run.values):
            stopped = "patience"
        elif deadline is not None and time.perf_counter() >= deadline and step < steps:
            stopped = "max_time"
        elif callback is not None and callback(row):
            stopped = "callback"
        if stopped is not None:
            if math.isnan(row["val_err"]) and run.evaluator is not None:  # the last step has its val Err
                run.history.pop()
                row = run.record(step, loss, seconds, evaluate=True)
                if checkpoint is not None:
                    checkpoint.update(step, row["val_err"], run.values)
            return stopped
    return "steps"


class Training:
    """The state of one learn_sketch run: the matrices' executor, values, optimizer state, history."""

    def __init__(self, matrices, val_ops, m, k, *, mixed, seed, gradient, power_iters, optimizer, lr, schedule,
                 batch_size, backend, pool, shrink=0.0, start=None, freeze=False, start_name=None):
        n, d = matrices.shape
        self.matrices, self.k, self.mixed, self.backend, self.pool = matrices, k, mixed, backend, pool
        self.kernels = get_backend(backend)
        self.gradient, self.power_iters = gradient, power_iters
        self.optimizer, self.lr, self.schedule = optimizer, lr, schedule
        self.m_learned = m if mixed is None else m // 2
        self.seed, self.given_start = seed, start is not None
        # how warnings name the start: the random CountSketch, a given one (init=), or learn_sketch's own
        self.start_name = start_name or ("its start (init)" if self.given_start else "its random start")
        if start is None:  # else a given m_learned x n CountSketch (learn_sketch's init)
            start = CountSketch(self.m_learned, n, seed=seed)
        self.rows, self.values, self.start = start.rows, start.values.copy(), start.values.copy()
        self.weights = None
        if shrink > 0:  # per-column evidence of the training matrices (see _safeguards.evidence_weights)
            energy = np.array(matrices.map(_row_energy, list(range(matrices.count))))
            self.weights = evidence_weights(energy, shrink)
        # sporadic data (learn_sketch decides): columns with little evidence keep their start values
        self.frozen = frozen_columns(self.weights) if freeze and self.weights is not None else None
        self.sporadic = freeze  # learn_sketch freezes columns only on sporadic rows (text)
        self.fixed = None if mixed is None else CountSketch(m - self.m_learned, n, seed=seed + 1)
        self.evaluator = Evaluator(val_ops, k) if val_ops else None
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
        if self.frozen is not None:
            self.values[self.frozen] = self.start[self.frozen]
        return loss

    def shrunk(self, values: np.ndarray) -> np.ndarray:
        """The values a sketch uses: ``values``, each column pulled toward its bucket's typical magnitude
        (keeping its sign) as far as the training matrices give little evidence for it (``shrink``)."""
        if self.weights is None:
            return values
        return pull_to_buckets(values, self.rows, self.start, self.weights, self.m_learned)

    def sketch(self, history=None) -> LearnedSketch:
        return LearnedSketch(self.rows, self.shrunk(self.values), self.m_learned, k=self.k, fixed=self.fixed,
                             mixed=self.mixed, history=history)

    def record(self, step: int, loss: float, seconds: float, *, evaluate: bool):
        """Append a history row (with the validation Err when ``evaluate``) and return it."""
        err = math.nan
        if evaluate and self.evaluator is not None:
            _values_as(self.values, self.evaluator.ops[0].dtype)  # FloatingPointError if they overflow it
            err = self.evaluator.error(self.sketch(), backend=self.backend, pool=self.pool)
        self.history.append((step, loss, err, seconds))
        return np.array(self.history[-1], HISTORY_DTYPE)[()]

    def result(self, checkpoint: Checkpoint | None, stopped: str, source: str) -> LearnedSketch:
        """The sketch to return: the best checkpoint's values, or the random start (with a warning)."""
        history = np.array(self.history, HISTORY_DTYPE)
        if checkpoint is None:
            return self.sketch(history)
        self.values = checkpoint.best_values
        validation = Validation(source=source, matrices=len(self.evaluator.ops), random_err=checkpoint.random_err,
                                best_err=checkpoint.best_err, best_step=checkpoint.best_step,
                                last_step=int(history["step"][-1]), stopped=stopped, fallback=checkpoint.fallback)
        if validation.fallback:
            what = "the mixed sketch's learned half" if self.mixed else "the learned sketch"
            start = self.start_name
            warnings.warn(f"learn_sketch: {what} did not beat {start} on validation "
                          f"({_count(len(self.evaluator.ops), 'matrix', 'matrices')} from {source}: Err "
                          f"{validation.random_err:.4g} at "
                          f"step 0, never lower in {validation.last_step} steps); returning the {start[4:]} "
                          "(S.fallback is True)", LearnedSketchWarning, stacklevel=user_stacklevel())
        S = LearnedSketch(self.rows, self.shrunk(self.values), self.m_learned, k=self.k, fixed=self.fixed,
                          mixed=self.mixed, history=history, validation=validation)
        if self.given_start or self.mixed is not None:
            return self._never_worse_than_random(S, validation, source, checkpoint.tie())
        return S

    def _never_worse_than_random(self, S: LearnedSketch, validation: Validation, source: str,
                                 tie: float) -> LearnedSketch:
        """The guard above compares with the start; when that start is not the random ``CountSketch(m, n, seed)``
        itself, the result is also compared with that sketch (the random one a user had), which is returned (with
        the warning) when it is better on validation by more than ``tie``. A data-driven start (init=) can be worse
        than random on new data (inner-product buckets left empty by unseen words); a mixed sketch stacks m // 2
        learned rows on another random draw (seed + 1): on tiny matrices (12 x 6, m = 4) it was up to 7.3x (joint)
        and 3.9x (separate) CountSketch(m, n, seed)'s held-out Err, its fallback (that stack at +-1) up to 11x the
        mean random's (bench/README.md, fourteenth session, H3). On sporadic rows (text; the mixed sketch's
        positive start) the reference stays the +-1 stack: validation comes from the training topics and cannot
        see a topic shift, and there the CountSketch(m, n, seed) it preferred was worse on new topics (2 of 24
        seeds replaced, mean 0.674 -> 0.696 of random's Err)."""
        if self.sporadic:
            m = self.m_learned
            random = CountSketch(m, self.matrices.shape[0], seed=self.seed)
            candidate = LearnedSketch(random.rows, random.values, m, k=self.k, fixed=self.fixed, mixed=self.mixed,
                                      history=S.history)
        else:
            candidate = self._user_random(S.history)
        random_err = self.evaluator.error(candidate, backend=self.backend, pool=self.pool)
        if not random_err < validation.best_err - tie:  # a tie (rounding) keeps S
            return S
        what = "the mixed sketch" if self.mixed is not None and not self.sporadic else \
            f"the sketch learned from {self.start_name}"
        warnings.warn(f"learn_sketch: {what} did not beat a random "
                      f"CountSketch on validation (Err {validation.best_err:.4g} vs {random_err:.4g} on "
                      f"{_count(len(self.evaluator.ops), 'matrix', 'matrices')} from {source}); returning the "
                      "random CountSketch (S.fallback is True)", LearnedSketchWarning, stacklevel=user_stacklevel())
        candidate.validation = dataclasses.replace(validation, random_err=random_err, best_err=random_err,
                                                   best_step=0, fallback=True)
        return candidate

    def _user_random(self, history) -> LearnedSketch:
        """``CountSketch(m, n, seed)`` over all m rows (a mixed sketch's fixed ones included): the random sketch the
        user had, as a LearnedSketch the guards can return."""
        m = self.m_learned + (0 if self.fixed is None else self.fixed.m)
        random = CountSketch(m, self.matrices.shape[0], seed=self.seed)
        return LearnedSketch(random.rows, random.values, m, k=self.k, history=history)

    def _errors_if_random_wins(self, S: LearnedSketch, random: LearnedSketch, evaluator: Evaluator):
        """(S's Err, ``random``'s) on ``evaluator``'s matrices when ``random`` is lower by more than a rounding
        tie (``tie_width`` of the matrices' ``rounding_ties`` at S's error); None otherwise (a tie keeps S)."""
        err = evaluator.error(S, backend=self.backend, pool=self.pool)
        random_err = evaluator.error(random, backend=self.backend, pool=self.pool)
        ties = rounding_ties([op.dtype for op in evaluator.ops])
        return (err, random_err) if random_err < err - tie_width(ties, err + evaluator.optimal) else None

    def refit_kept_on_validation(self, S: LearnedSketch, validated: np.ndarray) -> LearnedSketch:
        """A refit plain sketch (values trained again on every training matrix, the validation ones included,
        for best_step steps) against ``CountSketch(m, n, seed)`` on this run's validation matrices: when that random
        sketch is better there by more than a rounding tie, the refit went astray (the batches of a second run
        differ) and the ``validated`` values, which beat it there while those matrices were held out, are put
        back (with the warning). On 12 x 6 matrices (m = 4) two refit sketches in 100 seeds lost so on validation
        and were 1.11x and 1.30x that sketch's held-out Err, their validated values 0.94x and 0.81x; on video,
        hyperspectral, low-rank and topic-shifted text (100 seeds each) it never acted (bench/README.md,
        seventeenth session). A mixed sketch has its own check (never_worse_after_refit)."""
        if self.mixed is not None or self.evaluator is None:
            return S
        errors = self._errors_if_random_wins(S, self._user_random(S.history), self.evaluator)
        if errors is None:
            return S
        err, random_err = errors
        warnings.warn(f"learn_sketch: the sketch trained again on all the training matrices did not beat a random "
                      f"CountSketch on the {_count(len(self.evaluator.ops), 'validation matrix', 'validation matrices')}"
                      f" (Err {err:.4g} vs {random_err:.4g}); returning the validated values (S.validation.refit is "
                      "False)", LearnedSketchWarning, stacklevel=user_stacklevel())
        S.values[:] = validated
        S.validation.refit = False
        return S

    def never_worse_after_refit(self, S: LearnedSketch, ops: list[TrainingMatrix]) -> LearnedSketch:
        """A refit mixed sketch (values trained again on every training matrix, ``ops``, the held-out ones included)
        is no longer judged by validation: it is compared with ``CountSketch(m, n, seed)`` again, on up to JUDGES of
        ``ops`` (spread), and replaced by it (with the warning) when that is better there by more than a rounding
        tie. On 12 x 6 matrices (m = 4) the refit joint sketch was up to 2.5x, separate 2.2x, that sketch's held-out
        Err (bench/README.md, sixteenth session). Not on sporadic rows (text), as in _never_worse_than_random."""
        if self.mixed is None or self.sporadic or not ops:
            return S
        evaluator = Evaluator([ops[i] for i in spread(len(ops))], self.k)
        candidate = self._user_random(S.history)
        errors = self._errors_if_random_wins(S, candidate, evaluator)
        if errors is None:
            return S
        err, random_err = errors
        warnings.warn(f"learn_sketch: the mixed sketch, trained again on all {_count(len(ops), 'matrix', 'matrices')}, "
                      f"did not beat a random CountSketch on {_count(len(evaluator.ops), 'matrix', 'matrices')} of "
                      f"them (Err {err:.4g} vs {random_err:.4g}); returning the random CountSketch (S.fallback is "
                      "True)", LearnedSketchWarning, stacklevel=user_stacklevel())
        candidate.validation = dataclasses.replace(S.validation, best_step=0, fallback=True, refit=False)
        return candidate
