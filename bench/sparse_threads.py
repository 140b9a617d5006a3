"""Sparse A @ V on one thread and on two: the CSR kernel called directly (no work gate) and through
InMemory (fastlr's gate, memory.SPARSE_ENTRY_WORK), wall clock, min over interleaved rounds.

    python bench/sparse_threads.py --rounds 15
"""
import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

import fastlr
from fastlr._matrix import InMemory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sparse_products import random_sparse  # noqa: E402

SHAPES = [(100000, 5000, 1_000_000), (50000, 50000, 250_000), (200000, 200000, 1_000_000), (1_000_000, 500, 500_000)]


def best_ms(call, rounds):
    best = {1: float("inf"), 2: float("inf")}
    for r in range(rounds):
        for t in ((1, 2) if r % 2 else (2, 1)):
            fastlr.set_num_threads(t)
            w = time.perf_counter()
            call()
            best[t] = min(best[t], (time.perf_counter() - w) * 1e3)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ks", default="4,8,16,32")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| A (nonzeros) | k | kernel 1t / 2t ms | InMemory.times 1t / 2t ms |")
    print("|---|---|---|---|")
    for n, d, nnz in SHAPES:
        A = sp.csr_matrix(random_sparse(n, d, nnz, np.float64, rng))
        op = InMemory(A)
        for k in (int(x) for x in args.ks.split(",")):
            V = rng.standard_normal((d, k))
            kernel = best_ms(lambda: op.kernels.matmul_csr(*op.parts, V), args.rounds)
            public = best_ms(lambda: op.times(V), args.rounds)
            print(f"| {n}x{d} ({A.nnz}) | {k} | {kernel[1]:.2f} / {kernel[2]:.2f} | {public[1]:.2f} / {public[2]:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
