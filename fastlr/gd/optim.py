"""Optimizers for gd_svd: parameter state around the fused ``optimizer_step`` kernel, and the
learning-rate controller that makes ``lr=None`` converge without tuning."""

from __future__ import annotations

import math

import numpy as np

from .._matrix import STREAM_ENTRY_WORK, threads_for

__all__ = ["STATE_SIZES", "ElementwiseOptimizer", "LrController", "kernel_kind", "lr_mode"]

#: Update rules of the ``optimizer_step`` kernel and the state buffers each keeps (the kernels
#: hold their own copy of this table; tests/test_gd_kernels.py checks that the two agree).
STATE_SIZES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}


def kernel_kind(options) -> str:
    """The kernel's update rule for gd_svd's optimizer (ScaledGD and GD are plain steps)."""
    if options.optimizer in ("scaled", "gd", "sgd"):
        return "sgd"
    if options.optimizer == "momentum":
        return "nesterov" if options.nesterov else "momentum"
    return "adam"


def lr_mode(options, full_batch: bool) -> str:
    """The LrController mode: a given lr stays fixed; monotone full-batch methods backtrack."""
    if options.lr is not None:
        return "fixed"
    if full_batch and options.optimizer in ("scaled", "gd"):
        return "backtrack"
    return "plateau"


class ElementwiseOptimizer:
    """Keeps one state array per parameter and updates parameters in place with the kernel.

    Parameters
    ----------
    kind : {"sgd", "momentum", "nesterov", "adam"}
        The kernel's update rule.
    params : list of ndarray
        C-contiguous arrays, updated in place by :meth:`step`.
    kernels : module
        A backend from ``get_backend``.
    momentum, betas, eps : float
        Momentum coefficient (momentum/nesterov), Adam's (beta1, beta2) and epsilon.
    """

    def __init__(self, kind, params, kernels, *, momentum=0.9, betas=(0.9, 0.999), eps=1e-8):
        if kind not in STATE_SIZES:
            raise ValueError(f"kind: unknown optimizer {kind!r}; choose one of {', '.join(STATE_SIZES)}")
        self.kind = kind
        self.params = params
        self.kernels = kernels
        self.beta1 = momentum if kind in ("momentum", "nesterov") else betas[0]
        self.beta2 = betas[1]
        self.eps = eps
        self.t = 0
        n_state = STATE_SIZES[kind]
        self.state = [np.zeros((n_state,) + p.shape, dtype=p.dtype) for p in params]

    def step(self, grads, lr) -> None:
        """Apply one update with step size ``lr`` (a float, or one per parameter). Each update is a
        memory-bound pass over its parameter: on fastlr's threads only where ``threads_for`` (the rule of the
        passes over A) finds it long enough to gain from them."""
        self.t += 1
        lrs = lr if isinstance(lr, (list, tuple)) else [lr] * len(self.params)
        for p, g, s, lr_p in zip(self.params, grads, self.state, lrs):
            g = np.ascontiguousarray(g, dtype=p.dtype)
            with threads_for(STREAM_ENTRY_WORK * p.size):
                self.kernels.optimizer_step(p, g, s, self.kind, (float(lr_p), self.beta1, self.beta2, self.eps,
                                                                 self.t))

    def snapshot(self):
        """Copies of the parameters and state, for :meth:`restore`."""
        return [p.copy() for p in self.params], [s.copy() for s in self.state], self.t

    def restore(self, snap) -> None:
        params, state, t = snap
        for p, q in zip(self.params, params):
            p[...] = q
        for s, q in zip(self.state, state):
            s[...] = q
        self.t = t


class LrController:
    """Scales a base step size down when optimization stops making progress.

    ``mode="backtrack"`` (monotone methods, full batches): a step that raised the
    loss is undone and the step size halved; accepted steps let it regrow by 10%
    each, up to the base step. ``mode="plateau"`` (momentum, Adam,
    mini-batches): the step size is halved when the best loss has not improved
    for ``patience`` evaluations. ``mode="fixed"``: never changes
    (a user-given lr).
    """

    def __init__(self, mode: str, patience: int = 10):
        self.mode = mode
        self.patience = patience
        self.factor = 1.0
        self.best = math.inf
        self.since_best = 0

    def reject(self, previous_loss: float, loss: float, noise: float = 0.0) -> bool:
        """Whether the step that led to ``loss`` should be undone (and the step size halved).

        Increases up to ``noise`` (the rounding error of the loss) are accepted.
        """
        if self.mode != "backtrack":
            return False
        if not loss > previous_loss * (1 + 1e-9) + noise:
            self.factor = min(1.0, self.factor * 1.1)
            return False
        self.factor *= 0.5
        return True

    def observe(self, loss: float) -> None:
        """Record a loss (plateau mode: maybe halve the step size)."""
        if self.mode != "plateau":
            return
        if loss < self.best:
            self.best = loss
            self.since_best = 0
            return
        self.since_best += 1
        if self.since_best >= self.patience:
            self.factor *= 0.5
            self.since_best = 0
