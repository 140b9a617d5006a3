"""fastlr's dense products, routed as a new user gets them (``InMemory`` and the product choice, calibrated at
first use), against the NumPy expressions they replace, per factor width. One thread, CPU time of this thread,
min over rounds with the order alternating each round; NumPy / fastlr > 1: fastlr faster.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTLR_CACHE_DIR=<fresh> python bench/products_vs_numpy.py \
        ROUNDS WIDTHS KINDS DTYPES [SHAPE] [ISA]
    e.g. ... 5 8,12,16,17,20,24,25,28,32,33,36,40,44,48,56,60,64 times,rtimes,gram,power,gd float32,float64 5760x1080 1

KINDS: times (A @ V), rtimes (A.T @ W), gram (A.T @ (A @ V)), power (``power_pass``: A V and A^T A V), gd
(``gd_products``: A V and A.T @ U). ISA: ``_core._cap_isa`` level (1: x86-64-v3, the default). Each row says which
route the choice took (kernel or BLAS) and flags NumPy / fastlr below 0.99.
"""

import os
import sys

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


def main(argv):
    rounds, widths = int(argv[0]), [int(x) for x in argv[1].split(",")]
    kinds, dtypes = argv[2].split(","), [np.dtype(x) for x in argv[3].split(",")]
    shape = tuple(int(v) for v in (argv[4] if len(argv) > 4 else "5760x1080").split("x"))
    _core._cap_isa(int(argv[5]) if len(argv) > 5 else 1)
    choice.thresholds()  # the calibration (or its cache) before anything is timed
    print(choice.describe(), flush=True)
    rng = np.random.default_rng(0)
    A64 = rng.standard_normal(shape)
    with fastlr.thread_limit(1), threadpool_limits(1):
        for dt in dtypes:
            A = A64.astype(dt)
            op = InMemory(A)
            for kind in kinds:
                for w in widths:
                    V = rng.standard_normal((shape[1], w)).astype(dt)
                    W = rng.standard_normal((shape[0], w)).astype(dt)
                    calls = dict(zip(("fastlr", "numpy"), paths(kind, op, A, V, W)))
                    for call in calls.values():
                        call()
                    best = interleaved_best_ms(calls, rounds, reverse_odd=True)
                    f, n = best["fastlr"], best["numpy"]
                    route = "kernel" if op._kernel_for(ROUTE_KIND[kind], w) else "BLAS  "
                    flag = "  <-- below 0.99" if n / f < 0.99 else ""
                    print(f"{shape[0]}x{shape[1]} {dt.name} {kind:6s} l={w:3d} [{route}]: fastlr {f:.2f} numpy {n:.2f} "
                          f"ms  numpy/fastlr {n / f:.3f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
