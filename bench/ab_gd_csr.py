#!/usr/bin/env python
"""A/B of the CSR ``gd_products`` kernel ``(A @ V, A.T @ U)``: another build of ``fastlr._core`` against
this one, and SciPy's two products, at each ISA level (``_cap_isa``); single thread, each call's CPU time,
min over interleaved rounds (the order alternates). Build the other revision's extension as
bench/ab_kernels.py says, then

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_gd_csr.py /tmp/other_core/other/_core*.so \\
        --levels 2,1,0 --shapes 50000x50000x5,50000x50000x20 --ks 8,16,33,64

(shapes: rows x columns x nonzeros per row). Both builds' results are compared before timing.
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from ab_kernels import cpu_ms, load_core
from sparse_products import random_sparse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="path of the other build's _core extension file")
    ap.add_argument("--levels", default="2,1,0", help="ISA levels (0 baseline, 1 x86-64-v3, 2 x86-64-v4)")
    ap.add_argument("--shapes", default="50000x50000x5,50000x50000x20")
    ap.add_argument("--ks", default="8,16,33,64")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    other, this = load_core(args.other), fastlr.get_backend("cpp")
    for core in (other, this):
        core.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| A (CSR) | dtype | k | V MiB | level | other ms | this ms | SciPy ms | this / other | SciPy / this |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for shape in args.shapes.split(","):
            n, d, per_row = (int(v) for v in shape.split("x"))
            for dtype in (np.float64, np.float32):
                # not sp.random: with an int seed it draws a permutation of all n d positions (20 GB at 50000^2)
                A = random_sparse(n, d, n * per_row, dtype, rng)
                parts = (A.indptr, A.indices, A.data)
                for k in (int(v) for v in args.ks.split(",")):
                    U = rng.standard_normal((n, k)).astype(dtype)
                    V = rng.standard_normal((d, k)).astype(dtype)
                    for level in (int(v) for v in args.levels.split(",")):
                        other._cap_isa(level)
                        this._cap_isa(level)
                        for a, b in zip(other.gd_products_csr(*parts, U, V), this.gd_products_csr(*parts, U, V)):
                            np.testing.assert_allclose(b, a, rtol=1e-3 if dtype == np.float32 else 1e-9,
                                                       atol=1e-3 * np.abs(a).max())
                        calls = {"other": lambda: other.gd_products_csr(*parts, U, V),
                                 "this": lambda: this.gd_products_csr(*parts, U, V),
                                 "scipy": lambda: (A @ V, A.T @ U)}
                        best = dict.fromkeys(calls, np.inf)
                        for r in range(args.rounds):
                            for label in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                                best[label] = min(best[label], cpu_ms(calls[label]))
                        mib = d * k * np.dtype(dtype).itemsize / 2**20
                        print(f"| {n}x{d}, {per_row} a row | {np.dtype(dtype).name} | {k} | {mib:.1f} | {level} | "
                              f"{best['other']:.1f} | {best['this']:.1f} | {best['scipy']:.1f} | "
                              f"{best['this'] / best['other']:.2f} | {best['scipy'] / best['this']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
