"""Kernel or BLAS for a dense product: the rule ``InMemory`` follows.

fastlr's one-pass kernels (``matmul``, ``rmatmul``, ``gram_product``) replace the
BLAS calls ``A @ V``, ``A.T @ W`` and ``A.T @ (A @ V)``. They win on thin factors
only, and by how much depends on the vector ISA the kernels run with and on A's
memory order. Measured single thread on an AMD EPYC Zen 4 (OpenBLAS 0.3.31
SkylakeX kernel, i.e. BLAS at its AVX-512 best), the kernels at x86-64-v4,
x86-64-v3 and baseline through the ISA cap, dense 5760 x 1080 and 100000 x 500,
float32/float64, l = 10, 20, 60, 128 (``bench/bench_choice.py``; table in
bench/README.md, "Fifth session: kernel vs BLAS choice"; ratios are BLAS time over
kernel time):

* C order: the kernels win below 128 columns at x86-64-v4 (1.35-4.6x); at
  x86-64-v3 up to 20 columns (1.18-2.9x; with the 6-row AVX2 tiles of the sixth
  session 1.38-2.9x against SkylakeX, 1.22-2.4x against Haswell), thinly at 60
  (1.08-1.6x against the SkylakeX BLAS, 0.93-1.10x against OpenBLAS's Haswell
  kernel; 6-row tiles: 0.94-1.23x against Haswell), and a real AVX2 EPYC measured
  ``gram_product`` at l = 60 float32 slower than BLAS: 89.6 vs 74.9 ms, issue 13),
  so x86-64-v3 stops at 40 columns; at baseline (SSE2) BLAS wins from l = 20 (the
  kernels' edge at l = 10 is 0.83-1.6x): baseline runs BLAS.
* F order (e.g. ``A.T`` of a C-order A): ``A @ V`` and ``A.T @ W`` are faster in
  BLAS at every level in float32 (0.44-0.94x) and mixed in float64, so they go to
  BLAS. ``A.T (A V)`` by the kernel wins in float64 (1.3-1.7x below 64 columns at
  x86-64-v4, l <= 20 at x86-64-v3; on an AVX2 Zen 2 below 17 only) and ties or loses in float32 (0.91-1.10x at v4,
  0.70-0.95x at v3): float64 only.

The rule is a table ``KERNEL_COLUMNS[(level, order, kind, dtype)]``: the kernel
runs when the factor has fewer columns than the entry (and at least ``KERNEL_MIN_COLUMNS``, 2: one column
is BLAS's matrix-vector product, which the kernels lost to 0.4-0.7x), BLAS otherwise. The
x86-64-v3 entries also hold against OpenBLAS's AVX2 (Haswell) kernel, measured on
the same machine (``OPENBLAS_CORETYPE=Haswell``: as fast as SkylakeX on Zen 4).
Both paths round alike (the same sums in another order): results agree to rounding.
``A.T @ W`` on its own has one more cap, ``RMATMUL_COLUMNS`` (x86-64-v3, float32, C order: below 33
columns; an AVX2 Zen 2 lost 0.83-0.99x from there, sixteenth session), and widths below it that run BLAS,
``RMATMUL_BLAS_WIDTHS`` (that cell's 28 columns, 0.96-1.01x on the Zen 2, and float64's 25, 33 and 41,
0.91-0.96x; seventeenth session). ``A @ V`` on its own runs the kernel further at one thread,
``MATMUL_COLUMNS`` (x86-64-v3, C order, A past L3: below 49 columns in float32, 45 in float64; 1.1-1.5x BLAS).

That table is the fallback and the documented measurement. By default ("auto") each machine
measures its own thresholds once, at the first dense product of each ISA level, and caches them
(``calibration.py``: about 1-2 s; kernel and BLAS timed around the table's thresholds, which move
only where every round agrees by a clear margin), and with them two route decisions (``decided``): one-column
products by fastlr's column passes or BLAS's GEMVs (the rule: ``VECTOR_LEVELS``), and randomized_svd's Krylov
finder in tile-wide blocks or not (the rule: ``NARROW_LEVELS``). ``FASTLR_CALIBRATION=off`` keeps the table and
the rules; a level pinned by hand (``_level``, or ``use_kernel(..., level=...)``) always follows them.
``FASTLR_PRODUCT_CHOICE`` overrides both: ``auto`` (the rule; the default), ``kernel`` (the
one-pass kernels at any width) or ``blas``.

Sparse A (CSR/CSC) follows ``use_sparse_kernel`` instead (the CSR kernels run 32-byte vectors
on AVX2 and AVX-512 CPUs alike, 16-byte ones at baseline; the level matters for one band
below), not subject to FASTLR_PRODUCT_CHOICE. Measured single thread against the
SciPy expression each product replaces (``bench/sparse_products.py``, Zen 4; tables in
bench/README.md, "Ninth session: sparse products" and "Tenth session: sparse products at
every ISA level"; 20000 x 2000 at 1%, 1M x 500 with 500k nonzeros, 100000 x 5000 at 0.1%,
CSR and CSC, float32/float64, k = 2-64): the kernels win from two columns on, median
1.8-1.9x for ``A @ V`` and ``A.T @ W`` and 2.1-2.2x for ``A.T @ (A @ V)`` (one pass against
SciPy's two) at x86-64-v4/v3, 1.3x and 1.5x at baseline. Rows that lost in three runs out
of three: 3 of 768 at v4 (0.84-0.93x, 100000 x 5000 CSC ``A.T (A V)``, where v3 running the
same code won 1.4-1.5x; rerun with the calls' order rotating they won 1.3-2.2x: the
allocator's state), none at v3, 21 at baseline (0.63-1.00x, 17 of them 0.86-1.00x; 1M-row
CSC ``A @ V`` from k = 17 on 0.86-0.93x). SciPy runs instead for

* one column: SciPy's matvec (0.29 vs 0.35 ms for ``A @ v``, 20000 x 2000 at 1%; the
  one-pass ``A.T (A v)`` only ties SciPy's two matvecs);
* ``A @ V`` and ``A.T @ W`` over short rows, fewer than ``SPARSE_MIN_ROW_NNZ`` nonzeros a
  row on average in the CSR the kernel runs over (A's rows for CSR input, its columns for
  CSC): per-row work dominates and SciPy's simpler loop wins (1M x 500 with 500k nonzeros:
  0.65-0.93x; 400k x 500 with 1-3 nonzeros a row: 0.8-1.2x by width; from 4 a row
  0.94-1.36x; 100000 x 5000 at 0.1%, 5 a row: 0.97-1.56x). ``A.T (A V)`` of CSR A keeps
  the kernel there (one pass against two: 1.1-2.0x); of CSC A it is two kernel passes over
  those rows, ``A @ V`` then ``A.T @ W``, and follows the same rule: kernel against SciPy at
  x86-64-v4, 2000 x 200000 CSC with 2 nonzeros a column 0.89-0.96x at k = 2-3, 0.98-1.04x
  at k = 17-64 (baseline 0.85-0.92x); 20000 x 100000 with 3 a column, float64 0.92-0.95x at
  k = 2-3 and 0.88-1.01x at k = 17-33. The rule gives up that shape's 1.36-1.45x at k = 17
  and 64 in float32 and k = 64 in float64;
* at baseline, ``A.T (A V)`` of CSR A with ``SPARSE_MIN_ROW_NNZ`` to fewer
  than ``SPARSE_SHORT_ROW_NNZ`` (5.5) nonzeros a row on average while V (d x k) takes 3 L3 / 16
  (L3 / 4 for the kernels' 32-byte narrow rows) to 11 L3 / 16 bytes (6-22 MiB on Zen 4, 3-11 MiB
  on a 16 MiB Zen 2, bench/README.md "Fourteenth session: the sparse products on an AVX2 Zen 2"),
  where the SSE2 pass fetches a V row from L3 per nonzero and loses to SciPy's two scalar passes
  (bench/README.md, "Thirteenth session: the sparse route by ISA level (HT2)"; on the Zen 2
  0.66-0.96x at 4.6-10.6 MB, narrow rows 0.80-0.96x at 4.6-6.1 MB): with 5 a row on 50000 x
  50000, 100000 x 100000, 80000 x 40000 and 60000 x
  30000, float64 k = 8-40 and float32 k = 24-80, 0.53-0.97x in most runs (from 4 MiB on too,
  but there wins swapped with losses between runs: 80000 x 80000 float64 k = 7-8 1.05-1.48x), with ties and wins
  near 16 MiB that move between runs (50000 x 50000 float64 k = 40 0.90-1.02x in one run,
  1.13-1.25x in the next; float32 k = 64 and 80 the other way). From 18 MiB on it won
  (1.04-1.5x); with 6-7 a row it won or tied (120000 x 120000 at k = 10-28, 1.0-1.3x; 30000 x
  30000, 40000 x 80000: 0.86-1.5x); rows of at most 32 bytes won in the band (float32 k = 5-7,
  float64 k = 3 over 150000-200000 columns, 0.98-1.78x; within L3 / 4 there). Left on the kernel:
  200000 x 200000 at 25 MiB (float64 k = 17, float32 k = 33: 0.86-1.00x);
* at baseline, the scatter pass (CSR ``A.T @ W``, CSC ``A @ V``) over factor rows wider than
  ``SPARSE_BASELINE_SCATTER_BYTES`` (128, the baseline kernels' compile-time rows): past them the
  kernel walks Z's rows as SciPy's loop does and tied or lost on the Zen 2 (0.92-1.05x, float64
  k = 17-64, float32 k = 40-64, over 50000 x 50000, 200000 x 200000, 80000 x 40000 and 1M x 500).
  x86-64-v3 and x86-64-v4 run the same CSR code (32-byte vectors) and follow the same rule: a
  band that sent v4's scatter pass over rows of 4-5 nonzeros to SciPy at float64 k = 3 and float32 k = 5-6
  rested on a bench artifact (the bench's rotation ran v4's kernel right after SciPy's call in
  most rounds; bench/README.md, "Thirteenth session: the CSR kernels at x86-64-v3 and v4 (HV)"):
  timed fairly, v4 ran as v3 did, float32 k = 5-6 1.02-1.72x SciPy and float64 k = 3 0.93-1.08x.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from .._backend import get_backend
from .._caches import read_cache_sizes
from . import calibration

__all__ = ["BLAS_MIN_COLUMNS", "CACHE_COLUMNS", "CHOICES", "DEPTH_CACHE_COLUMNS", "KERNEL_COLUMNS",
           "KERNEL_MIN_COLUMNS", "LAYOUT_MIN_COLUMNS", "LAYOUT_SHORT_COLUMNS", "MATMUL_COLUMNS", "NARROW_LEVELS",
           "NARROW_ROW_BYTES", "ONE_STREAM_LEVELS", "RMATMUL_BLAS_WIDTHS", "RMATMUL_COLUMNS", "SHORT_F_COLUMNS",
           "SPARSE_BASELINE_SCATTER_BYTES", "SPARSE_MIN_ROW_NNZ", "SPARSE_SHORT_ROW_NNZ", "VECTOR_COLUMNS",
           "VECTOR_LEVELS", "blas_swap", "cache_sizes", "choice_mode", "decided", "dtype_name", "factor_fits",
           "isa_level", "operand_key", "remember_route", "route_key", "routes", "static_thresholds", "thresholds",
           "use_kernel", "use_sparse_kernel", "vector_product"]

#: Factors at least this wide go to BLAS at every ISA level ("auto"): its GEMM
#: beats the one-pass kernels there. KERNEL_COLUMNS holds the narrower
#: thresholds of x86-64-v3, baseline and F-order A.
BLAS_MIN_COLUMNS = 128

#: Factors narrower than this never run the one-pass kernels ("auto"; BLAS's GEMV, or at ``VECTOR_LEVELS`` on one
#: thread fastlr's one-column passes, ``vector_product``): one column is NumPy's matrix-vector product (GEMV), which
#: streams A at memory speed, while the kernels run a one-column factor as they run two. Zen 2, x86-64-v3, one
#: thread, C-order float32 (bench/README.md, eighteenth session, HL): ``A @ v`` 2.44 vs 1.22 ms on 5760 x 1080 (19.5
#: vs 12.7 on 100000 x 500), ``A.T @ w`` 2.79 vs 1.10, ``A.T (A v)`` 4.37 vs 2.31 ms (two GEMVs against one pass; 34.7
#: vs 25.1 on 100000 x 500), gd 5.03 vs 2.40.
KERNEL_MIN_COLUMNS = 2

#: ISA levels at which a one-column product (``columns`` = 1: ``A @ v``, ``A.T @ w``, ``A.T (A v)``, the gd pair) on
#: one thread runs fastlr's own one-column passes (``_core.vector_product``, csrc/bindings/products_vector.cpp) instead
#: of NumPy's GEMVs ("auto"; ``vector_product``). The pairs read A once where NumPy's two GEMVs read it twice, and the
#: route skips the BLAS route's Python (thread counters, layout, NumPy's dispatch: 13-20 us a call right after a GEMV
#: has flushed the caches, Zen 4).
#:
#: * x86-64-v3: Zen 2, one thread, against NumPy's expressions with OpenBLAS's Haswell kernels (bench/README.md,
#:   twentieth session, HG): gd 1.3-2.3x, C-order ``A.T (A v)`` 1.2-1.7x, F-order ``A.T (A v)`` (two sweeps)
#:   1.0-1.15x, the single products 0.95-1.24x of the GEMV alone.
#: * x86-64-v4: Zen 4 against OpenBLAS's SkylakeX GEMVs. The pairs (11 interleaved rounds, load ~6; twenty-second
#:   session, HZ): the BLAS route's time over the passes' 1.23-1.69 (gram) and 1.56-1.83 (gd) in C order, 0.84-1.41
#:   (gram; the 0.84: 2000 x 1000 float64, 0.6 ms, not repeated) and 1.39-2.20 (gd) in F order. The single products
#:   (twenty-second session, HV; quiet machine, load 0.1-1.1, 15-21 interleaved rounds, 5760 x 1080, 1080 x 5760,
#:   100000 x 200, 2000 x 1000): the bare passes over NumPy's expression 1.00-1.51x for the dots (C-order ``A @ v``,
#:   F-order ``A.T @ w``; eight rows a block, where four lost 0.93-0.97x on 5760 x 1080), 1.03-1.31x for the float64
#:   axpys, 0.98-1.20x for the float32 ones; through the route C-order float32 ``A.T @ w`` read 0.96-1.05x NumPy on
#:   the passes against 0.95-0.99x on GEMV (the route's Python), the others 0.99-1.48x.
#:
#: The rule where nothing was measured: by default each machine decides at first use (``decided``, the calibration's
#: "vector" probe).
VECTOR_LEVELS = ("x86-64-v3", "x86-64-v4")
#: A at (level, order, dtype): fastlr's column passes (``_core.vector_product``) also for 2 to fewer than this many
#: columns on one thread, in place of the one-pass kernels (C order), which run 2-4 columns as they run 8 (5760 x 1080
#: float32 ``A @ V`` 2.3 ms at 2-4 columns, 1.2 at one), or of BLAS's GEMMs and the F-order gram kernel (F order).
#: Zen 2, x86-64-v3, 7 interleaved rounds, the old route's time over the passes' (bench/README.md, twentieth session,
#: HG): C order, float32 2-4 columns 1.3-4.6x on 5760 x 1080, 1080 x 5760, 2000 x 1000 (A in L3: the kernel there lost
#: to NumPy, 0.63-0.82x) and 0.94-1.8x on 100000 x 200; float64 2 columns 0.98-1.9x, 3-4 columns 0.70-1.39x (the
#: kernel stays); F order, 2-4 columns, 1.3-4.0x in float32, 1.04-3.7x in float64 (times, rtimes, power, gd).
VECTOR_COLUMNS: dict[tuple[str, str, str], int] = {("x86-64-v3", "C", "float32"): 5, ("x86-64-v3", "C", "float64"): 3,
                                                   ("x86-64-v3", "F", "float32"): 5, ("x86-64-v3", "F", "float64"): 5}

#: ISA levels where fastlr's one-column products read a C-order A of 16 MiB and more with rows under 4-12 KiB one row
#: at a time, as one stream in memory order (``_core.vector_product``'s ``one_stream``; csrc/bindings/
#: products_vector.cpp, kOneStreamBytes), where nothing was measured; by default each machine decides at first use
#: (``decided``, the calibration's "one_stream" probe). Zen 4, one thread: 100000 x 200 ``A @ v`` / ``A.T @ w``
#: 0.41-0.46x the eight-row blocks' time, the pairs 0.35-0.43x (bench/README.md, twenty-third session); Zen 2,
#: where the blocks were chosen (four streams of A read faster than one there), not measured.
ONE_STREAM_LEVELS = ("x86-64-v3", "x86-64-v4")

#: ISA levels where randomized_svd's Krylov finder runs the narrow-block rules (``_krylov.krylov_block``: tile-wide
#: blocks on the fused kernel, dense in-memory A) where nothing was measured; by default each machine decides at first
#: use (``decided``, the calibration's "narrow" probe). x86-64-v4 takes x86-64-v3's 64-byte blocks (one 512-bit vector;
#: its own tile is two): Zen 4, one thread, 7 interleaved rounds, randomized_svd on 5760 x 1080 float32 k = 50 68.9
#: against 96.5 ms (the narrow blocks in place of the Gram route; worst excess of 3 seeds 3.7e-9 against 3.2e-7), k = 10
#: 32.2 against 38.8, float64 k = 10 55.2 against 59.2 (2.9e-14 against 1.4e-12); 100000 x 500 0.99-1.12x; 128-byte
#: blocks changed nothing at k = 50 (bench/README.md, twenty-second session, HZ). Baseline not measured.
NARROW_LEVELS = ("x86-64-v3", "x86-64-v4")

#: Values of FASTLR_PRODUCT_CHOICE.
CHOICES = ("auto", "kernel", "blas")

LEVELS = calibration.LEVELS

# (level, order, kind, dtype) -> the kernel runs for fewer columns than this.
# kind: "pass" (A @ V, A.T @ W) or "gram" (A.T @ (A @ V), one pass for both).
KERNEL_COLUMNS: dict[tuple[str, str, str, str], int] = {}
for _dtype in ("float32", "float64"):
    for _kind in ("pass", "gram"):
        KERNEL_COLUMNS["x86-64-v4", "C", _kind, _dtype] = 128
        KERNEL_COLUMNS["x86-64-v3", "C", _kind, _dtype] = 40
        KERNEL_COLUMNS["baseline", "C", _kind, _dtype] = 0
        KERNEL_COLUMNS["baseline", "F", _kind, _dtype] = 0
    KERNEL_COLUMNS["x86-64-v4", "F", "pass", _dtype] = 0
    KERNEL_COLUMNS["x86-64-v3", "F", "pass", _dtype] = 0
KERNEL_COLUMNS["x86-64-v4", "F", "gram", "float64"] = 64
#: F-order float64 ``A.T (A V)`` at x86-64-v3: 32 until the eighteenth session; on the Zen 2 (5760 x 1080, one
#: thread, 9 rounds) the kernel read 0.82-0.88x NumPy at 25, 26, 28-30 columns and 0.96-0.97x at 17, 18, 20-22
#: (1.03-1.14x at 19, 23, 24), 1.07-1.62x below 17 (bench/README.md, eighteenth session, HL).
KERNEL_COLUMNS["x86-64-v3", "F", "gram", "float64"] = 17
KERNEL_COLUMNS["x86-64-v4", "F", "gram", "float32"] = 0
KERNEL_COLUMNS["x86-64-v3", "F", "gram", "float32"] = 0
#: F-order A less than twice as tall as wide, at (level, kind, dtype): the kernel only below this many columns,
#: whatever the threshold above (measured on a tall A) or the calibration (a tall probe) gives; and never where
#: the kernel's gather of whole cache lines (A's columns x 64 bytes, ``dense_row_pass``) passes L2. Zen 2, one
#: thread, float64 ``A.T (A V)`` against NumPy (5 rounds, load ~5; bench/README.md, nineteenth session, lead):
#: 2000 x 2000, 1440 x 2880, 1000 x 4000 and 1080 x 5760 1.0-1.24x at 2-8 columns and 0.83-0.98x at 12-16, where
#: 2880 x 1440, 4000 x 1000, 5760 x 1080, 20000 x 500 and 100000 x 500 won 1.10-1.60x at every width 2-16;
#: 500 x 20000 (the gather 1.28 MB) lost 0.56-0.71x at every width.
SHORT_F_COLUMNS: dict[tuple[str, str, str], int] = {("x86-64-v3", "gram", "float64"): 9}

#: ``A.T @ W`` on its own (kind "rmatmul") at (level, order, dtype): the kernel only below this many
#: columns, whatever the "pass" threshold (table or calibration) gives ``A @ V`` and ``A.T @ W`` together.
#: x86-64-v3, float32, C order: from 33 columns on the backward pass sweeps A three times (16 + 16 and the
#: rest; products_split.cpp's 24 | 12-16 twice) and lost to OpenBLAS's Haswell GEMM at 33, 34 and 36 columns
#: on the Zen 2 (one thread, 5760 x 1080 and 100000 x 500: 0.84-0.99x), won at 35 and 37-40 (1.07-1.29x);
#: below 33 it won or tied at every width (bench/README.md, sixteenth session, HB). ``A @ V`` and
#: ``A.T (A V)`` keep their thresholds.
RMATMUL_COLUMNS: dict[tuple[str, str, str], int] = {("x86-64-v3", "C", "float32"): 33}
#: Widths below ``RMATMUL_COLUMNS`` where ``A.T @ W`` alone still runs BLAS. x86-64-v3, float32, C order, 28
#: columns: the kernel pads 25-32 columns to 32 (5.5 ms on 5760 x 1080, flat), while OpenBLAS's Haswell sgemm
#: runs 28 without a tail (5.35-5.46 ms; 25-27 and 29-31 have one, 5.8-7.6 ms): the kernel read 0.96-1.01x BLAS
#: on the Zen 2 (HB's four runs, sixteenth session, and HP's), 1.03-1.04x on 100000 x 500. BLAS there, so
#: never below it; 25-27 and 29-32 (1.07-1.38x) stay on the kernel. Float64, 25, 33 and 41 columns (one
#: column past whole two-vector tiles, where fastlr's BLAS layout ``(W.T @ A).T`` runs fast): the kernel
#: 0.91-0.94x it on 5760 x 1080, 0.94-0.96x on 100000 x 500 (HP, after padding 26/34/42 to whole vectors);
#: 17 (1.17x) and 9 (1.47x) stay on the kernel.
RMATMUL_BLAS_WIDTHS: dict[tuple[str, str, str], frozenset] = {("x86-64-v3", "C", "float32"): frozenset({28}),
                                                               ("x86-64-v3", "C", "float64"): frozenset({25, 33, 41})}

#: The tables' dtype keys. ``np.dtype(x).name`` runs NumPy's Python code: 7 us, and 60 us right after a
#: 5760 x 1080 GEMM has flushed the caches (Zen 2), on every product's route; a dict lookup instead.
_DTYPE_NAMES = {t: np.dtype(t).name for t in (np.float32, np.float64, np.dtype(np.float32), np.dtype(np.float64),
                                              "float32", "float64")}


def dtype_name(dtype) -> str:
    """``np.dtype(dtype).name``, looked up without NumPy's Python code for float32 and float64."""
    name = _DTYPE_NAMES.get(dtype)
    return name if name is not None else np.dtype(dtype).name


#: ``A @ V`` on its own (kind "matmul") at (level, order, dtype), one thread, A past L3: the kernel below this many
#: columns where the "pass" threshold (``A @ V`` and ``A.T @ W`` together) is the table's or higher. x86-64-v3, C
#: order, Zen 2 against OpenBLAS's Haswell GEMM (5760 x 1080 and 100000 x 500): float32 40-48 columns 1.12-1.53x,
#: 49-50 0.96-0.98x, 60 0.91x; float64 40-44 1.12-1.34x, 45 0.93x, 46 1.00x. On 2000 x 1000 (A within L3) the
#: kernel read 0.97-1.01x at 42-44 and float64 0.87x at 46 (bench/README.md, seventeenth session, HP): there the
#: pair's threshold holds. ``A.T @ W`` lost at 40-48, so the pair keeps 40.
MATMUL_COLUMNS: dict[tuple[str, str, str], int] = {("x86-64-v3", "C", "float32"): 49, ("x86-64-v3", "C", "float64"): 45}

#: A level pinned by hand (benchmarks); None: the level the compiled kernels run at.
_level: str | None = None
_dispatching_core = None  # the C++ module when it picks its kernels at run time; False: it does not


def isa_level() -> str:
    """The vector ISA the compiled product kernels run with ("x86-64-v4", "x86-64-v3" or
    "baseline"): this CPU's widest within the ISA cap (``_core._cap_isa``, which tests and
    benchmarks lower), read at each call, whichever backend runs the kernels (Numba's are
    compiled for this CPU too); "x86-64-v4" without the C++ core and for builds without
    run-time dispatch, which follow the compiler's target."""
    if _level is not None:
        return _level
    core = _core_with_dispatch()
    if core is False:
        return "x86-64-v4"
    return LEVELS[core._kernel_isa()]


def _core_with_dispatch():
    """The C++ module when it picks its kernels at run time, else False (found once)."""
    global _dispatching_core
    if _dispatching_core is None:
        try:
            core = get_backend("cpp")
            _dispatching_core = core if core.build_info().get("isa") in LEVELS else False
        except ImportError:
            _dispatching_core = False
    return _dispatching_core


#: The environment variables the dense rule reads: its override and the calibration's mode and cache directory.
_ROUTE_ENV = ("FASTLR_PRODUCT_CHOICE", "FASTLR_CALIBRATION", "FASTLR_CACHE_DIR")
#: ``os.environ``'s own mapping and its keys there (bytes on POSIX): a read of it 0.05 us against ``os.environ.get``'s
#: 1 us (its ``Mapping.get``, ``__getitem__`` and key encoding, each a Python frame; ~10 us after a large GEMM).
_ENVIRON = getattr(os.environ, "_data", None)
_ENV_KEYS = tuple(os.environ.encodekey(k) for k in _ROUTE_ENV) if _ENVIRON is not None else _ROUTE_ENV
if _ENVIRON is None:  # another Python: the public mapping
    _ENVIRON = os.environ

#: ``InMemory._route``'s memo: ``route_key(...)`` -> route.
routes: dict = {}
#: Routes kept at most (a process trying many shapes and widths starts over past it).
MAX_ROUTES = 4096


def route_key(operand: tuple, kind: str, columns: int, threads: int) -> tuple:
    """The key of a dense product's route in ``routes``: its arguments (``operand``: ``operand_key`` of A)
    and what ``use_kernel`` and ``blas_swap`` read besides them: the environment (``_ROUTE_ENV``), the ISA level
    the kernels run at (the cap included), the calibration's tables (``calibration.generation``), a level pinned
    by hand, the cache sizes, and the functions tests replace. A route remembered under an equal key is the one
    the rule gives now. One flat tuple, the ISA read from the core without ``isa_level``'s frame: each object
    this touches costs ~1 us right after a large GEMM has flushed the caches (Zen 2)."""
    env, core = _ENVIRON, _dispatching_core
    return (operand, kind, columns, threads, env.get(_ENV_KEYS[0]), env.get(_ENV_KEYS[1]), env.get(_ENV_KEYS[2]),
            core._kernel_isa() if core else core, calibration.generation, _level, _cache_sizes, _calibrated,
            isa_level, blas_swap)


def operand_key(A, order: str) -> tuple:
    """Dense A's part of ``route_key``: its shape, dtype name, memory order (the choice's "C" or "F") and contiguity
    flags (the BLAS layout, ``_linalg.blas_swapped``); plain values, so an operand pickled to another process keys
    the same routes there."""
    return tuple(A.shape), dtype_name(A.dtype), order, bool(A.flags.c_contiguous), bool(A.flags.f_contiguous)


def remember_route(key, route) -> None:
    """``routes[key] = route``, the memo emptied first when full."""
    if len(routes) >= MAX_ROUTES:
        routes.clear()
    routes[key] = route


def vector_product(columns: int, threads: int = 1, level: str | None = None, dtype=None, order: str | None = None):
    """``_core.vector_product`` where a dense product (any kind) with a ``columns``-wide factor on ``threads``
    threads runs it ("auto", one thread, the C++ core with run-time dispatch, and one column where this machine's
    calibration chose the passes, ``decided("vector", VECTOR_LEVELS, level)``, or fewer than
    ``VECTOR_COLUMNS[level, order, dtype]``), else None (BLAS's GEMV, the one-pass kernels, or either under
    FASTLR_PRODUCT_CHOICE). One column: with its ``one_stream`` as this machine decided (``decided("one_stream",
    ONE_STREAM_LEVELS, level)``)."""
    if threads != 1 or columns < 1 or columns > 4 or choice_mode() != "auto":
        return None
    if columns == 1:
        if not decided("vector", VECTOR_LEVELS, level):
            return None
    elif columns >= VECTOR_COLUMNS.get((level or isa_level(), order, None if dtype is None else dtype_name(dtype)), 0):
        return None
    core = _core_with_dispatch()
    product = getattr(core, "vector_product", None) if core else None
    if product is None or columns > 1:
        return product
    return functools.partial(product, one_stream=decided("one_stream", ONE_STREAM_LEVELS, level))


def decided(name: str, rule: tuple, level: str | None = None) -> bool:
    """Whether fastlr's route holds for the calibration's decision ``name`` (``calibration.DECISIONS``: "vector",
    "narrow") at the kernels' ISA level: this machine's measurement (measured at the first call of each level, or
    read from the cache), else the rule, ``level in rule``: calibration off, a level given or pinned by hand, no
    run-time dispatch, or a measurement that was not decisive.

    Raises
    ------
    ValueError
        When FASTLR_CALIBRATION holds anything other than auto or off.
    """
    if level is not None:  # given: the rule, as use_kernel's level
        return level in rule
    level = isa_level()
    tab = _calibrated(level=level)
    measured = None if tab is None else tab.decisions.get(name)
    return level in rule if measured is None else measured


def choice_mode() -> str:
    """``FASTLR_PRODUCT_CHOICE`` ("auto" when unset or empty).

    Raises
    ------
    ValueError
        When the variable holds anything other than auto, kernel or blas.
    """
    mode = os.environ.get("FASTLR_PRODUCT_CHOICE", "").strip().lower() or "auto"
    if mode not in CHOICES:
        raise ValueError(f"FASTLR_PRODUCT_CHOICE: unknown choice {mode!r}; choose one of {', '.join(CHOICES)}")
    return mode


def use_kernel(kind: str, columns: int, dtype, order: str, level: str | None = None,
               factor_rows: int | None = None, threads: int = 1, matrix_bytes: int = 0) -> bool:
    """Whether a dense product with a ``columns``-wide factor runs on the one-pass kernel.

    Parameters
    ----------
    kind : {"pass", "matmul", "rmatmul", "gram", "gd"}
        ``A @ V`` / ``A.T @ W`` ("pass"), ``A @ V`` alone ("matmul": "pass", or below ``MATMUL_COLUMNS`` at
        one thread for A past L3 where "pass" is the table's threshold or higher), ``A.T @ W`` alone ("rmatmul":
        "pass", and below ``RMATMUL_COLUMNS`` and outside ``RMATMUL_BLAS_WIDTHS`` where they hold an entry),
        ``A.T @ (A @ V)`` ("gram") or the fused GD pass
        ``(A @ V, A.T @ U)`` ("gd": at x86-64-v4 no width threshold, only ``factor_fits``; below it
        the "pass" threshold, the same two products).
    columns : int
        Columns of the factor.
    dtype : float32 or float64
    order : {"C", "F"}
        A's memory order.
    level : str, optional
        ISA level (default: this CPU's, ``isa_level()``).
    factor_rows : int, optional
        A's column count d, the rows of the d x l factor the kernel streams once per tile of A's
        rows (V, or the sum Z): past the cache (``factor_fits``) BLAS runs, whatever the width.
    threads : int, default 1
        The threads the product runs on (``factor_fits``). The calibration times one thread: with
        more, its thresholds stop at ``BLAS_MIN_COLUMNS``, and ``MATMUL_COLUMNS`` does not apply. (Two threads, wall
        time, float32 at 128
        columns, which this machine's calibration gives the kernel: 100000 x 500 ``A @ V`` and
        ``A.T @ W`` at x86-64-v4 0.86-0.95x BLAS in 4 runs of 4, 5760 x 1080 ``A.T (A V)`` at
        x86-64-v3 0.89-0.95x; other cells won 1.1-1.7x.)
    matrix_bytes : int, default 0
        A's size in bytes: ``MATMUL_COLUMNS`` applies only past L3 (``cache_sizes``).
    """
    if kind not in ("pass", "matmul", "rmatmul", "gram", "gd"):
        raise ValueError(f"kind: expected 'pass', 'matmul', 'rmatmul', 'gram' or 'gd', got {kind!r}")
    if order not in ("C", "F"):
        raise ValueError(f"order: expected 'C' or 'F', got {order!r}")
    mode = choice_mode()
    if mode != "auto":
        return mode == "kernel"
    if level is not None and level not in LEVELS:
        raise ValueError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if columns < KERNEL_MIN_COLUMNS:
        return False
    pinned = level is not None  # a level given: the table's rule, not the calibration
    level = level or isa_level()
    name = dtype_name(dtype)
    if factor_rows is not None and not factor_fits(factor_rows, columns, dtype, level, threads):
        return False
    if (order == "F" and factor_rows is not None and matrix_bytes
            and (level, kind, name) in SHORT_F_COLUMNS and not _tall_f_fits(
                columns, SHORT_F_COLUMNS[level, kind, name], factor_rows, matrix_bytes // np.dtype(dtype).itemsize)):
        return False
    extra = 0  # A @ V alone: MATMUL_COLUMNS, measured at one thread
    if kind == "matmul":
        if threads == 1 and matrix_bytes > cache_sizes()[1]:
            extra = MATMUL_COLUMNS.get((level, order, name), 0)
        kind = "pass"
    if kind == "rmatmul":
        if columns >= RMATMUL_COLUMNS.get((level, order, name), BLAS_MIN_COLUMNS):
            return False
        # those widths run BLAS for its swapped layout's speed there: not where this machine measured NumPy's faster
        if columns in RMATMUL_BLAS_WIDTHS.get((level, order, name), ()) and (
                name != "float64" or pinned or factor_rows is None
                or blas_swap(name, columns, matrix_bytes // (8 * factor_rows)) is not False):
            return False
        kind = "pass"
    if kind == "gd":
        if level == "x86-64-v4":
            return True  # before _calibrated(): measured on Zen 4 only, where it won at every width
        # Below v4 the fused pass is A @ V and A.T @ U together, and loses where they lose: Zen 2,
        # one thread, 5760 x 1080 and 2000 x 1000, l = 10-40, F order 0.82-0.95x BLAS at v3 and
        # 0.33-0.83x at baseline in C order too (bench/README.md, fourteenth session, H1).
        kind = "pass"
    table = min(BLAS_MIN_COLUMNS, KERNEL_COLUMNS[level, order, kind, name])
    tab = None if pinned else _calibrated(level=level)
    limit = table if tab is None else tab.thresholds[order, kind, name]
    if tab is not None and threads > 1:  # measured at one thread: past the table's widths it holds there only
        limit = min(limit, BLAS_MIN_COLUMNS)
    if limit >= table:  # not lowered by this machine's calibration
        limit = max(limit, extra)
    return columns < limit


def _tall_f_fits(columns: int, short_columns: int, d: int, entries: int) -> bool:
    """``SHORT_F_COLUMNS``' rule for an F-order A of ``entries`` entries and d columns: the gather of whole cache
    lines within L2, and A at least twice as tall as wide or the factor narrower than ``short_columns``."""
    return d * 64 <= cache_sizes()[0] and (entries >= 2 * d * d or columns < short_columns)


#: Narrower factors keep ``_linalg.blas_times``'s layout whatever the calibration measured (``blas_swap``): the
#: swapped layout won 1.23-1.30x at 2-5 columns on the Zen 2 (5760 x 1080 float64), where the calibration's
#: residues (timed at 48-63 columns) would give NumPy's at 2-5 mod 8.
LAYOUT_MIN_COLUMNS = 8
#: Over sums shorter than the calibration's (``blas_swap``), the measured layout holds below this many columns.
LAYOUT_SHORT_COLUMNS = 64


def blas_swap(dtype, columns: int, depth: int) -> bool | None:
    """Whether the BLAS route runs ``A.T @ W`` of C-order A (and ``A @ V`` of F-order A) as ``(W.T @ A).T``
    (``_linalg.blas_times``'s ``swap``), ``depth`` the length of the sums (A's rows for ``A.T @ W``, its columns
    for ``A @ V``): float64 from ``LAYOUT_MIN_COLUMNS`` columns on, the calibration's ``layouts`` (widths mod
    ``calibration.LAYOUT_PERIOD`` where that layout won on this machine, timed on sums of
    ``calibration.LAYOUT_SHAPE[0]``), over shorter sums below ``LAYOUT_SHORT_COLUMNS`` only; NumPy's layout
    (False) for the other widths; None (``blas_times``'s own rule) otherwise, and where nothing was measured
    (calibration off, a level pinned by hand, a cache without layouts). Shorter sums: on the Zen 2, over 1080 rows
    (1080 x 5760's ``A.T @ W``, 5760 x 1080 F-order's ``A @ V``: the same GEMM) the swapped layout won 1.05-1.38x
    at 8-57 columns 0 and 1 mod 8 and lost 0.93-0.98x at 64-128 (9 rounds), widths 0 mod 8 included, where over
    5760 rows it won or tied there (0.99-1.06x)."""
    if columns < LAYOUT_MIN_COLUMNS or dtype_name(dtype) != "float64":
        return None
    tab = _calibrated()
    swapped = None if tab is None else tab.layouts.get("float64")
    if swapped is None:
        return None
    return ((depth >= calibration.LAYOUT_SHAPE[0] or columns < LAYOUT_SHORT_COLUMNS)
            and columns % calibration.LAYOUT_PERIOD in swapped)


#: Past L2, below x86-64-v4 only factors narrower than this run on the kernels (``factor_fits``).
CACHE_COLUMNS = 32
#: ... or than this at (level, dtype), one thread: x86-64-v3 float64's passes past L2 sweep the factor in depth
#: blocks (products_split_depth.cpp). Zen 2, one thread, C order, the kernel forced, 5 rounds (bench/README.md,
#: nineteenth session, lead): 1080 x 5760 and 2000 x 4000 float64 ``A @ V``, ``A.T @ W``, ``A.T (A V)`` and gd at
#: 32-40 columns 1.05-1.29x NumPy; float32 lost at 33, 36 and 40 (0.88-0.97x) and keeps 32.
DEPTH_CACHE_COLUMNS: dict[tuple[str, str], int] = {("x86-64-v3", "float64"): 40}
#: At x86-64-v4, factor rows of at most this many bytes may reach far into L3 (``factor_fits``).
NARROW_ROW_BYTES = 256


def factor_fits(rows: int, columns: int, dtype, level: str, threads: int = 1) -> bool:
    """Whether a rows x columns factor is small enough for the one-pass kernels at ``level``.

    Each tile of A's rows streams the whole factor (V, and the sum Z of ``A.T @ W``), so the
    kernels live on the factor staying in cache; BLAS's GEMM blocks around it. Measured single
    thread on wide C-order A (Zen 4: 1 MiB L2, 32 MiB L3; ``bench/bench_choice.py --shapes
    1080x5760,500x20000,500x100000 --products matmul,rmatmul,gram_product,gd_products``;
    bench/README.md, "Twelfth session: wide matrices"), B the factor's bytes:

    * x86-64-v4 (OpenBLAS SkylakeX): won at any width up to 2.9 MB (1.3-1.6x); with rows of at
      most 256 bytes up to B = 12.8 MB (1.5-3.1x), not at 16 MB (0.7-1.1x: V and Z together fill
      L3); with wider rows lost from 6.4 MB (``gd_products`` 0.94x at 40 float64 columns, 0.5-0.6x
      at 50-60).
    * x86-64-v3 against OpenBLAS's AVX2 (Haswell) kernel, what an AVX2-only machine runs: past L2
      the kernels won below 32 columns up to 4 MB (1.1-1.5x); at 32-40 columns they tied or lost
      (0.87-1.26x), from 60 lost (0.2-0.8x), and at 8 MB lost even at 10 columns
      (``gd_products`` float64 0.72x).

    * 2 threads (wall time; each thread sums its own Z, and BLAS gains more from the second core):
      x86-64-v4 lost from 3.2 MB at 160-byte rows (0.69-0.87x), on 5.1 MB at 256 bytes (0.86-0.88x)
      and on 6.4 MB at 64 bytes (0.85-0.91x), and won up to 4 MB at 40-byte rows and 2.56 MB at 128
      (1.1-2.8x); x86-64-v3 lost on 3.2 MB at 20 columns (0.73-0.89x) and 4 MB at 10 (0.93x).

    So: B within L2 fits. Past it, at x86-64-v4: B within L3 / (8 t) for t threads, or rows of at
    most ``NARROW_ROW_BYTES`` / t and B within 7/16 of L3 (one thread) or 3 / (8 t) of it; at the
    other levels, fewer than ``CACHE_COLUMNS`` columns (``DEPTH_CACHE_COLUMNS`` at one thread where it
    holds an entry) and B within L3 / (8 t).
    """
    t = max(1, int(threads))
    row = columns * np.dtype(dtype).itemsize
    nbytes = rows * row
    l2, l3 = cache_sizes()
    if nbytes <= l2:
        return True
    if level == "x86-64-v4":
        narrow = 7 * l3 // 16 if t == 1 else 3 * l3 // (8 * t)
        return nbytes <= l3 // (8 * t) or (row <= NARROW_ROW_BYTES // t and nbytes <= narrow)
    cap = DEPTH_CACHE_COLUMNS.get((level, dtype_name(dtype)), CACHE_COLUMNS) if t == 1 else CACHE_COLUMNS
    return columns < cap and nbytes <= l3 // (8 * t)


_cache_sizes: tuple[int, int] | None = None


def cache_sizes() -> tuple[int, int]:
    """(L2, L3) sizes in bytes of CPU 0's caches from Linux's sysfs; 512 KiB / 16 MiB (small: the
    cap errs towards BLAS) where the system does not say (``_caches.read_cache_sizes``)."""
    global _cache_sizes
    if _cache_sizes is None:
        _cache_sizes = read_cache_sizes()
    return _cache_sizes


def static_thresholds(level: str) -> dict:
    """The table's thresholds at ``level``: ``{(order, kind, dtype): columns}``, the kernel below."""
    return {(o, k, t): min(BLAS_MIN_COLUMNS, KERNEL_COLUMNS[level, o, k, t]) for o, k, t in calibration.CELLS}


def _calibrated(run: bool = True, level: str | None = None):
    """The calibration's table at this CPU's level (``level``: ``isa_level()`` already read), or None
    where the table's rule holds: calibration off, a level pinned by hand, no run-time dispatch (the
    compiler's target) or, without ``run``, not calibrated yet."""
    if _level is not None:
        return None
    level = level or isa_level()  # finds _dispatching_core
    if not _dispatching_core:
        return None
    return calibration.table(lambda: static_thresholds(level), level, run)


def thresholds() -> dict:
    """The thresholds "auto" follows now, ``{(order, kind, dtype): columns}``: this machine's
    calibration (measured at the first call of each ISA level, or read from the cache) or the table.

    Raises
    ------
    ValueError
        When FASTLR_CALIBRATION holds anything other than auto or off.
    """
    tab = _calibrated()
    return tab.thresholds if tab is not None else static_thresholds(isa_level())


#: Sparse ``A @ V`` and ``A.T @ W`` (and ``A.T (A V)`` of CSC A, two such passes) run on SciPy
#: when the CSR the kernel runs over holds fewer nonzeros than this a row on average (see the
#: module docstring).
SPARSE_MIN_ROW_NNZ = 4
#: Rows of SPARSE_MIN_ROW_NNZ to fewer than this many nonzeros on average (4-5 a row: 5 lost on five
#: shapes, 6-7 tied or won on three, thirteenth session): at baseline ``A.T (A V)`` of CSR A over
#: them runs on SciPy while V (d x k) takes 3 L3 / 16 (rows of more than
#: 32 bytes; L3 / 4 for narrower rows) to 11 L3 / 16 bytes (``use_sparse_kernel``).
SPARSE_SHORT_ROW_NNZ = 5.5
#: At baseline the scatter pass (CSR ``A.T @ W``, CSC ``A @ V``) over factor rows wider than this
#: (the baseline kernels' compile-time rows, csr_fixed_max) runs on SciPy: past them the kernel walks
#: each Z row as SciPy's loop does, with 16-byte vectors, and tied or lost (``use_sparse_kernel``).
SPARSE_BASELINE_SCATTER_BYTES = 128


def use_sparse_kernel(kind: str, columns: int, fmt: str, shape: tuple[int, int], nnz: int,
                      level: str | None = None, dtype=None) -> bool:
    """Whether a product of sparse A with a ``columns``-wide factor runs on the one-pass kernel
    (else SciPy's product; see the module docstring for the measurements).

    Parameters
    ----------
    kind : {"matmul", "rmatmul", "pass", "gram"}
        ``A @ V``, ``A.T @ W`` (either: "pass") or ``A.T @ (A @ V)`` / ``(A V, A.T A V)`` ("gram").
        GD's ``(A @ V, A.T @ U)`` always runs the kernel, which splits its pass in two from 4 nonzeros
        a row (products_csr.hpp; with that split it beat SciPy at every level on the Zen 2).
    columns : int
        Columns of the factor.
    fmt : {"csr", "csc"}
    shape : (n, d)
        A's shape.
    nnz : int
        A's stored entries.
    level : str, optional
        ISA level (default: this CPU's within the cap, ``isa_level()``).
    dtype : float32 or float64, optional
        A's and the factor's dtype (default float64): the factor's bytes.

    The rule, per product (rows: of the CSR the kernel runs over, A's for CSR input and A^T's for
    CSC; the factor V is d x k; L3 is ``cache_sizes()``'s):

    * one column: SciPy;
    * ``A.T (A V)`` of CSR A (one pass): the kernel, but at baseline SciPy when rows hold
      ``SPARSE_MIN_ROW_NNZ`` to fewer than ``SPARSE_SHORT_ROW_NNZ`` nonzeros on average and V takes
      3 L3 / 16 (L3 / 4 for rows of at most 32 bytes, the kernels' narrow rows) to 11 L3 / 16 bytes:
      the SSE2 pass fetches a factor row per nonzero from L3 and lost to SciPy's two scalar passes
      (Zen 4, 32 MiB L3: 0.53-0.97x from 6 MiB, wins from 18 MiB; Zen 2, 16 MiB L3: 0.66-0.96x at
      4.6-10.6 MB, narrow rows 0.80-0.96x at 4.6-6.1 MB; wins at 12.2 MB);
    * at baseline the scatter pass (CSR ``A.T @ W``, CSC ``A @ V``) over factor rows wider than
      ``SPARSE_BASELINE_SCATTER_BYTES``: SciPy (the same loop; Zen 2: 0.92-1.05x);
    * the rest (``A @ V``, ``A.T @ W``, CSC ``A.T (A V)``): SciPy over rows of fewer than
      ``SPARSE_MIN_ROW_NNZ`` nonzeros on average, else the kernel. ``kind="pass"`` (either
      direction) follows the same rule.
    """
    if kind not in ("matmul", "rmatmul", "pass", "gram"):
        raise ValueError(f"kind: expected 'matmul', 'rmatmul', 'pass' or 'gram', got {kind!r}")
    if fmt not in ("csr", "csc"):
        raise ValueError(f"fmt: expected 'csr' or 'csc', got {fmt!r}")
    if level is not None and level not in LEVELS:
        raise ValueError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if columns < 2:
        return False
    n, d = shape
    rows = n if fmt == "csr" else d  # CSC runs over the CSR of A^T
    short = nnz < SPARSE_MIN_ROW_NNZ * rows
    fewer = not short and nnz < SPARSE_SHORT_ROW_NNZ * rows  # 4 to 5 a row
    row = columns * np.dtype(np.float64 if dtype is None else dtype).itemsize
    if kind == "gram" and fmt == "csr":  # one pass; CSC A runs two, each over A^T's rows
        if fewer and (level or isa_level()) == "baseline":
            l3 = cache_sizes()[1]
            lo = 3 * l3 // 16 if row > 32 else l3 // 4  # rows of 32 bytes: the kernels' narrow rows
            return not lo <= d * row <= 11 * l3 // 16
        return True
    scatter = kind == ("rmatmul" if fmt == "csr" else "matmul")
    if scatter and row > SPARSE_BASELINE_SCATTER_BYTES and (level or isa_level()) == "baseline":
        return False
    return not short


def _but(widths, below: int) -> str:
    """" but 28" for ``describe``: the widths below ``below`` that run BLAS anyway."""
    shown = sorted(w for w in widths if w < below)
    return f" but {', '.join(map(str, shown))}" if shown else ""


def describe() -> str:
    """One line for ``fastlr info``: the mode and, for "auto", the thresholds and where they come from
    (the calibration's cache, or the table). Never measures."""
    try:
        mode = choice_mode()
        tab = _calibrated(run=False)
    except ValueError as exc:
        return f"invalid ({exc})"
    if mode != "auto":
        return f"{mode} (FASTLR_PRODUCT_CHOICE)"
    level = isa_level()
    limits = tab.thresholds if tab is not None else static_thresholds(level)
    l2, l3 = cache_sizes()

    def cols(order, kind):
        a, b = (f"< {x} columns" if x else "never" for x in (limits[order, kind, t] for t in ("float32", "float64")))
        return a if a == b else f"{a} (float32), {b} (float64)"

    if tab is not None and tab.source == "static":
        source = f"the static table ({tab.note})"
    elif tab is not None:
        source = f"measured on this machine (cache {tab.path or 'in memory'})"
    elif _level is not None or not _dispatching_core:
        source = "the static table"
    else:
        source = ("the static table (FASTLR_CALIBRATION=off)" if calibration.mode() == "off" else
                  "the static table until calibrated (at the first dense product, or `fastlr calibrate`)")
    rm = ""
    for t in ("float32", "float64"):  # A^T W alone: RMATMUL_COLUMNS and RMATMUL_BLAS_WIDTHS within "pass"
        cap = min(RMATMUL_COLUMNS.get((level, "C", t), BLAS_MIN_COLUMNS), limits["C", "pass", t])
        widths = RMATMUL_BLAS_WIDTHS.get((level, "C", t), ())
        swapped = tab.layouts.get(t) if tab is not None else None
        if swapped is not None:  # float64's run the kernel where this machine measured NumPy's layout (use_kernel)
            widths = [w for w in widths if w % calibration.LAYOUT_PERIOD in swapped]
        but = _but(widths, cap)
        if cap < limits["C", "pass", t] or but:
            rm += f", its A^T W < {cap} columns{but} ({t})"
    table = static_thresholds(level)
    av = "".join(f", its A V < {c} columns past L3 ({t})" for t in ("float32", "float64")
                 if (c := MATMUL_COLUMNS.get((level, "C", t), 0)) > limits["C", "pass", t] >= table["C", "pass", t])
    short_f = "".join(f" (below {c} columns where A is under twice as tall as wide, {t}; none where A's columns x "
                      f"64 bytes pass L2)" for (lv, kind, t), c in SHORT_F_COLUMNS.items() if lv == level)
    swapped = None if tab is None else tab.layouts.get("float64")
    layout = "" if swapped is None else (
        f"; float64 BLAS A^T W (and F-order A V) from {LAYOUT_MIN_COLUMNS} columns as (W^T A)^T at widths "
        f"{', '.join(map(str, sorted(swapped))) or 'none'} mod {calibration.LAYOUT_PERIOD} (over sums shorter than "
        f"{calibration.LAYOUT_SHAPE[0]} below {LAYOUT_SHORT_COLUMNS} columns), else NumPy's layout")
    vec = "".join(f", fastlr's column passes for {o}-order A of {'2' if c == 3 else f'2-{c - 1}'} columns on one "
                  f"thread ({t})" for (lv, o, t), c in VECTOR_COLUMNS.items() if lv == level and c > 2)

    def said(name, rule, rule_name):  # a calibration decision: (fastlr's route?, where it comes from)
        measured = None if tab is None else tab.decisions.get(name)
        return (level in rule, rule_name) if measured is None else (measured, "measured")

    vector, vector_source = said("vector", VECTOR_LEVELS, "VECTOR_LEVELS")
    narrow, narrow_source = said("narrow", NARROW_LEVELS, "NARROW_LEVELS")
    stream, stream_source = said("one_stream", ONE_STREAM_LEVELS, "ONE_STREAM_LEVELS")
    rows = ("; large A with narrow rows one row at a time" if stream else "; in blocks of rows") if vector else ""
    return (f"auto at {level}, {source}: one-pass kernels for C-order A {cols('C', 'pass')}{av}{rm}, its A^T A V "
            f"{cols('C', 'gram')}; F-order A {cols('F', 'pass')}, its A^T A V {cols('F', 'gram')}{short_f}; "
            f"{'fastlr' if vector else 'BLAS'}'s one-column products on one thread ({vector_source}{rows}"
            f"{f' ({stream_source})' if vector else ''}; BLAS's on more; KERNEL_MIN_COLUMNS){vec}, BLAS otherwise, "
            f"and for wide A whose d x l factor passes L2 "
            f"({l2 >> 10} KiB) and, by its width, part of L3 ({l3 >> 20} MiB; choice.factor_fits){layout}; "
            f"randomized_svd's Krylov finder {'in tile-wide blocks where they pay' if narrow else 'in l-wide blocks'} "
            f"({narrow_source}) (FASTLR_PRODUCT_CHOICE)")
