#!/usr/bin/env python
"""Fused vs two-pass CSR ``A^T (A V)`` / power / ``gd_products`` on this machine, and SciPy's products.

The CSR kernel splits its fused pass in two when V (d x k) takes L3 / 4 (3 L3 / 16 at baseline past 32-byte rows) to
24 MiB and A holds 4 or more nonzeros a row (products_csr.hpp, ``csr_split_passes``); the L3 size
comes from ``_core._set_cache_sizes``. This script forces either side by telling the kernel a fitting
L3 size (split: L3 = 4 V bytes, V at the band's low end; fused: L3 = 8 V bytes, V under it). Where
the padded width equals k (float64 k % 4 == 0, float32 k % 8 == 0 from 9 columns on) one thread
accumulates in Z itself either way; at other widths the fused side may use the padded Z buffer (its
bound is L3 / 4). ``--other-l3 MiB`` times this CPU's L3 against another instead (32: Zen 4's, where the
bounds were first measured). Single thread, CPU time, min over rounds in a fresh random order each round:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/csr_split_ab.py --shapes 50000x50000x20 \\
        --dtypes float64 --ks 8,12,16,20,24,32 --levels 1,0
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from ab_kernels import cpu_ms
from sparse_products import random_sparse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="50000x50000x20,50000x50000x5", help="rows x columns x nonzeros drawn a row (duplicates summed: 5 draws a row give fewer than 5 nonzeros)")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--ks", default="8,16,24,32")
    ap.add_argument("--levels", default="1,0", help="ISA caps (0 baseline, 1 x86-64-v3, 2 x86-64-v4)")
    ap.add_argument("--products", default="gram,gd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--other-l3", type=float, default=0,
                    help="MiB: instead of fused vs split, this CPU's L3 size vs this one told to the kernel "
                         "(32: the bounds as on Zen 4, where they were measured)")
    args = ap.parse_args(argv)
    core = fastlr.get_backend("cpp")
    core.set_num_threads(1)
    l2, l3 = core._set_cache_sizes(1, 1)
    core._set_cache_sizes(l2, l3)
    rng = np.random.default_rng(0)
    order = random.Random(0)
    print(f"# L2 {l2 >> 10} KiB, L3 {l3 >> 20} MiB (this CPU); 1 thread; thread_time min of {args.rounds} rounds")
    heads = ("this L3", f"L3 {args.other_l3:g} MiB") if args.other_l3 else ("fused", "split")
    print(f"| A (CSR) | dtype | k | V MiB | product | level | {heads[0]} ms | {heads[1]} ms | SciPy ms "
          f"| {heads[0]} / {heads[1]} | SciPy / best | now |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for shape in args.shapes.split(","):
            n, d, per_row = shape.split("x")
            n, d, per_row = int(n), int(d), float(per_row)
            for dtype in (np.dtype(t) for t in args.dtypes.split(",")):
                A = random_sparse(n, d, int(n * per_row), dtype, rng)
                parts = (A.indptr, A.indices, A.data)
                for k in (int(v) for v in args.ks.split(",")):
                    U = rng.standard_normal((n, k)).astype(dtype)
                    V = rng.standard_normal((d, k)).astype(dtype)
                    vbytes = d * k * dtype.itemsize
                    for product in args.products.split(","):
                        if product == "gram":
                            kern, ref = (lambda: core.gram_product_csr(*parts, V)), (lambda: A.T @ (A @ V))
                        elif product == "power":
                            kern, ref = (lambda: core.power_step_csr(*parts, V)), (lambda: (lambda Y: A.T @ Y)(A @ V))
                        elif product == "rmatmul":
                            kern, ref = (lambda: core.rmatmul_csr(*parts, U, d)), (lambda: A.T @ U)
                        else:
                            kern, ref = (lambda: core.gd_products_csr(*parts, U, V)), (lambda: (A @ V, A.T @ U))
                        for level in (int(v) for v in args.levels.split(",")):
                            core._cap_isa(level)
                            sizes = {"fused": (l2, 8 * vbytes), "split": (l2, 4 * vbytes)}
                            if args.other_l3:
                                sizes = {"fused": (l2, l3), "split": (l2, int(args.other_l3 * 2**20))}

                            def run(label, kern=kern):
                                core._set_cache_sizes(*sizes[label])
                                try:
                                    return cpu_ms(kern)
                                finally:
                                    core._set_cache_sizes(l2, l3)

                            calls = {"fused": lambda: run("fused"), "split": lambda: run("split"),
                                     "scipy": lambda: cpu_ms(ref)}
                            best = dict.fromkeys(calls, np.inf)
                            for r in range(args.rounds + 1):
                                labels = list(calls)
                                order.shuffle(labels)
                                for label in labels:
                                    t = calls[label]()
                                    if r:
                                        best[label] = min(best[label], t)
                            lo = 3 * l3 // 16 if level == 0 and k * dtype.itemsize > 32 else l3 // 4
                            now = "split" if product != "rmatmul" and A.nnz >= 4 * n and lo <= vbytes <= 24 << 20 else "fused"
                            print(f"| {n}x{d}, {A.nnz / n:.2f} a row | {dtype.name} | {k} | {vbytes / 2**20:.1f} | {product} "
                                  f"| {('baseline', 'v3', 'v4')[level]} | {best['fused']:.2f} | {best['split']:.2f} "
                                  f"| {best['scipy']:.2f} | {best['fused'] / best['split']:.2f} "
                                  f"| {best['scipy'] / min(best['fused'], best['split']):.2f} | {now} |", flush=True)
    core._cap_isa(2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
