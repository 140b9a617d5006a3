#!/usr/bin/env python
"""1 vs 2 threads for the dense one-pass kernels and randomized_svd, in both orders, after BLAS.

Each round runs every case at 1 and at 2 threads (fastlr and BLAS limited together),
alternating which goes first (rounds "1->2" and "2->1"), and before each timed call
runs a 2-thread BLAS GEMM (``--before blas``: OpenBLAS's workers then spin for a while,
on the cores fastlr's OpenMP team wants), sleeps (``--before sleep``: every pool idle)
or does nothing (``--before none``). Prints wall-clock min and median per case and
thread count, split by order, and the master thread's CPU time (time.thread_time):
a 2-thread call whose wall time far exceeds it waited for its other thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_threads.py --before blas
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive python bench/bench_threads.py

Try OMP_WAIT_POLICY=active/passive, GOMP_SPINCOUNT and OPENBLAS_THREAD_TIMEOUT in the
environment to tell OpenMP's wake-up and OpenBLAS's spinning apart from the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._matrix import InMemory

KERNEL_CASES = [("matmul", 256, 1080, 20), ("matmul", 1024, 1080, 20), ("matmul", 5760, 1080, 20),
                ("gram_product", 1024, 1080, 20), ("gram_product", 5760, 1080, 20),
                ("gram_product", 100000, 500, 20)]
SVD_CASES = [(5760, 1080, 10)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--before", choices=("blas", "sleep", "none"), default="blas")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-svd", action="store_true")
    ap.add_argument("--operand", action="store_true",
                    help="call the kernels through InMemory (its one-thread rule for small work) instead of _core")
    args = ap.parse_args(argv)
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(0)
    G = rng.standard_normal((400, 400))
    cases = []
    for name, n, d, l in KERNEL_CASES:
        A = rng.standard_normal((n, d)).astype(args.dtype)
        V = rng.standard_normal((d, l)).astype(args.dtype)
        if args.operand:
            call = (lambda f, V: lambda: f(V))(getattr(InMemory.wrap(A), name), V)
        else:
            call = (lambda f, A, V: lambda: f(A, V))(getattr(core, name), A, V)
        cases.append((f"{name} {n}x{d} l={l}", call))
    if not args.no_svd:
        for n, d, k in SVD_CASES:
            A = rng.standard_normal((n, d)).astype(args.dtype)
            cases.append((f"randomized_svd {n}x{d} k={k}",
                          (lambda A, k: lambda: fastlr.randomized_svd(A, k, random_state=0))(A, k)))
    wall = {(c, t, o): [] for c, _ in cases for t in (1, 2) for o in ("1->2", "2->1")}
    cpu = {key: [] for key in wall}

    def before():
        if args.before == "blas":
            with threadpool_limits(limits=2, user_api="blas"):
                G @ G
        elif args.before == "sleep":
            time.sleep(0.05)

    for r in range(args.rounds + 1):
        order = "1->2" if r % 2 == 0 else "2->1"
        for label, call in cases:
            for t in ((1, 2) if order == "1->2" else (2, 1)):
                fastlr.set_num_threads(t)
                with threadpool_limits(limits=t, user_api="blas"):
                    before()
                    w, c = time.perf_counter(), time.thread_time()
                    call()
                    c, w = time.thread_time() - c, time.perf_counter() - w
                if r > 0 or args.rounds == 0:
                    wall[label, t, order].append(w * 1e3)
                    cpu[label, t, order].append(c * 1e3)
    env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    print(f"{'InMemory' if args.operand else '_core'}; env {env}; load {os.getloadavg()[0]:.1f}; "
          f"before each call: {args.before}; dtype {args.dtype}; wall min / median ms, [master CPU median ms]")
    print("| case | order | 1 thread | 2 threads | 2 / 1 (min) | 2 / 1 (median) |")
    print("|---|---|---|---|---|---|")
    for label, _ in cases:
        for o in ("1->2", "2->1"):
            one, two = wall[label, 1, o], wall[label, 2, o]
            m1, m2 = min(one), min(two)
            d1, d2 = statistics.median(one), statistics.median(two)
            c1, c2 = statistics.median(cpu[label, 1, o]), statistics.median(cpu[label, 2, o])
            print(f"| {label} | {o} | {m1:.2f} / {d1:.2f} [{c1:.2f}] | {m2:.2f} / {d2:.2f} [{c2:.2f}] | "
                  f"{m2 / m1:.2f} | {d2 / d1:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
