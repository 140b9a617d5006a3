"""``fastlr demo``: learned sketches against random ones on built-in generated data.

For each data family of Indyk, Vakilian and Yuan (NeurIPS 2019) - video,
hyperspectral, text - the demo generates training and held-out matrices
(``fastlr.datasets``, no network), trains a learned CountSketch and the two
mixed sketches, and prints the paper's Err on the held-out matrices in the
shape of its Table 1, beside a random CountSketch, a dense Gaussian sketch and
the optimal error, with timings.
"""

from __future__ import annotations

import copy
import os
import sys
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from . import datadriven, datasets
from ._cli_io import atomic_output
from ._sample_matrices import one_thread_if_small, sample_matrices
from ._threads import get_num_threads
from .evaluation import Evaluator
from .heavy_rows import HeavyRowSketch
from .learn import LearnedSketchWarning, learn_sketch
from .scw import scw
from .sketch import CountSketch, GaussianSketch

__all__ = ["run", "METHODS"]

#: Rows of the table, in the paper's order (its "CS", "Dense" and "Learned" rows).
METHODS = ("Random CountSketch", "Dense Gaussian", "Learned", "Mixed (J)", "Mixed (S)", "Learned positions",
           "Subspace (dense)", "Learned, no heavy rows")
M_ROWS, RANK = 20, 10


@dataclass
class Family:
    name: str
    make: object  # seed -> list of matrices
    n_train: int
    steps: int


def _families(quick: bool) -> list[Family]:
    if quick:
        return [
            Family("video", lambda: datasets.video(40, height=60, width=200, seed=1), 30, 300),
            Family("hyperspectral", lambda: datasets.hyperspectral(40, height=192, width=64, bands=4, seed=1),
                   30, 300),
            Family("text", lambda: datasets.text(32, n_terms=1500, n_docs=60, seed=1), 24, 300),
        ]
    return [
        Family("video", lambda: datasets.video(80, height=120, width=320, seed=1), 60, 1500),
        Family("hyperspectral", lambda: datasets.hyperspectral(64, height=256, width=96, bands=8, seed=1), 48, 1500),
        Family("text", lambda: datasets.text(48, n_terms=2000, n_docs=100, seed=1), 36, 1500),
    ]


@dataclass
class FamilyResult:
    name: str
    shape: tuple
    n_train: int
    n_test: int
    err: dict = field(default_factory=dict)  # method -> Err on the held-out matrices
    optimal: float = 0.0  # mean ||A - A_k||_F (sigma_1 = 1)
    train_seconds: dict = field(default_factory=dict)
    scw_ms: dict = field(default_factory=dict)  # sketch + SCW per matrix
    history: dict = field(default_factory=dict)


def _scw_ms(S, matrices) -> float:
    """Milliseconds per matrix for ``fastlr.scw(A, S, k)`` (sketch plus SVDs), best of 3."""

    def once():
        for A in matrices:
            scw(A, S, RANK)

    once()  # warm-up: first calls pay for caches and lazy set-up
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(matrices)


def _run_family(fam: Family, quiet: bool, log) -> FamilyResult:
    # Bars redraw one line with carriage returns: on a terminal only (a log file would get one
    # line per bar, thousands of updates long); the log lines and the table go everywhere.
    bars = not quiet and _is_terminal(sys.stderr)
    data = fam.make()
    train, test = data[: fam.n_train], data[fam.n_train :]
    n = data[0].shape[0]
    res = FamilyResult(fam.name, data[0].shape, len(train), len(test))
    log(f"{fam.name}: {len(train)} training and {len(test)} held-out matrices of shape "
        f"{data[0].shape[0]} x {data[0].shape[1]}{' (sparse)' if hasattr(data[0], 'tocsr') else ''}")
    sketches = {"Random CountSketch": CountSketch(M_ROWS, n, seed=0), "Dense Gaussian": GaussianSketch(M_ROWS, n, seed=0)}
    learned = (("Learned", None, None), ("Mixed (J)", "joint", None), ("Mixed (S)", "separate", None),
               ("Learned positions", None, "inner_product"))  # positions from the data (ICLR 2023), values learned
    for method, mixed, init in learned:
        start = time.perf_counter()
        with warnings.catch_warnings():  # a fallback is reported in the log below, not as a warning
            warnings.simplefilter("ignore", LearnedSketchWarning)
            S = learn_sketch(train, M_ROWS, RANK, steps=fam.steps, mixed=mixed, init=init,
                             eval_every=max(1, fam.steps // 10), progress=bars and f"{fam.name}: {method}")
        if S.fallback:
            log(f"{fam.name}: {method}: did not beat its start on validation; the random start is used")
        res.train_seconds[method] = time.perf_counter() - start
        res.history[method] = S.history
        sketches[method] = S
    start = time.perf_counter()
    with warnings.catch_warnings():  # a fallback is reported in the log below, not as a warning
        warnings.simplefilter("ignore", LearnedSketchWarning)
        S = datadriven.subspace_sketch(train, M_ROWS)  # no training: an SVD of the data
    if isinstance(S, (CountSketch, HeavyRowSketch)):  # text-like data: subspace_sketch's fallback (see its docs)
        log(f"{fam.name}: Subspace (dense): the data use few of their rows; the random CountSketch is used"
            + (", its heaviest rows in buckets of their own (heavy_rows='auto')" if isinstance(S, HeavyRowSketch)
               else ""))
    sketches["Subspace (dense)"] = S
    res.train_seconds["Subspace (dense)"] = time.perf_counter() - start
    # learn_sketch gives text-like data's heaviest rows buckets of their own at apply time (heavy_rows="auto"); this
    # row is the learned sketch without that rule (its base: the same training), i.e. heavy_rows=False. Frames
    # and bands: the learned sketch itself
    learned = sketches["Learned"]
    if isinstance(learned, HeavyRowSketch):  # the base, guarded by the same random sketch as heavy_rows=False's result
        base = copy.copy(learned.base)
        base.reference = learned.reference
        learned = base
    sketches["Learned, no heavy rows"] = learned
    test_ops = sample_matrices(test, "test")
    with ExitStack() as stack:
        one_thread_if_small(test_ops, stack)  # as learn_sketch does
        evaluator = Evaluator(test_ops, RANK)  # optimal errors computed once for all sketches
        res.optimal = evaluator.optimal
        for method in METHODS:
            res.err[method] = evaluator.error(sketches[method], guard=True)  # as scw gives it (and _scw_ms times)
            res.scw_ms[method] = _scw_ms(sketches[method], test)
    return res


def _table(results: list[FamilyResult]) -> str:
    names = [r.name for r in results]
    width = max(14, *(len(n) + 2 for n in names))
    head = f"{'sketch (m = %d, k = %d)' % (M_ROWS, RANK):28}" + "".join(f"{n:>{width}}" for n in names)
    lines = ["Err on held-out matrices: mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F, each A scaled to sigma_1 = 1",
             "(0 = optimal; lower is better)", "", head, "-" * len(head)]
    for method in METHODS:
        lines.append(f"{method:28}" + "".join(f"{r.err[method]:>{width}.4f}" for r in results))
    lines.append(f"{'optimal error ||A - A_k||_F':28}" + "".join(f"{r.optimal:>{width}.4f}" for r in results))
    lines.append(f"{'learned / random Err':28}"
                 + "".join(f"{r.err['Learned'] / r.err['Random CountSketch']:>{width}.3f}" for r in results))
    lines += ["", "time: training seconds (all steps) | sketch + SCW per matrix (ms)", head, "-" * len(head)]
    for method in METHODS:
        cells = []
        for r in results:
            train = f"{r.train_seconds[method]:.1f}s | " if method in r.train_seconds else ""
            cells.append(f"{train}{r.scw_ms[method]:.2f}")
        lines.append(f"{method:28}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


def _plot(path, results: list[FamilyResult]) -> None:
    plt = _pyplot()
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, r in zip(colors, results):
        for method, style in (("Learned", "-"), ("Mixed (J)", "--"), ("Mixed (S)", ":")):
            h = r.history[method]
            ok = ~np.isnan(h["val_err"])
            curves.plot(h["step"][ok], h["val_err"][ok], style, color=color, label=f"{r.name} {method}")
    curves.set(xlabel="training step", ylabel="held-out Err", yscale="log", title="training")
    curves.legend(fontsize="small")
    x = np.arange(len(results))
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        bars.bar(x + (i - (len(METHODS) - 1) / 2) * width, [r.err[method] for r in results], width, label=method)
    bars.set_xticks(x, [r.name for r in results])
    bars.set(ylabel="held-out Err", yscale="log", title=f"Err by sketch (m = {M_ROWS}, k = {RANK})")
    bars.legend(fontsize="small")
    fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    try:
        with atomic_output(path) as f:  # an interrupted save leaves no half-written plot
            fig.savefig(f, format=fmt)
    finally:
        plt.close(fig)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def run(*, quick: bool = False, plot=None, quiet: bool = False, out=None) -> list[FamilyResult]:
    """Run the demo: train, evaluate, print the table (and save the plot).

    Parameters
    ----------
    quick : bool
        Smaller data and fewer steps (under 30 s on 2 cores instead of under 3 min).
    plot : str or path, optional
        Save the training curves and the comparison there (needs matplotlib).
    quiet : bool
        No progress bars or progress lines; the table is still printed. Progress
        bars are drawn only when stderr is a terminal.
    out : file, optional
        Where to print (default sys.stdout).

    Returns
    -------
    list of FamilyResult
    """
    out = sys.stdout if out is None else out
    if plot is not None:  # fail before the work, not after it
        _pyplot()
        folder = os.path.dirname(os.path.abspath(os.fspath(plot)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--plot: the folder {folder} does not exist")

    def log(line):
        if not quiet:
            print(line, file=out, flush=True)

    start = time.perf_counter()
    log(f"fastlr demo: learning {M_ROWS} x n CountSketches for rank-{RANK} approximation "
        f"({'quick' if quick else 'full'} run, {get_num_threads()} thread(s))")
    results = [_run_family(fam, quiet, log) for fam in _families(quick)]
    print(_table(results), file=out)
    print(f"\ntotal {time.perf_counter() - start:.1f} s", file=out)
    if plot is not None:
        _plot(plot, results)
        print(f"plot saved to {plot}", file=out)
    return results
