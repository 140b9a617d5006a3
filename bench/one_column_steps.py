"""Where a one-column dense ``A @ v`` / ``A.T @ w`` spends its time besides the GEMV: each step of ``InMemory.times`` /
``rtimes``' BLAS route (a replica: the thread count, the route's memo, the factor's dtype and layout, the BLAS thread
count and its check, the GEMV by NumPy's matmul, the result's layout) timed on its own, CPU time of this thread
(``thread_time_ns``, the stamp's own cost subtracted), each replica call right after NumPy's GEMV on the same A as in
``products_vs_numpy.py``'s rounds; and NumPy's ``A @ v`` / ``A.T @ w`` and fastlr's call as a whole (whatever route it
takes: the column passes at x86-64-v3 and v4 on one thread). Medians over ROUNDS; one thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/one_column_steps.py [ROUNDS [SHAPES [ORDERS [ISA]]]]
    e.g. ... 41 5760x1080,100000x200,2000x1000 C,F 2

ISA: ``_core._cap_isa`` level (2: x86-64-v4, the default). bench/README.md, twenty-second session, HV: right after
a GEMV has flushed the caches each Python step took 1-8 us, the route's Python 35-80 us on 5760 x 1080 and
100000 x 200 (3-7% of the GEMV).
"""
import sys

import numpy as np
from threadpoolctl import threadpool_limits
import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice
from fastlr._linalg import _libraries
from fastlr._kernels._threads_state import get_num_threads
from time import thread_time_ns as clk

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 41
shapes = [tuple(map(int, s.split("x"))) for s in (sys.argv[2] if len(sys.argv) > 2 else "5760x1080,100000x200,2000x1000").split(",")]
orders = (sys.argv[3] if len(sys.argv) > 3 else "C").split(",")
_core._cap_isa(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
choice.thresholds()
stamp = min(-(clk() - clk()) for _ in range(1000))


def replica(op, F, kind):
    t = [clk()]
    threads = get_num_threads()
    t.append(clk())
    kernel, swap1, swap2, vector = op._route(kind, F.shape[1], threads)
    t.append(clk())
    F = np.ascontiguousarray(F, dtype=op.dtype)
    t.append(clk())
    n = op._blas_count(F.shape[1], threads)
    t.append(clk())
    for _, threads_of in _libraries():
        threads_of() != n
    t.append(clk())
    M = op.A if kind == "matmul" else op.A.T
    t.append(clk())
    P = M @ F if not (swap1 if kind == "matmul" else swap2) else (F.T @ M.T).T
    t.append(clk())
    P = np.ascontiguousarray(P)
    t.append(clk())
    return np.diff(t) - stamp


names = ["get_num_threads", "_route", "ascontig(F)", "_blas_count", "blas_call check", "M=A/A.T", "GEMV", "ascontig(P)"]
with fastlr.thread_limit(1), threadpool_limits(1):
    rng = np.random.default_rng(0)
    for shape in shapes:
        A64 = rng.standard_normal(shape)
        for dt in (np.float32, np.float64):
            for order in orders:
                A = np.asarray(A64.astype(dt), order=order)
                op = InMemory(A)
                for kind in ("matmul", "rmatmul"):
                    F = rng.standard_normal((shape[1] if kind == "matmul" else shape[0], 1)).astype(dt)
                    M = A if kind == "matmul" else A.T
                    rows, bare, full = [], [], []
                    for r in range(rounds):
                        M @ F
                        rows.append(replica(op, F, kind))
                        M @ F
                        s = clk(); M @ F; bare.append(clk() - s - stamp)
                        M @ F
                        s = clk(); (op.times(F) if kind == "matmul" else op.rtimes(F)); full.append(clk() - s - stamp)
                    med = np.median(np.array(rows), axis=0) / 1e3
                    b, f = np.median(bare) / 1e3, np.median(full) / 1e3
                    print(f"{shape[0]}x{shape[1]} {np.dtype(dt).name} {order} {kind:7s}: numpy {b:8.1f} us, fastlr {f:8.1f} "
                          f"(+{f - b:6.1f}); replica steps: " + ", ".join(f"{n} {m:.1f}" for n, m in zip(names, med)),
                          flush=True)
