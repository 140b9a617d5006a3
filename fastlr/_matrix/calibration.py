"""The dense product choice measured on this machine: a short calibration at first use.

``choice.KERNEL_COLUMNS`` holds column thresholds (kernel below, BLAS from there on) measured on
one machine. Here the same question is asked of this one: for each memory order (C, F), kind
("pass": ``A @ V`` plus ``A.T @ W``; "gram": ``A.T @ (A @ V)``) and dtype, the one-pass kernel
and the BLAS calls ``InMemory`` would run instead are timed on a 1040 x 1080 A, one thread each,
interleaved, on a few factor widths around the table's threshold. A width counts only when every
round agrees on the faster path and the best times differ by ``MARGIN`` (8%); anything between keeps
the table's choice. The threshold moves up past the widths where the kernel won and down to the
narrowest width where it lost, never further, so a noisy or failed measurement leaves the table's
entry; "gram" thresholds never move down (on this cache-resident A, BLAS's second pass is nearly
free, which it is not on the large matrices the table was measured on); the "pass" widths below the
table's threshold are timed on an A of twice L3 (``tall_rows``, at most 64 MiB), for the same reason. About
0.2-1.5 s for one ISA level (the level the kernels run at, ``_core._cap_isa`` included; another level is measured
when first used).

Three route decisions are measured too (``DECISIONS``, ``decision_probes``), each one composite probe timed the same
way: "vector" (one-column products on one thread: fastlr's column passes or BLAS's GEMVs, ``choice.vector_product``),
"narrow" (randomized_svd's Krylov finder in fastlr's tile-wide blocks or its other route, ``_krylov.krylov_block``)
and "one_stream" (the column passes on large A with narrow rows one row at a time or in blocks of rows). A decision
holds where ``verdict`` is decisive; else, and wherever nothing was measured, the rule at that level
(``choice.VECTOR_LEVELS``, ``choice.NARROW_LEVELS``, ``choice.ONE_STREAM_LEVELS``; ``choice.decided``). About 0.1 s
for the first two at x86-64-v4 and v3, 0.2 s at baseline; "one_stream" about 0.1 s (none at baseline) (Zen 4).

The results are kept in a JSON file per machine in the user's cache directory (platformdirs),
keyed by CPU model, ISA level, fastlr version and build, and NumPy's BLAS (name, version and core
type: ``OPENBLAS_CORETYPE`` changes its kernels). A different key measures again; a cache that
cannot be written keeps the results in memory (one warning). Each new file prunes the directory to
the ``KEEP_FILES`` most recently written or read (every rebuild or upgrade of fastlr is a new key, so the
files would otherwise pile up).

Environment:

* ``FASTLR_CALIBRATION``: ``auto`` (default: load the cache, measure at first use when missing) or
  ``off`` (the static table).
* ``FASTLR_CACHE_DIR``: the cache directory (default ``platformdirs.user_cache_dir("fastlr")``).

Why about 1000 x 1000 (Zen 4, 1 MB L2, 32 MB L3; 1024 x 1024 until the fourteenth session, see
``SHAPE``): the crossover moves with A's column count d more than with its rows (V, d x l, stops
fitting in L2): at x86-64-v3, float64, ``A @ V`` + ``A.T @ W`` with 128 columns, BLAS time over
kernel time was 0.85-0.92 for d = 1024-1080 (n = 2048-8192) and 1.09-1.27 for d = 500-512
(n = 2048-100000), so d is the table's larger one. Fewer rows only err
towards BLAS: ``A.T (A V)`` float64 at x86-64-v4, 128 columns, 0.98 at n = 1024 against 1.08-1.10
at n = 2048-8192; and at narrow factors a cache-resident A gives BLAS's second pass for free
(x86-64-v3 float32, 32 columns: 1.0 on 2048 x 512 against 1.5-1.6 on 5760 x 1080).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import threading
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from threadpoolctl import threadpool_info

from .._backend import get_backend
from .._caches import read_cache_sizes
from .._linalg import blas_limit, blas_times
from .._threads import thread_limit

try:
    import platformdirs
except ImportError:  # a declared dependency; without it the results stay in memory
    platformdirs = None

__all__ = ["CELLS", "DECISIONS", "MODES", "Table", "best_times", "cache_dir", "calibrate", "cpu_model", "decide",
           "decision_probes", "machine_key", "measure", "measure_layouts", "mode", "swapped_wins", "reset", "scan",
           "table", "tall_rows", "verdict"]

MODES = ("auto", "off")
#: The ISA levels of the compiled kernels, in ``_core._cap_isa``'s order.
LEVELS = ("baseline", "x86-64-v3", "x86-64-v4")
#: (order, kind, dtype) of every threshold.
CELLS = tuple((o, k, t) for o in ("C", "F") for k in ("pass", "gram") for t in ("float32", "float64"))
#: A's shape in the calibration, and the factor widths it may time.
#: Neither side a power of two: rows 4 KiB apart alias in L1 (the kernels skip their prefetch there,
#: products_dense.hpp), and 1024 x 1024 float32 had BLAS win 1.3-2x at 8-48 columns on a Zen 2
#: where the kernel wins 1.2-1.5x on 5760 x 1080 (bench/README.md, fourteenth session, H1).
SHAPE = (1040, 1080)
WIDTHS = (8, 16, 32, 48, 64, 96, 128, 192)
ROUNDS = 3
#: The threshold moves only where one path is faster in every round and this much faster in the best
#: times, either way.
MARGIN = 0.08
#: Bump when the method changes: older cache files are then measured again.
#: 7: widths below the table's threshold timed on A past L3 (``tall_rows``).
#: 8: float64 BLAS layout per width mod 8 (``measure_layouts``).
#: 9: the route decisions (``DECISIONS``); 10: "one_stream"; 11: the AVX-512 tiles prefetch short rows of large A
#: (``avx512_prefetch_rows_below``; faster kernels there: the kernel-or-BLAS thresholds measured again).
METHOD = 11
#: Float64 ``A.T @ W`` by BLAS (C-order A; F-order A's ``A @ V`` is the same call): NumPy's layout or the swapped
#: ``(W.T @ A).T`` (``_linalg.blas_times``), per factor width mod ``LAYOUT_PERIOD``. OpenBLAS's kernels step by
#: 4 and 8 columns (Haswell's dgemm: 4 x 8 tiles): on a Zen 2 the swapped layout won 1.02-1.36x at widths 0 and
#: 1 mod 8, lost 0.90-0.98x at 6 and 7 and tied or drifted (0.97-1.12x) at 2-5 (5760 x 1080, 1080 x 5760; 2880 x
#: 540 the same); on a Zen 4 it won 1.09x (Haswell) and 1.44x (SkylakeX) at 60 (bench/README.md, eighteenth
#: session, HL). Residue r is timed at ``LAYOUT_WIDTHS[0] + r``, and where the swapped layout won there, at
#: ``LAYOUT_WIDTHS[1] + r``: swapped only where it won both (``swapped_wins``), NumPy's
#: layout (the call the product replaces) otherwise. On A of ``LAYOUT_SHAPE``: a 1040 x 1080 A (within L3, fewer
#: rows to sum over) had the swapped layout lose 0.82-0.96x where 5760 x 1080 won.
LAYOUT_PERIOD = 8
LAYOUT_WIDTHS = (48, 56)
LAYOUT_MARGIN = 0.03
LAYOUT_SHAPE = (2880, 540)
#: The route decisions measured besides the thresholds (``decision_probes``): name -> what "K" (fastlr's route
#: faster) picks.
DECISIONS = {"vector": "fastlr's column passes for one-column products on one thread",
             "narrow": "randomized_svd's Krylov finder in tile-wide blocks on fastlr's fused kernel",
             "one_stream": "the column passes read large A with narrow rows one row at a time"}
#: The "one_stream" probe's A: (rows, columns) per dtype, 24 MB each (past kOneStreamBytes, 16 MiB; read in turns,
#: each evicts most of the other from a 32 MiB L3), 800- and 1600-byte rows.
ONE_STREAM_SHAPES = {"float32": (30_000, 200), "float64": (15_000, 200)}
#: The "narrow" probe's cases: randomized_svd's Krylov route on dense 5760 x 1080 at n_iter = 7
#: (``_krylov.krylov_block``; tests/test_calibration.py holds them to it): (dtype, l, fused passes of ``NARROW_BLOCK``
#: columns, the other route's passes of l columns, None for the Gram route: A^T A by SYRK). k = 10 (l = 20):
#: 16-column blocks one deeper, 5 passes against 4 of 20; float32 k = 50 (l = 60): 9 passes of 16 against the Gram
#: route. Each route ends with one ``A @ V`` (the Rayleigh-Ritz step; the Gram route's last step). Costs that do not
#: grow with A's rows (orthogonalization, the Gram route's d x d products, the Rayleigh-Ritz SVD) are left out of both.
NARROW_CASES = (("float32", 20, 5, 4), ("float64", 20, 5, 4), ("float32", 60, 9, None))
NARROW_BLOCK = 16
#: At most this many bytes of A below the table's thresholds (``tall_rows``).
TALL_BYTES = 64 << 20
#: Calibration files kept in the cache directory (one per machine key: CPU, ISA level, fastlr build, BLAS).
KEEP_FILES = 16
_PREFIX = "product-choice-"

_lock = threading.RLock()
_tables: dict[tuple, Table] = {}
#: Bumped whenever ``_tables`` changes: ``choice.route_key``'s token for "the same tables as before".
generation = 0
_warned = False


def mode() -> str:
    """``FASTLR_CALIBRATION`` ("auto" when unset or empty).

    Raises
    ------
    ValueError
        When the variable holds anything other than auto or off.
    """
    value = os.environ.get("FASTLR_CALIBRATION", "").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"FASTLR_CALIBRATION: unknown value {value!r}; choose one of {', '.join(MODES)}")
    return value


def cache_dir() -> str | None:
    """``FASTLR_CACHE_DIR``, else the user's cache directory for fastlr (None without platformdirs)."""
    path = os.environ.get("FASTLR_CACHE_DIR", "").strip()
    if path:
        return os.path.abspath(os.path.expanduser(path))
    return platformdirs.user_cache_dir("fastlr", appauthor=False) if platformdirs else None


def cpu_model() -> str:
    """The CPU's model name, family and model (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict((k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in f if ":" in line))
        return f"{info['model name']} (family {info['cpu family']} model {info['model']})"
    except (OSError, KeyError, ValueError):
        return f"{platform.machine()} {platform.processor()}".strip()


def _blas() -> list[str]:
    """NumPy's BLAS: name, version and core type (OpenBLAS's architecture)."""
    libs = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    numpys = [p for p in libs if "numpy" in os.path.basename(os.path.dirname(p.get("filepath") or ""))]
    return sorted({f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}" for p in numpys or libs})


def _build(core) -> str:
    """The compiled core's identity: a rebuild measures again even where the version stays."""
    try:
        st = os.stat(core.__file__)
        return f"{st.st_size}-{st.st_mtime_ns}"
    except (AttributeError, OSError):
        return "?"


def machine_key(level: str, core=None) -> dict:
    """What the thresholds depend on: the cache holds one file per key."""
    try:
        fastlr_version = version("fastlr")
    except PackageNotFoundError:  # a source tree never installed
        fastlr_version = "0+unknown"
    return {"cpu": cpu_model(), "level": level, "fastlr": fastlr_version, "build": _build(core) if core else "?",
            "blas": _blas(), "method": METHOD}


def _cache_file(directory: str, key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(directory, f"{_PREFIX}{digest}.json")


def verdict(rounds) -> str:
    """"K" (the kernel faster), "B" (BLAS faster) or "?" from the rounds' ``(kernel time, BLAS time)``:
    faster in every round, and by MARGIN in the best times (another process's load only adds time)."""
    if not rounds:
        return "?"
    kernel, blas = best_times(rounds)
    if all(b > k for k, b in rounds) and blas >= (1 + MARGIN) * kernel:
        return "K"
    if all(k > b for k, b in rounds) and kernel >= (1 + MARGIN) * blas:
        return "B"
    return "?"


def best_times(rounds) -> tuple[float, float]:
    """The kernel's and BLAS's best times over the rounds' ``(kernel time, BLAS time)``."""
    kernel, blas = (min(t) for t in zip(*rounds))
    return kernel, blas


def scan(static: int, probe, widths=WIDTHS, lower: bool = True, lower_probe=None) -> tuple[int, dict]:
    """The threshold from measurements: ``probe(width)`` gives the rounds' (kernel, BLAS) times
    (``lower_probe``, when given, below the table's threshold: ``measure``'s A past L3).

    Up from the table's threshold ``static`` while the kernel wins; if it did not win there and
    ``lower``, down while BLAS wins. The result is ``static`` moved only as far as those verdicts
    force: above every width where the kernel won, at or below the narrowest where BLAS won, below ``static``
    only where BLAS also won at the next wider width (one width can be a tile size the kernel
    handles badly: x86-64-v4, float64, F-order ``A.T (A V)`` on the Haswell BLAS lost 1.11x at 48
    columns of 1024 x 1024 and won 1.08-1.17x at 60 on 5760 x 1080 and 100000 x 500). Returns it
    and ``{width: rounds}``.
    """
    times: dict[int, list] = {}

    def judge(w):
        times[w] = [(float(k), float(b)) for k, b in probe(w)]
        return verdict(times[w])

    won = lost = None  # widest width the kernel won, narrowest BLAS won
    wider = None  # the verdict one width up
    for w in (w for w in widths if w >= static):
        wider = v = judge(w)
        if v == "K":
            won = w
            continue
        lost = w if v == "B" else None
        break
    if won is None and lower:
        if lower_probe is not None:
            probe = lower_probe
        for w in (w for w in reversed(widths) if w < static):
            v = judge(w)
            if v == "B":
                if wider == "B":  # below the table's threshold a loss counts only at two widths in a row
                    lost = w
                wider = v
                continue
            won = w if v == "K" else None
            break
    low = 0 if won is None else won + 1
    high = math.inf if lost is None else lost
    return int(min(max(static, low), high)), times


@dataclass
class Table:
    """Thresholds for one ISA level: the kernel runs below ``thresholds[order, kind, dtype]`` columns."""

    level: str
    thresholds: dict
    source: str  # "measured", "cache" or "static"
    path: str | None = None
    seconds: float | None = None
    cells: dict = field(default_factory=dict)  # "C pass float32" -> {"static", "status", "times"}
    note: str = ""
    #: dtype name -> the widths mod LAYOUT_PERIOD where BLAS runs ``A.T @ W`` swapped (``measure_layouts``); a
    #: dtype missing: ``_linalg.blas_times``'s own rule
    layouts: dict = field(default_factory=dict)
    #: ``DECISIONS`` name -> True (fastlr's route) or False where this machine's probe was decisive; a name missing:
    #: the rule (``choice.decided``)
    decisions: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"level": self.level, "source": self.source, "path": self.path, "seconds": self.seconds,
                "thresholds": {" ".join(c): t for c, t in self.thresholds.items()}, "cells": self.cells,
                "note": self.note, "layouts": {t: sorted(r) for t, r in self.layouts.items()},
                "decisions": dict(self.decisions)}


def tall_rows(dtype, l3: int) -> int:
    """Rows of the calibration's A below the table's thresholds: twice L3 in bytes (at most
    ``TALL_BYTES``), never fewer than SHAPE's. On an A that fits in L3 BLAS's second pass is nearly free:
    the Zen 2 (16 MiB L3) measured C-order float32 ``A @ V`` + ``A.T @ W`` at 0.77-1.06x BLAS on
    1040 x 1080 at 8-64 columns (and moved the threshold from 40 to 32 in one run) where 5760 x 1080
    gave the kernel 1.18-1.71x at 8-36 (bench/README.md, seventeenth session, HP)."""
    row = SHAPE[1] * np.dtype(dtype).itemsize
    return max(SHAPE[0], min(2 * l3, TALL_BYTES) // row)


def _timed_probes(core, rounds: int, tall: bool = False, matrix=None) -> dict:
    """``{cell: probe}``: ``probe(width)`` times the kernel and the BLAS calls ``InMemory`` runs instead,
    interleaved (the first of each alternating), and returns the rounds' (kernel, BLAS) times. A is SHAPE,
    or (``tall``) ``tall_rows`` x SHAPE[1], made at its cell's first probe (a scan may never need it); ``matrix``:
    ``_matrices``' maker of SHAPE's A, shared with ``decision_probes``."""
    rng = np.random.default_rng(0)
    matrix = matrix or _matrices(rng, tall)
    probes = {}
    for dtype in ("float32", "float64"):
        for order in ("C", "F"):
            for kind in ("pass", "gram"):
                def probe(w, order=order, kind=kind, dtype=dtype):
                    A = matrix(dtype, order)
                    V = rng.standard_normal((A.shape[1], w)).astype(dtype)
                    W = rng.standard_normal((A.shape[0], w)).astype(dtype)
                    if kind == "pass":
                        paths = (lambda: (core.matmul(A, V), core.rmatmul(A, W)),
                                 lambda: (blas_times(A, V), blas_times(A.T, W)))
                    else:
                        paths = (lambda: core.gram_product(A, V), lambda: blas_times(A.T, blas_times(A, V)))
                    return _interleaved(paths, rounds)

                probes[order, kind, dtype] = probe
    return probes


def _matrices(rng, tall: bool = False):
    """``matrix(dtype, order)``: the calibration's A (SHAPE, or with ``tall`` ``tall_rows`` x SHAPE[1]) in that dtype
    and memory order, made at its first call."""
    l3 = read_cache_sizes()[1] if tall else 0
    made: dict = {}

    def matrix(dtype, order):
        if (dtype, order) not in made:
            A0 = made.get((dtype, "C"))
            if A0 is None:
                A0 = rng.standard_normal(SHAPE).astype(dtype)
                if tall:  # SHAPE's rows repeated: past L3 without drawing 3-8x as many numbers
                    rows = tall_rows(dtype, l3)
                    A0 = np.tile(A0, (-(-rows // SHAPE[0]), 1))[:rows]
                made[dtype, "C"] = A0
            if order == "F":
                made[dtype, "F"] = np.asfortranarray(A0)
        return made[dtype, order]

    return matrix


def decision_probes(core, rounds: int, thresholds: dict, matrix=None) -> dict:
    """``{name: probe}`` for ``DECISIONS``: ``probe()`` gives the rounds' (fastlr's route, the other) times of one
    composite workload each, on the calibration's A (SHAPE), interleaved as ``_interleaved`` does. ``thresholds``:
    the level's measured ones, which pick kernel or BLAS for the routes' own products; ``matrix``: ``_matrices``'
    maker of A (the thresholds' A, already made).

    * "vector": ``A @ v``, ``A.T @ w``, ``A.T (A v)`` and ``(A v, A.T w)`` for C- and F-order A, float32 and float64,
      by ``core.vector_product`` against NumPy's GEMVs (the BLAS route's calls at one column).
    * "one_stream": ``A @ v`` and ``A.T @ w`` by ``core.vector_product`` with ``one_stream`` True against False, on
      ``ONE_STREAM_SHAPES``' A (the pairs follow the same rule); none at the baseline (one way to read A there).
    * "narrow": ``NARROW_CASES``, the tile-wide blocks' fused passes (``core.power_step``, the kernel: the narrow
      rules apply only where it runs) against the other route's passes of l columns or A^T A by SYRK (of half of
      A's rows, twice: SYRK's time grows with the rows as the passes' do; on a quarter of them float32 ran 8%
      slower a row, Zen 4). Each product timed once a round, each route's time their times weighted by the case's
      counts (the passes repeated took 3x as long: 190-210 ms a run at x86-64-v4, Zen 4).
    """
    rng = np.random.default_rng(2)
    matrix = matrix or _matrices(rng)

    def vector():
        arrays = []
        for dtype in ("float32", "float64"):
            for order in ("C", "F"):
                A = matrix(dtype, order)
                arrays.append((A, rng.standard_normal((A.shape[1], 1)).astype(dtype),
                               rng.standard_normal((A.shape[0], 1)).astype(dtype)))

        def passes():
            for A, v, w in arrays:
                core.vector_product(0, A, v), core.vector_product(1, A, w)
                core.vector_product(2, A, v), core.vector_product(3, A, v, w)

        def gemvs():
            for A, v, w in arrays:
                A @ v, A.T @ w, A.T @ (A @ v), (A @ v, A.T @ w)

        return _interleaved((passes, gemvs), rounds)

    def narrow():
        cases = []
        for dtype, l, narrow_passes, other_passes in NARROW_CASES:
            A = matrix(dtype, "C")
            cases.append((A, narrow_passes, other_passes, rng.standard_normal((A.shape[1], NARROW_BLOCK)).astype(dtype),
                          rng.standard_normal((A.shape[1], l)).astype(dtype)))

        def times(A, V):  # A @ V by the level's route
            return core.matmul(A, V) if V.shape[1] < thresholds["C", "pass", A.dtype.name] else blas_times(A, V)

        def step(A, V):  # A V and A^T A V by the level's route
            if V.shape[1] < thresholds["C", "gram", A.dtype.name]:
                return core.power_step(A, V)
            P = blas_times(A, V)
            return P, blas_times(A.T, P)

        blocks, other = [], []
        for A, narrow_passes, other_passes, Vb, Vl in cases:
            blocks += [(narrow_passes, lambda A=A, V=Vb: core.power_step(A, V)), (1, lambda A=A, V=Vb: times(A, V))]
            if other_passes is None:  # the Gram route: SYRK (memory._syrk)
                other.append((2, lambda S=A[:A.shape[0] // 2]: S.T @ S))
            else:
                other.append((other_passes, lambda A=A, V=Vl: step(A, V)))
            other.append((1, lambda A=A, V=Vl: times(A, V)))
        return _interleaved((blocks, other), rounds)

    def one_stream():  # A allocated here (the probe's 96 MB live only while it runs)
        if LEVELS[core._kernel_isa()] == "baseline":
            return []  # the portable loops read A one way: nothing to decide (the rule)
        arrays = []
        for dtype, shape in ONE_STREAM_SHAPES.items():
            A = np.full(shape, 0.5, dtype=dtype)  # the values do not change the time
            arrays.append((A, np.full((shape[1], 1), 0.5, dtype=dtype), np.full((shape[0], 1), 0.5, dtype=dtype)))

        def path(flag):
            def run():
                for A, v, w in arrays:
                    core.vector_product(0, A, v, one_stream=flag), core.vector_product(1, A, w, one_stream=flag)
            return run

        return _interleaved((path(True), path(False)), rounds)

    return {"vector": vector, "narrow": narrow, "one_stream": one_stream}


def decide(probes: dict) -> tuple[dict, dict]:
    """``({name: True or False}, {name: cell})`` from each ``probes[name]()`` of ``DECISIONS``: True where fastlr's
    route wins by ``verdict``, False where the other does, missing where neither (or the probe failed: its cell says
    why)."""
    decisions, cells = {}, {}
    for name in DECISIONS:
        start = time.perf_counter()
        try:
            rounds = [(float(a), float(b)) for a, b in probes[name]()]
        except Exception as exc:  # e.g. a core without the kernel: the rule
            cells[name] = {"status": f"failed ({type(exc).__name__}: {exc})"}
            continue
        v = verdict(rounds)
        if v != "?":
            decisions[name] = v == "K"
        cells[name] = {"status": "measured", "verdict": v, "times": _ms(rounds),
                       "seconds": round(time.perf_counter() - start, 3)}
    return decisions, cells


def _ms(rounds) -> list:
    """The rounds' time pairs in ms, as the cache file keeps them."""
    return [[round(a * 1e3, 3), round(b * 1e3, 3)] for a, b in rounds]


def _interleaved(paths, rounds: int) -> list:
    """The rounds' (first path's, second path's) CPU times of this thread, each warmed once (the first call of a
    width pays for its pages), the first of each round alternating. A path is a callable or a list of
    ``(weight, callable)``, each called once a round: the path's time their times' weighted sum. Each path runs
    whole: the two paths' units taken in turns over the same A ran the second of each pair 15-30% faster (A
    in L2 from the first; the one-column probe then read 1.0-1.2x, never decisive, where it reads 1.1-1.3x)."""
    clock = time.thread_time  # this thread's CPU time: another process's turn on the core is left out
    paths = [[(1, p)] if callable(p) else p for p in paths]
    for path in paths:
        for _, unit in path:
            unit()
    out = []
    for r in range(rounds):
        t = [0.0, 0.0]
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            for weight, unit in paths[i]:
                s = clock()
                unit()
                t[i] += weight * (clock() - s)
        out.append((t[0], t[1]))
    return out


def _layout_probe(rounds: int):
    """``probe(width)``: the rounds' (swapped, NumPy's) times of float64 ``A.T @ W`` by BLAS on C-order A of
    ``LAYOUT_SHAPE`` (made at the first call)."""
    rng = np.random.default_rng(1)
    made = []

    def probe(w):
        if not made:
            made.append(rng.standard_normal(LAYOUT_SHAPE))
        A = made[0]
        W = rng.standard_normal((A.shape[0], w))
        return _interleaved((lambda: blas_times(A.T, W, swap=True), lambda: blas_times(A.T, W, swap=False)), rounds)

    return probe


def measure_layouts(probe) -> tuple[frozenset, dict]:
    """The widths mod LAYOUT_PERIOD where the swapped layout wins (``LAYOUT_WIDTHS``, ``LAYOUT_MARGIN``), from
    ``probe(width)``'s rounds of (swapped, NumPy's) times; and ``{width: rounds}``."""
    times, swapped = {}, set()
    for r in range(LAYOUT_PERIOD):
        for base in LAYOUT_WIDTHS:
            times[base + r] = [(float(a), float(b)) for a, b in probe(base + r)]
            if not swapped_wins(times[base + r]):
                break
        else:
            swapped.add(r)
    return frozenset(swapped), times


def swapped_wins(rounds) -> bool:
    """From the rounds' (swapped, NumPy's) times: the swapped layout's best time ``LAYOUT_MARGIN`` below NumPy's
    layout's and it faster in most rounds. Not in every round, as ``verdict`` asks: its edge is 2-13% where it
    wins (Zen 2), and one round in three under load read 1.01 there."""
    if not rounds:
        return False
    swapped, numpy_layout = best_times(rounds)
    return numpy_layout >= (1 + LAYOUT_MARGIN) * swapped and 2 * sum(b > a for a, b in rounds) > len(rounds)


def measure(static: dict, probes: dict, level: str, lower_probes: dict | None = None) -> Table:
    """``scan`` of every cell with its probe (``lower_probes[cell]``, when given, below the table's
    threshold); a cell whose probe fails keeps the table's threshold."""
    start = time.perf_counter()
    thresholds, cells = {}, {}
    for cell in CELLS:
        name = " ".join(cell)
        try:
            # "gram" never below the table: on the calibration's cache-resident A, BLAS's second pass
            # is nearly free, while on matrices beyond L3 the kernel's one pass is what wins (v4,
            # float64, F order: BLAS 5-26% faster at 8-48 columns of 1024 x 1024; the kernel 1.3-1.7x
            # faster below 64 columns of 5760 x 1080 and 100000 x 500)
            thresholds[cell], times = scan(static[cell], probes[cell], lower=cell[1] != "gram",
                                           lower_probe=(lower_probes or {}).get(cell))
            cells[name] = {"static": static[cell], "status": "measured",  # ms
                           "times": {str(w): _ms(r) for w, r in times.items()}}
        except Exception as exc:  # e.g. out of memory: that cell keeps the table's threshold
            thresholds[cell] = static[cell]
            cells[name] = {"static": static[cell], "status": f"failed ({type(exc).__name__}: {exc})"}
    return Table(level, thresholds, "measured", seconds=round(time.perf_counter() - start, 3), cells=cells)


def _measure_layouts_into(tab: Table, probe) -> None:
    """``measure_layouts`` into ``tab`` (float64; its seconds included); a failure leaves ``blas_times``'s rule."""
    start = time.perf_counter()
    try:
        swapped, times = measure_layouts(probe)
    except Exception as exc:  # e.g. out of memory: blas_times's own rule
        tab.cells["layout float64"] = {"status": f"failed ({type(exc).__name__}: {exc})"}
    else:
        tab.layouts["float64"] = swapped
        tab.cells["layout float64"] = {"status": "measured", "swapped": sorted(swapped),  # ms
                                       "times": {str(w): _ms(r) for w, r in times.items()}}
    tab.seconds = round((tab.seconds or 0.0) + time.perf_counter() - start, 3)


def _decide_into(tab: Table, probes: dict) -> None:
    """``decide`` into ``tab`` (its seconds included)."""
    start = time.perf_counter()
    decisions, cells = decide(probes)
    tab.decisions.update(decisions)
    tab.cells.update(cells)
    tab.seconds = round((tab.seconds or 0.0) + time.perf_counter() - start, 3)


def _load(path: str, key: dict, static: dict) -> Table | None:
    try:
        with open(path) as f:
            data = json.load(f)
        if data.get("key") != key:
            return None
        thresholds = {c: int(data["thresholds"][" ".join(c)]) for c in static}
        if any(t < 0 for t in thresholds.values()):
            return None
        layouts = {t: frozenset(int(r) for r in rs) for t, rs in data.get("layouts", {}).items()}
        decisions = {name: bool(v) for name, v in data.get("decisions", {}).items() if name in DECISIONS}
        _touch(path)
        return Table(key["level"], thresholds, "cache", path, data.get("seconds"), data.get("cells", {}),
                     layouts=layouts, decisions=decisions)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or damaged: measured again


def _touch(path: str) -> None:
    """Marks a cache file as used now, so ``_prune`` keeps the keys in use over stale ones."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves


def _save(path: str, key: dict, tab: Table) -> str:
    """Writes the cache file and prunes the directory (``_prune``); returns "" or why it could not."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"key": key, **tab.as_dict()}, f, indent=1)
        os.replace(tmp, path)  # readers see the old file or the whole new one
    except OSError as exc:
        return f"cache not written ({exc})"
    _prune(os.path.dirname(path), keep=path)
    return ""


def _prune(directory: str, keep: str) -> None:
    """Removes all but the ``KEEP_FILES`` most recently written or read calibration files (``keep``, just
    written, always stays). Best effort: another process may be pruning or reading too."""
    dated = []
    try:
        for name in os.listdir(directory):
            if name.startswith(_PREFIX) and name.endswith(".json"):
                path = os.path.join(directory, name)
                try:
                    dated.append((os.path.getmtime(path), path))
                except OSError:
                    continue  # removed meanwhile
        dated.sort(reverse=True)
    except OSError:
        return  # a stale file costs only disk space
    for _, path in dated[KEEP_FILES:]:
        if path != keep:
            try:
                os.remove(path)
            except OSError:
                pass


def calibrate(static: dict, level: str, force: bool = False, rounds: int = ROUNDS) -> Table:
    """This machine's thresholds at ``level`` (the cache's, or measured now and cached).

    Parameters
    ----------
    static : dict
        The table's thresholds at that level, ``{(order, kind, dtype): columns}``: kept where a
        measurement is not decisive.
    level : str
        The ISA level: measured with the kernels capped there (``_core._cap_isa``); a CPU below it
        runs its own, and its results are not kept.
    force : bool
        Measure again even when the cache holds this key.
    """
    global _warned
    try:
        core = get_backend("cpp")
    except ImportError as exc:
        return Table(level, dict(static), "static", note=f"no compiled kernels to measure ({exc})")
    with _lock:
        key, path, tab = _cached(core, static, level, load=not force)
        if tab is not None:
            return tab
        if not hasattr(core, "_cap_isa"):
            return Table(level, dict(static), "static", note="a build without run-time dispatch")
        previous = core._cap_isa(LEVELS.index(level))
        try:
            if LEVELS[core._kernel_isa()] != level:
                return Table(level, dict(static), "static", note=f"this CPU does not run {level}")
            with thread_limit(1), blas_limit(1):
                resident = _matrices(np.random.default_rng(0))  # SHAPE's A, for the thresholds and the decisions
                tab = measure(static, _timed_probes(core, rounds, matrix=resident), level,
                              _timed_probes(core, rounds, tall=True))
                _measure_layouts_into(tab, _layout_probe(rounds))
                _decide_into(tab, decision_probes(core, rounds, tab.thresholds, resident))
        except Exception as exc:  # e.g. no memory for the matrices: the table, measured again next process
            return Table(level, dict(static), "static", note=f"calibration failed ({type(exc).__name__}: {exc})")
        finally:
            core._cap_isa(previous)
        tab.path = path
        tab.note = _save(path, key, tab) if path else "no cache directory (platformdirs missing)"
        if tab.note:
            tab.path = None  # not written: describe() and `fastlr calibrate` must not name it
        if tab.note and not _warned:
            _warned = True
            warnings.warn(f"fastlr product calibration: {tab.note}; kept in memory for this process",
                          RuntimeWarning, stacklevel=2)
        return tab


def table(static, level: str, run: bool = True) -> Table | None:
    """The thresholds ``use_kernel`` follows at ``level``, or None when calibration is off (or, with
    ``run=False``, not run yet). Measured at most once per process, level and cache directory;
    ``static()`` gives the table's thresholds (called only then: this runs at every product)."""
    if mode() == "off":
        return None
    slot = (level, os.environ.get("FASTLR_CACHE_DIR", ""))
    tab = _tables.get(slot)
    if tab is None:
        with _lock:
            tab = _tables.get(slot)
            if tab is None:
                if not run:
                    return _peek(static(), level)
                tab = _tables[slot] = calibrate(static(), level)
                _bump()
    return tab


def _peek(static: dict, level: str) -> Table | None:
    """The cached table, without measuring."""
    try:
        core = get_backend("cpp")
    except ImportError:
        return None
    return _cached(core, static, level)[2]


def _cached(core, static: dict, level: str, load: bool = True):
    """(key, the cache file or None without a cache directory, that file's table or None; None
    without ``load``)."""
    key = machine_key(level, core)
    directory = cache_dir()
    path = _cache_file(directory, key) if directory else None
    return key, path, _load(path, key, static) if path and load else None


def reset() -> None:
    """Forget the tables read or measured in this process (tests; after changing the environment)."""
    global _warned
    with _lock:
        _tables.clear()
        _bump()
        _warned = False


def _bump() -> None:
    global generation
    generation += 1
