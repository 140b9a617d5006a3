#!/usr/bin/env python
"""How much the call before a CSR kernel call sets its time: ``A.T @ W`` (``rmatmul_csr``) right after
the same kernel call, and right after SciPy's ``A.T @ W``, at each ISA cap (``_cap_isa``); single
thread, each call's CPU time (``time.thread_time``), min over rounds, the cases interleaved:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python bench/csr_call_order.py \\
        --shape 200000x200000x5 --cases float64:3,float32:5

x86-64-v3 and x86-64-v4 run the same CSR code (products_csr.hpp: 32-byte vectors at both), so the
two levels' columns differ by noise only; the "after SciPy" columns show what a bench whose order
keeps each call's predecessor fixed charges to one of them.
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from ab_kernels import cpu_ms
from sparse_products import random_sparse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="200000x200000x5", help="rows x columns x nonzeros per row")
    ap.add_argument("--cases", default="float64:3,float32:5", help="dtype:k, comma-separated")
    ap.add_argument("--levels", default="2,1")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    core = fastlr.get_backend("cpp")
    core.set_num_threads(1)
    n, d, per_row = (int(v) for v in args.shape.split("x"))
    rng = np.random.default_rng(0)
    levels = [int(v) for v in args.levels.split(",")]
    print("| dtype | k | " + " | ".join(f"after kernel L{lv} | after SciPy L{lv}" for lv in levels) + " | SciPy |")
    print("|---" * (3 + 2 * len(levels)) + "|")
    with threadpool_limits(1):
        for case in args.cases.split(","):
            dtype, k = case.split(":")
            k = int(k)
            A = random_sparse(n, d, n * per_row, dtype, rng)
            parts = (A.indptr, A.indices, A.data)
            W = rng.standard_normal((n, k)).astype(dtype)
            kernel = lambda: core.rmatmul_csr(*parts, W, d)  # noqa: E731
            scipy_ = lambda: A.T @ W  # noqa: E731
            keys = [(lv, before) for lv in levels for before in ("kernel", "scipy")]
            best = dict.fromkeys(keys + ["scipy"], np.inf)
            for r in range(args.rounds + 1):  # the first round warms up
                for q in rng.permutation(len(keys)):
                    lv, before = keys[q]
                    core._cap_isa(lv)
                    (kernel if before == "kernel" else scipy_)()
                    t = cpu_ms(kernel)
                    if r:
                        best[lv, before] = min(best[lv, before], t)
                    t = cpu_ms(scipy_)
                    if r:
                        best["scipy"] = min(best["scipy"], t)
            cells = " | ".join(f"{best[lv, 'kernel']:.2f} | {best[lv, 'scipy']:.2f}" for lv in levels)
            print(f"| {dtype} | {k} | {cells} | {best['scipy']:.2f} |", flush=True)
    core._cap_isa(2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
