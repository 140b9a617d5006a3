"""float64 randomized_svd on the float32 Gram matrix (fastlr/_matrix/memory.py ``_Gram32Steps``) against
the float64 Gram route it replaces and scikit-learn: worst excess error over seeds, per spectrum, and how
often the float32 Gram matrix did not serve (switched to float64's).

    python bench/gram32_accuracy.py --seeds 20
    python bench/gram32_accuracy.py --seeds 20 --shape 2000 500 --k 10

Excess error: (||A - U S Vt|| - ||A - A_k||) / ||A||_F. "old": ``GRAM32_MIN_WORK`` = inf (the float64 Gram
route); the ratio columns add 1e-13 to both sides (rounding).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._krylov import krylov_applies
from fastlr._matrix import memory


def spectra(n, d, k):
    i = np.arange(1, min(n, d) + 1.0)
    top = np.minimum(i, k).astype(int) - 1  # index into a k-long spectrum, its last value beyond k
    return {"1/i": 1 / i, "1/sqrt(i)": 1 / np.sqrt(i), "1/i^0.2": i ** -0.2, "0.9^i": 0.9 ** i,
            "1e4:1": np.maximum(np.geomspace(1, 1e-4, i.size), 1e-6),
            "flat 10:1": np.geomspace(1.0, 0.1, i.size),
            "cluster at k": np.where(i < k, 1.0, np.where(i <= k + 15, 0.5 - 1e-3 * (i - k), 0.05)),
            "gap at k": np.where(i <= k, 1.0, np.where(i <= k + 30, 0.5, 0.01)),
            "1e8:1 over k, noise 1e-10": np.where(i <= k, np.geomspace(1, 1e-8, k)[top], 1e-10),
            "exact rank k, 1e6:1": np.where(i <= k, np.geomspace(1, 1e-6, k)[top], 0.0),
            "exact rank k/2": np.where(i <= k // 2, 1 / i, 0.0),
            "1/i^2": 1 / i ** 2}


def matrix(n, d, s, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((d, s.size)))[0]
    return (U * s) @ V.T


def worst(A, k, call, seeds):
    opt = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
    norm = np.linalg.norm(A)
    return max((np.linalg.norm(A - (U * s) @ Vt) - opt) / norm
               for U, s, Vt in (call(A, k, random_state=seed) for seed in range(seeds)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--shape", type=int, nargs=2, default=[1000, 900])
    args = parser.parse_args()
    (n, d), k = args.shape, args.k
    switches = []
    switch = memory._Gram32Steps._switch
    memory._Gram32Steps._switch = lambda self, V: switches.append(self.calls) or switch(self, V)
    new_work = memory.GRAM32_MIN_WORK

    def old(*a, **kw):
        memory.GRAM32_MIN_WORK = float("inf")
        try:
            return fastlr.randomized_svd(*a, **kw)
        finally:
            memory.GRAM32_MIN_WORK = new_work

    op = memory.InMemory(np.zeros((n, d)))
    n_iter = 7 if k < 0.1 * min(n, d) else 4  # scikit-learn's "auto"
    taken = op._gram32_pays() and op._gram_pays(k + 10, n_iter) and not krylov_applies(op, k + 10, n_iter)
    print(f"{n} x {d} float64, k = {k}, n_iter auto, {args.seeds} seeds; float32 Gram route taken: {taken}")
    print("| spectrum | new | old (float64 Gram) | scikit-learn | new / old | new / scikit-learn "
          "| switched (at step) |")
    print("|---|---|---|---|---|---|---|")
    for name, s in spectra(n, d, k).items():
        A = matrix(n, d, s)
        switches.clear()
        w_new = worst(A, k, fastlr.randomized_svd, args.seeds)
        where = sorted(set(switches))
        count = len(switches)
        w_old = worst(A, k, old, args.seeds)
        w_sk = worst(A, k, sk_randomized_svd, args.seeds)
        print(f"| {name} | {w_new:.2e} | {w_old:.2e} | {w_sk:.2e} | {(w_new + 1e-13) / (w_old + 1e-13):.2f} | "
              f"{(w_new + 1e-13) / (w_sk + 1e-13):.2f} | {count}/{args.seeds} {where} |", flush=True)
    memory._Gram32Steps._switch = switch


if __name__ == "__main__":
    with fastlr.thread_limit(1), threadpool_limits(1):
        sys.exit(main())
