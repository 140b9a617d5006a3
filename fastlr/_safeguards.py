"""What keeps a learned sketch from being worse than the random one it started from.

``learn_sketch`` (issue 15, "never worse than random") validates while it trains:

* **hold-out** (:func:`holdout_split`): without ``val``, the *last* ``holdout``
  fraction of the training matrices (in the order given; at least one, none if
  there is only one matrix) is held out and not trained on. The last ones, so
  that a time-ordered training set (video frames) validates forward in time;
* **best checkpoint** (:class:`Checkpoint`): the values at the evaluation with
  the lowest validation Err are kept, not the last ones;
* **early stopping**: training stops after ``patience`` evaluations in a row
  that did not lower the best validation Err by more than a relative
  ``IMPROVEMENT``;
* **fallback**: when no evaluated step beats the random start (step 0: the
  +-1 CountSketch with the same positions; for a mixed sketch the same stack
  with the learned half at +-1), the random start is returned and a
  :class:`LearnedSketchWarning` says so.

The outcome is ``LearnedSketch.validation`` (a :class:`Validation`) and
``LearnedSketch.fallback``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "DEFAULT_HOLDOUT",
    "DEFAULT_PATIENCE",
    "IMPROVEMENT",
    "Checkpoint",
    "LearnedSketchWarning",
    "Validation",
    "check_holdout",
    "check_max_time",
    "check_shrink",
    "holdout_split",
]

DEFAULT_HOLDOUT = 0.2
DEFAULT_PATIENCE = 5
#: An evaluation counts as an improvement when it lowers the best validation Err by more than this
#: fraction of it (smaller changes are rounding and noise).
IMPROVEMENT = 1e-3


class LearnedSketchWarning(UserWarning):
    """A learned sketch did not beat its random start on validation and was replaced by it."""


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def check_holdout(holdout) -> float:
    """``holdout`` as a float in [0, 1)."""
    if not _is_real(holdout) or not math.isfinite(holdout) or not 0 <= holdout < 1:
        raise ValueError(f"holdout: must be a fraction in [0, 1) of the training matrices, got {holdout!r}")
    return float(holdout)


def check_max_time(max_time) -> float | None:
    """``max_time`` (seconds) as a positive finite float, or None."""
    if max_time is None:
        return None
    if not _is_real(max_time) or not math.isfinite(max_time) or max_time <= 0:
        raise ValueError(f"max_time: must be a finite number of seconds > 0, got {max_time!r}")
    return float(max_time)


def check_shrink(shrink) -> float:
    """``shrink`` as a finite float >= 0."""
    if not _is_real(shrink) or not math.isfinite(shrink) or shrink < 0:
        raise ValueError(f"shrink: must be a finite number >= 0, got {shrink!r}")
    return float(shrink)


def holdout_split(count: int, holdout: float) -> int:
    """How many of ``count`` training matrices to train on; the rest (the last ones) validate.

    ``round(holdout * count)`` matrices are held out, at least one when ``holdout > 0``,
    and none when ``count == 1`` (one matrix cannot be both trained on and held out).
    """
    if holdout == 0 or count < 2:
        return count
    return count - min(count - 1, max(1, round(holdout * count)))


@dataclass
class Validation:
    """How a learned sketch was validated (``LearnedSketch.validation``).

    Attributes
    ----------
    source : {"val", "holdout"}
        The matrices passed as ``val``, or the last ones of ``train`` held out.
    matrices : int
        How many validation matrices.
    random_err : float
        Validation Err of the random start (step 0).
    best_err : float
        Validation Err of the returned sketch.
    best_step : int
        The step whose values were returned (0: the random start).
    last_step : int
        The last step trained.
    stopped : {"steps", "patience", "max_time", "callback"}
        Why training ended.
    fallback : bool
        True when no step beat the random start, which was returned.
    refit : bool
        True when the returned values were trained again, on every training
        matrix (held-out ones included), for ``best_step`` steps.
    """

    source: str
    matrices: int
    random_err: float
    best_err: float
    best_step: int
    last_step: int
    stopped: str
    fallback: bool
    refit: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class Checkpoint:
    """The best values seen at evaluations, and the patience rule.

    ``update(step, err, values)`` after every evaluation; returns True when
    training should stop (``patience`` evaluations in a row without an
    improvement; ``patience=None``: never).
    """

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_err = math.inf
        self.best_step = -1
        self.best_values = None
        self.random_err = math.nan
        self.stale = 0

    def update(self, step: int, err: float, values: np.ndarray) -> bool:
        err = float(err)
        if step == 0:
            self.random_err = err
        if not math.isfinite(err):
            return False
        if err < self.best_err * (1 - IMPROVEMENT) or self.best_values is None:
            self.best_err, self.best_step, self.best_values, self.stale = err, step, values.copy(), 0
            return False
        if err < self.best_err:  # better but not by much: keep it without resetting the patience
            self.best_err, self.best_step, self.best_values = err, step, values.copy()
        self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    @property
    def fallback(self) -> bool:
        """No evaluated step beat the random start."""
        return self.best_step <= 0
