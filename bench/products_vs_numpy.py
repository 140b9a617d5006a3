"""fastlr's dense products, routed as a new user gets them (``InMemory`` and the product choice, calibrated at
first use), against the NumPy expressions they replace, per factor width. One thread, CPU time of this thread,
min over rounds with the order rotating each round; NumPy / fastlr > 1: fastlr faster. Each round also times
NumPy's expression a second time ("A/A"): NumPy / NumPy is the run's noise, the spread a loss must exceed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTLR_CACHE_DIR=<fresh> python bench/products_vs_numpy.py \
        ROUNDS WIDTHS KINDS DTYPES [SHAPES] [ISA] [ORDERS]
    e.g. ... 5 8,12,16,17,20,24,25,28,32,33,36,40,44,48,56,60,64 times,rtimes,gram,power,gd float32,float64 5760x1080 1
    or   ... 3 1-70,72,80,96,112,128 times,rtimes,gram,power,gd float32,float64 5760x1080,1080x5760 1 C,F

WIDTHS: comma-separated widths or ranges (``1-70``). KINDS: times (A @ V), rtimes (A.T @ W), gram (A.T @ (A @ V)),
power (``power_pass``: A V and A^T A V), gd (``gd_products``: A V and A.T @ U). SHAPES: comma-separated, default
5760x1080. ISA: ``_core._cap_isa`` level (1: x86-64-v3, the default). ORDERS: A's memory order, C (default) and/or F.
Each row says which route the choice took (kernel, vector: fastlr's one-column products, or BLAS), NumPy / fastlr
and NumPy / NumPy (A/A), and flags NumPy / fastlr below 0.99. The losses past the A/A spread, from such runs' output
(the spread: the 95th percentile of |1 - A/A| over each file's rows of one shape, dtype and order):

    python bench/products_vs_numpy.py losses FILE [FILE ...]
"""

import os
import re
import sys
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import interleaved_best_ms  # noqa: E402

ROUTE_KIND = {"times": "matmul", "rtimes": "rmatmul", "gram": "gram", "power": "gram", "gd": "gd"}


def paths(kind, op, A, V, W):
    """(fastlr's call, NumPy's expression) for one kind."""
    if kind == "times":
        return lambda: op.times(V), lambda: A @ V
    if kind == "rtimes":
        return lambda: op.rtimes(W), lambda: A.T @ W
    if kind == "gram":
        return lambda: op.gram_product(V), lambda: A.T @ (A @ V)
    if kind == "power":
        def numpy_power():
            P = A @ V
            return P, A.T @ P
        return lambda: op.power_pass(V), numpy_power
    if kind == "gd":
        return lambda: op.gd_products(W, V), lambda: (A @ V, A.T @ W)
    raise ValueError(f"unknown kind {kind!r}")


def parse_widths(text: str) -> list[int]:
    """``"1-4,8"`` -> [1, 2, 3, 4, 8]."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


ROW = re.compile(r"^(\d+x\d+) (\w+) ([CF]) (\w+) +l= *(\d+) \[(\w+) *\]: fastlr ([\d.]+) numpy ([\d.]+) ms +"
                 r"numpy/fastlr ([\d.]+) A/A ([\d.]+)")


def losses(files) -> int:
    """Prints, per file and (shape, dtype, order), the A/A spread and the rows where NumPy / fastlr is below
    1 - spread, then a line per (shape, product) with its losses' count and range."""
    for path in files:
        groups = defaultdict(list)
        with open(path) as f:
            for line in f:
                m = ROW.match(line)
                if m:
                    shape, dt, order, kind, w, route, fl, nu, ratio, aa = m.groups()
                    groups[shape, dt, order].append((kind, int(w), route, *map(float, (fl, nu, ratio, aa))))
        print(f"== {path}")
        summary = defaultdict(list)
        for (shape, dt, order), rows in groups.items():
            spread = float(np.quantile([abs(1 - r[6]) for r in rows], 0.95))
            lost = [r for r in rows if r[5] < 1 - spread]
            print(f"{shape} {dt} {order}: {len(rows)} rows, A/A spread {spread:.3f}, "
                  f"{len(lost)} below {1 - spread:.3f}")
            for kind, w, route, fl, nu, ratio, aa in lost:
                print(f"   {kind:6s} l={w:3d} [{route}] fastlr {fl:.2f} numpy {nu:.2f} ms  {ratio:.3f} (A/A {aa:.3f})")
                summary[shape, kind].append((ratio, f"{dt[5:]}{order} {w}"))
        for (shape, kind), cells in sorted(summary.items()):
            lo, hi = min(c[0] for c in cells), max(c[0] for c in cells)
            print(f"{shape} {kind:6s}: {len(cells)} losses, {lo:.3f}-{hi:.3f}: {', '.join(c[1] for c in cells)}")
    return 0


def main(argv):
    if argv[0] == "losses":
        return losses(argv[1:])
    rounds, widths = int(argv[0]), parse_widths(argv[1])
    kinds, dtypes = argv[2].split(","), [np.dtype(x) for x in argv[3].split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in (argv[4] if len(argv) > 4 else "5760x1080").split(",")]
    _core._cap_isa(int(argv[5]) if len(argv) > 5 else 1)
    orders = (argv[6] if len(argv) > 6 else "C").split(",")
    choice.thresholds()  # the calibration (or its cache) before anything is timed
    print(choice.describe(), flush=True)
    rng = np.random.default_rng(0)
    with fastlr.thread_limit(1), threadpool_limits(1):
        for shape in shapes:
            A64 = rng.standard_normal(shape)
            for dt in dtypes:
                for order in orders:
                    A = np.asarray(A64.astype(dt), order=order)
                    op = InMemory(A)
                    for kind in kinds:
                        for w in widths:
                            V = rng.standard_normal((shape[1], w)).astype(dt)
                            W = rng.standard_normal((shape[0], w)).astype(dt)
                            ours, theirs = paths(kind, op, A, V, W)
                            calls = {"fastlr": ours, "numpy": theirs, "numpy2": theirs}
                            for call in calls.values():
                                call()
                            best = interleaved_best_ms(calls, rounds, rotate=True)
                            f, n, n2 = best["fastlr"], best["numpy"], best["numpy2"]
                            taken = op._route(ROUTE_KIND[kind], w, 1)
                            route = "kernel" if taken[0] else "vector" if taken[3] is not None else "BLAS  "
                            flag = "  <-- below 0.99" if n / f < 0.99 else ""
                            print(f"{shape[0]}x{shape[1]} {dt.name} {order} {kind:6s} l={w:3d} [{route}]: fastlr "
                                  f"{f:.2f} numpy {n:.2f} ms  numpy/fastlr {n / f:.3f} A/A {n / n2:.3f}{flag}",
                                  flush=True)
        del A64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
