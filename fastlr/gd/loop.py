"""The iteration of gd_svd: mini-batches, step sizes, the stopping rule and the history."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .optim import ElementwiseOptimizer, LrController, kernel_kind, lr_mode
from .problems import MaskedProblem

__all__ = ["DivergenceError", "GDHistory", "MiniBatches", "StoppingRule", "run"]

#: ScaledGD's default step: the largest for which Tong, Ma and Chi (2021) prove linear convergence.
SCALED_LR = 2 / 3
#: With a mask the preconditioner p V^T V only estimates each row's curvature; steps above ~0.55
#: diverged on 5%-observed 1000 x 1000 rank-10 completion (the step Tong et al. use there is 0.5).
SCALED_MASKED_LR = 0.5
#: Default Adam step, relative to the RMS of the initial factors.
ADAM_RELATIVE_LR = 0.1
#: A loss this many times the starting one means the iteration diverges.
BLOWUP = 1e8
#: Largest convergence rate the stopping rule extrapolates with (a loss that decreases by the
#: same amount each step may still have up to 1/(1 - MAX_RATE) = 100 such steps to go).
MAX_RATE = 0.99
#: Convergence rate assumed before two decreases show one, to predict whether the next loss may
#: end the run (ScaledGD's default runs measured 0.1-0.3 on the benchmark matrices).
GUESS_RATE = 0.25


class DivergenceError(FloatingPointError):
    """gd_svd's loss became infinite, NaN or exploded: the step size is too large."""


@dataclass
class GDHistory:
    """What a :func:`gd_svd` run did.

    Attributes
    ----------
    loss : ndarray
        Objective at each iteration (a mini-batch estimate when ``batch_size`` is set).
    time : ndarray
        Seconds since the start of the run (including initialization) when each loss was computed.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the run stopped by the ``tol`` rule (or reached an exact fit).
    lr : float
        The step size of the last iteration.
    init_time : float
        Seconds spent on the initialization.
    stop_reason : str
        ``"tol"``, ``"max_iter"`` or ``"callback"``.
    """

    loss: np.ndarray = field(repr=False)
    time: np.ndarray = field(repr=False)
    n_iter: int = 0
    converged: bool = False
    lr: float = float("nan")
    init_time: float = 0.0
    stop_reason: str = ""


class MiniBatches:
    """Mini-batches of rows or entries sampled without replacement, a new permutation every epoch."""

    def __init__(self, total, size, rng):
        self.total, self.rng = total, rng
        self.size = None if size is None or size >= total else size
        self.pos = total
        self.perm = None

    def next(self):
        """(indices or None for the full batch, whether this batch ends an epoch)."""
        if self.size is None:
            return None, True
        if self.pos >= self.total:
            self.perm = self.rng.permutation(self.total)
            self.pos = 0
        batch = np.sort(self.perm[self.pos : self.pos + self.size])
        self.pos += self.size
        return batch, self.pos >= self.total


class StoppingRule:
    """Stop when the loss has (nearly) nothing left to gain.

    Full batches: after each accepted step with decrease ``d`` (and the previous one ``d0``),
    the remaining decrease is estimated as if the loss kept converging linearly at the observed
    rate ``r = d / d0``: ``d * max(1, r / (1 - r))`` (a geometric tail; ``r`` capped at
    ``MAX_RATE``). The run stops when that is at most ``tol`` times the loss (never below the
    loss's rounding level ``floor``, a fraction of ``||A||^2``), or the loss itself is at the
    floor (an exact fit). Two decreases are needed for a rate, so at least two steps run, or one
    when the start supplies the loss of the estimate it improved on (``run``'s ``prior``).

    Mini-batches: the loss is a noisy estimate, so the rule compares epoch means: stop when
    two consecutive means differ by at most ``tol`` times the previous one.
    """

    def __init__(self, tol: float, floor: float):
        self.tol, self.floor = tol, floor
        self.previous = math.inf  # last accepted loss (epoch mean with mini-batches)
        self.decrease = math.nan  # the decrease before it
        self.rate = math.nan  # the last two decreases' ratio

    def may_stop_next(self) -> bool:
        """Whether the next full-batch loss may end the run: its decrease, at the last observed rate
        (GUESS_RATE before there is one), would leave at most twice the tolerance. Such a loss is
        computed before the gradients (one product of the pass), which a stop then skips."""
        d = self.decrease
        if not d > 0:  # no decrease yet: only an exact fit can stop at the next loss
            return False
        rate = min(self.rate if math.isfinite(self.rate) else GUESS_RATE, MAX_RATE)
        return rate * d * max(1.0, rate / (1.0 - rate)) <= 2 * self.tol * max(self.previous, self.floor)

    def full_batch(self, loss: float) -> bool:
        """Record an accepted full-batch loss; whether to stop."""
        if loss <= self.floor:  # an exact fit, to rounding: nothing left to optimize
            return True
        previous, self.previous = self.previous, loss
        if not math.isfinite(previous):
            return False
        d, d0 = abs(previous - loss), self.decrease
        self.decrease = d
        if not d0 > 0:  # no rate yet; a step that changed nothing at all is the end
            return d == 0
        rate = self.rate = min(d / d0, MAX_RATE)
        remaining = d * max(1.0, rate / (1.0 - rate))
        return remaining <= self.tol * max(loss, self.floor)

    def epoch(self, mean: float) -> bool:
        """Record an epoch's mean mini-batch loss; whether to stop."""
        previous, self.previous = self.previous, mean
        return math.isfinite(previous) and abs(previous - mean) <= self.tol * max(previous, self.floor)


def run(model, problem, options, kernels, rng, start, prior=None) -> GDHistory:
    """Iterate ``model`` on ``problem`` until the stopping rule, max_iter or the callback.
    ``prior``: the loss of an estimate the start improved on (the stopping rule's first decrease
    is then the start's own)."""
    batches = MiniBatches(problem.n_samples, options.batch_size, rng)
    full_batch = batches.size is None
    opt = ElementwiseOptimizer(kernel_kind(options), model.params, kernels, momentum=options.momentum,
                               betas=options.betas, eps=options.eps)
    control = LrController(lr_mode(options, full_batch))
    stop = StoppingRule(options.tol, problem.loss_floor)
    if prior is not None and full_batch:
        stop.previous = prior
    adam_lr = [ADAM_RELATIVE_LR * max(float(np.sqrt(np.mean(p.astype(np.float64) ** 2))), 1e-30)
               for p in model.params]
    losses, times = [], []
    history = GDHistory(loss=np.empty(0), time=np.empty(0), stop_reason="max_iter")
    first_loss = None
    previous = math.inf  # loss of the last accepted iterate
    epoch_sum, epoch_count = 0.0, 0
    saved = None  # (optimizer snapshot, evaluation) of the last accepted iterate, for backtracking
    defer = full_batch and options.tol > 0  # loss before gradients where the loss may end the run
    full_step_allowed = options.optimizer == "scaled" and options.lr is None and hasattr(model, "full_step")
    bar = tqdm(total=options.max_iter, desc="gd_svd", disable=not options.progress, leave=False)
    try:
        for it in range(options.max_iter):
            batch, epoch_end = batches.next()
            loss, grads, ev = model.evaluate(batch, loss_first=defer and stop.may_stop_next())
            losses.append(loss)
            times.append(time.perf_counter() - start)
            if first_loss is None:
                first_loss = max(loss, 0.5 * problem.norm2, np.finfo(np.float64).tiny)
            if not math.isfinite(loss) or loss > BLOWUP * first_loss:
                raise DivergenceError(
                    f"gd_svd diverged: the loss became {loss:.3g} at iteration {it} with optimizer="
                    f"{options.optimizer!r} and lr={_describe_lr(options, history.lr)}; pass a smaller lr"
                    + (f" (e.g. lr={history.lr / 10:.3g})" if math.isfinite(history.lr) else "")
                    + " or lr=None"
                )
            history.n_iter = it + 1
            if options.progress and (it % 10 == 0 or it == options.max_iter - 1):
                bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
            bar.update(1)
            if options.callback is not None and options.callback(it, loss):
                history.stop_reason = "callback"
                break
            if saved is not None and control.reject(previous, loss, problem.loss_floor):
                opt.restore(saved[0])  # undo the step that raised the loss; retry from there, shorter
                loss, grads, ev = saved[1]
            elif full_batch:
                if stop.full_batch(loss):
                    history.converged, history.stop_reason = True, "tol"
                    break
                previous = loss
                control.observe(loss)
            else:
                epoch_sum, epoch_count = epoch_sum + loss, epoch_count + 1
                if epoch_end:
                    mean = epoch_sum / epoch_count
                    if stop.epoch(mean):
                        history.converged, history.stop_reason = True, "tol"
                        break
                    epoch_sum, epoch_count = 0.0, 0
                    control.observe(mean)
            if any(g is None for g in grads):  # an evaluation that left a gradient out: needed now
                grads = model.gradients(ev)
            if control.mode == "backtrack":
                saved = (opt.snapshot(), (loss, grads, ev))
            lr = _step_size(model, options, ev, adam_lr)
            lr = [x * control.factor for x in lr] if isinstance(lr, list) else lr * control.factor
            if full_step_allowed and control.factor == 1.0 and model.full_step():
                lr = 1.0  # ScaledGD on one factor alone: the exact minimizer along the step (UV.full_step)
            history.lr = lr[0] if isinstance(lr, list) else lr
            if options.optimizer == "scaled":
                grads = model.scaled_directions(grads, ev)
            opt.step(grads, lr)
    finally:
        bar.close()
    history.loss = np.asarray(losses)
    history.time = np.asarray(times)
    return history


def _step_size(model, options, ev, adam_lr):
    if options.optimizer == "scaled":
        if options.lr is not None:
            return options.lr
        return SCALED_MASKED_LR if isinstance(model.problem, MaskedProblem) else SCALED_LR
    if options.lr is not None:
        return options.lr
    if options.optimizer == "adam":
        return list(adam_lr)
    return 1.0 / max(model.lipschitz(ev), 1e-300)


def _describe_lr(options, last):
    if options.lr is not None:
        return f"{options.lr:g}"
    return f"None (last step {last:.3g})" if math.isfinite(last) else "None"
