"""Sparse products on one thread and on two, wall clock, min over interleaved rounds: CSR A @ V by the
kernel called directly (no work gate), and InMemory's times (gathers), rtimes (scatters) and
gram_product through fastlr's gate (memory.SPARSE_ENTRY_WORK) and route.

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
    print("| A (nonzeros) | k | kernel A @ V 1t / 2t ms | times | rtimes | gram_product |")
    print("|---|---|---|---|---|---|")
    for n, d, nnz in SHAPES:
        A = sp.csr_matrix(random_sparse(n, d, nnz, np.float64, rng))
        op = InMemory(A)
        for k in (int(x) for x in args.ks.split(",")):
            V, W = rng.standard_normal((d, k)), rng.standard_normal((n, k))
            calls = [lambda: op.kernels.matmul_csr(*op.parts, V), lambda: op.times(V), lambda: op.rtimes(W),
                     lambda: op.gram_product(V)]
            cells = [best_ms(call, args.rounds) for call in calls]
            print(f"| {n}x{d} ({A.nnz}) | {k} | " + " | ".join(f"{c[1]:.2f} / {c[2]:.2f}" for c in cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
