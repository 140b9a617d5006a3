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

Validation on matrices like ``train`` cannot see a shift the training set does
not contain (text about new topics: the heavy rows of the new matrices are rows
that training barely used, whose values it pushed toward 0 as noise). Against
that, the **shift guard** (``shrink``, :func:`evidence_weights`,
:func:`pull_to_buckets`) pulls each column of S toward its bucket's typical
magnitude as far as the training matrices give little evidence for its value:
little energy in row i of A, or energy in only a few of the matrices. Rows used
alike by every training matrix (pixels of video frames, bands of spectral
images) count as fully seen, so the guard leaves such data alone.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "DEFAULT_HOLDOUT",
    "DEFAULT_PATIENCE",
    "DEFAULT_SHRINK",
    "FROZEN",
    "IMPROVEMENT",
    "JUDGES",
    "SPORADIC",
    "TIE",
    "TIE32",
    "TIE32_ABS",
    "TIE_ABS",
    "Checkpoint",
    "LearnedSketchWarning",
    "Validation",
    "check_holdout",
    "check_max_time",
    "check_shrink",
    "evidence_weights",
    "frozen_columns",
    "holdout_split",
    "pull_to_buckets",
    "row_consistency",
    "rounding_ties",
    "spread",
    "tie_width",
]

DEFAULT_HOLDOUT = 0.2
DEFAULT_PATIENCE = 5
#: Below this energy-weighted mean consistency of the rows (see :func:`row_consistency`), the training
#: matrices use different rows (text: 0.46-0.53; video, spectral images, low-rank: >= 0.97), and
#: learn_sketch does not start from data-driven positions or values fitted to those rows.
SPORADIC = 0.8
#: On such training matrices, the columns of a mixed sketch's learned half whose evidence weight
#: (:func:`evidence_weights`, shrink 2) is below this are not trained: they keep a positive start (see
#: :func:`frozen_columns`). Text: ~92% of the columns, 10-12% of the energy; video / spectral images: none.
FROZEN = 0.5
#: Default ``shrink`` of learn_sketch (the shift guard's strength); bench/README.md, sixth session.
DEFAULT_SHRINK = 2.0
#: An evaluation counts as an improvement when it lowers the best validation Err by more than this
#: fraction of it (smaller changes are rounding and noise).
IMPROVEMENT = 1e-3
#: SCW errors closer than this (relative) are tied: rounding, not a gain. Where every sketch is exact (m at least the
#: matrices' column count) all errors agree to ~1e-16, and which side of a comparison they land on changed with the
#: BLAS kernel (a Zen 2 with OpenBLAS's Haswell kernel kept positions a Zen 4 had refused).
TIE = 1e-9
#: ... and closer than this (absolute, the matrices scaled to sigma_1 = 1): exactly low-rank matrices (rank <= k)
#: have errors of rounding size, ~1e-15, which a relative tie does not cover.
TIE_ABS = 1e-12
#: The same for float32 matrices, whose SCW runs in float32: exact sketches' errors spread by up to 4e-5 of the
#: error (3000 x 16, m = 16) and by 4e-8 absolute at rank <= k (80 x 30) (bench/README.md, fourteenth session, H3).
TIE32, TIE32_ABS = 1e-4, 1e-6
#: At most this many training matrices (:func:`spread` over them) judge a sketch against ``CountSketch(m, n, seed)``
#: where the guards compare on training matrices (and rank inner_product_sketch's trials).
JUDGES = 8


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


def rounding_ties(dtypes) -> tuple[float, float]:
    """(relative, absolute) tie of SCW errors on matrices of these dtypes: float32's when any is float32."""
    if any(np.finfo(dt).eps > np.finfo(np.float64).eps for dt in dtypes):
        return TIE32, TIE32_ABS
    return TIE, TIE_ABS


def spread(count: int, most: int = JUDGES) -> np.ndarray:
    """Indices of up to ``most`` of ``count`` training matrices, evenly spread over them (the first few of a
    time-ordered set are the ones furthest from what comes next)."""
    return np.unique(np.linspace(0, count - 1, min(most, count)).round().astype(int))


def tie_width(ties: tuple[float, float], scale: float) -> float:
    """How close two errors near ``scale`` may be and still count as equal (rounding): ``ties`` (relative,
    absolute; :func:`rounding_ties`) applied to that scale."""
    return ties[0] * abs(scale) + ties[1]


class Checkpoint:
    """The best values seen at evaluations, and the patience rule.

    ``update(step, err, values)`` after every evaluation; returns True when
    training should stop (``patience`` evaluations in a row without an
    improvement; ``patience=None``: never).

    ``ties`` (relative, absolute; :func:`rounding_ties`) and ``optimal`` (the validation matrices' mean optimal
    error, which Err is in excess of): an Err within the tie of the random start's (step 0) does not beat it. Where
    every sketch is exact (m at least the column count) all Errs are rounding, ~1e-16, and without the tie that
    rounding decided whether the learned values "beat" the random start (15 of 20 seeds of 200 x 8 matrices,
    m = 10, on a Zen 2). Later steps are compared with the best without it: float32's tie (1e-4 of the error)
    can be a few % of a small Err, and would stop training early.
    """

    def __init__(self, patience: int | None, ties: tuple[float, float] = (0.0, 0.0), optimal: float = 0.0):
        self.patience = patience
        self.ties, self.optimal = ties, optimal
        self.best_err = math.inf
        self.best_step = -1
        self.best_values = None
        self.random_err = math.nan
        self.stale = 0

    def tie(self) -> float:
        """Errs closer than this to the best are no better (rounding)."""
        return tie_width(self.ties, self.best_err + self.optimal)

    def update(self, step: int, err: float, values: np.ndarray) -> bool:
        err = float(err)
        if step == 0:
            self.random_err = err
        if not math.isfinite(err):
            return False
        # beating the random start (step 0) takes more than a rounding tie; later steps only more than nothing
        tie = self.tie() if self.best_step == 0 else 0.0
        if self.best_values is None or err < self.best_err - max(IMPROVEMENT * abs(self.best_err), tie):
            self.best_err, self.best_step, self.best_values, self.stale = err, step, values.copy(), 0
            return False
        if err < self.best_err - tie:  # better but not by much: keep it without resetting the patience
            self.best_err, self.best_step, self.best_values = err, step, values.copy()
        self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    @property
    def fallback(self) -> bool:
        """No evaluated step beat the random start."""
        return self.best_step <= 0


def evidence_weights(energy: np.ndarray, shrink: float) -> np.ndarray:
    """How far training may move each column of S: ``w_i = u_i / (u_i + shrink (1 - c_i))`` in [0, 1].

    ``energy[t, i]`` is ``||A_t[i, :]||^2`` of training matrix t (scaled to sigma_1 = 1); ``u_i``
    is row i's mean energy relative to the mean row, and ``c_i = mean_t(e_ti)^2 / mean_t(e_ti^2)``
    in [0, 1] the fraction of the matrices that effectively use row i (1: the same energy in all;
    1/N: one matrix of N). A row with consistent energy (``c_i = 1``) is fully seen, whatever
    its size; a rare or sporadic row (a word of a few topics) keeps little of what training did.
    """
    energy = np.asarray(energy, dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    usage = energy.mean(axis=0)
    usage = usage / max(float(usage.mean()), tiny)
    return usage / np.maximum(usage + shrink * (1.0 - _consistency(energy)), tiny)


def frozen_columns(weights: np.ndarray) -> np.ndarray:
    """Columns of S that training leaves at their start on sporadic data (``weights < FROZEN``).

    On matrices that use different rows (text: each matrix a few topics, each topic its own words),
    the rows training sees rarely are the ones a new matrix may use heavily (words of new topics).
    Nothing in the training matrices says what their values should be, so they are not learned:
    they stay at a positive start, where a bucket's words of any one new topic add up (on count data
    they are positively correlated) instead of partly cancelling as under random signs; only the
    well-seen rows (frequent words, used alike by every matrix) are trained. learn_sketch does this
    for a mixed sketch's learned half (bench/README.md, seventh session: topic-shifted text,
    mixed="joint", 0.73 -> 0.68 of random's Err over 8 seeds, worst 0.94 -> 0.78).
    """
    return np.asarray(weights) < FROZEN


def pull_to_buckets(values: np.ndarray, rows: np.ndarray, start: np.ndarray, weights: np.ndarray,
                    m: int) -> np.ndarray:
    """Each value's magnitude pulled toward the RMS of the values in its bucket (row ``rows[i]`` of S):
    ``sign(v_i) (r + w_i (|v_i| - r))``, the sign of ``start_i`` where ``v_i = 0``.

    Err does not change when a whole row of S is scaled, but does when one column is scaled against
    the others in its row: the bucket's RMS is the typical learned magnitude there, so a column that
    training knows little about counts like an average one, neither dropped (a value trained toward
    0 as noise) nor blown up. A +-1 start is left as it is."""
    count = np.maximum(np.bincount(rows, minlength=m), 1)
    rms = np.sqrt(np.bincount(rows, values * values, minlength=m) / count)[rows]
    sign = np.where(values > 0, 1.0, np.where(values < 0, -1.0, np.where(start < 0, -1.0, 1.0)))
    return sign * (rms + weights * (np.abs(values) - rms))


def _consistency(energy: np.ndarray) -> np.ndarray:
    """Per row i: ``mean_t(e_ti)^2 / mean_t(e_ti^2)`` in [0, 1], 0 for a row without energy."""
    tiny = np.finfo(np.float64).tiny
    return np.clip(energy.mean(axis=0) ** 2 / np.maximum((energy**2).mean(axis=0), tiny), 0.0, 1.0)


def row_consistency(mats: list) -> float:
    """How alike the training matrices use the rows of A: the mean of the rows' consistency
    (:func:`evidence_weights`), weighted by their energy, each matrix scaled to unit Frobenius norm.
    1 when every matrix spreads its energy over the rows alike (frames of one video)."""
    energy = []
    for A in mats:
        e = np.asarray(A.multiply(A).sum(axis=1), dtype=np.float64).ravel() if sp.issparse(A) else \
            np.einsum("ij,ij->i", A, A, dtype=np.float64)
        energy.append(e / max(float(e.sum()), np.finfo(np.float64).tiny))
    energy = np.array(energy)
    usage = energy.mean(axis=0)
    return float(np.sum(usage * _consistency(energy)) / max(float(usage.sum()), np.finfo(np.float64).tiny))
