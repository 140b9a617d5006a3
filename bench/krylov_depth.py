"""The depth rule of the block Krylov finder (fastlr/_krylov.py ``krylov_depth``), measured: for each
n_iter and candidate depth q, the worst over seeds and spectra of fastlr's excess error over
scikit-learn's (randomized_svd at the same n_iter and n_oversamples), 700 x 600, k = 10 by default.

    python bench/krylov_depth.py --seeds 20
    python bench/krylov_depth.py --seeds 20 --k 50 --search   # l = k + 10: 1.2x oversampling

``--search`` tries q = 1, 2, ... at each n_iter and stops at the first q whose worst ratio is at
most 1.00 (the space grows with q, so deeper ones do at least as well, up to rounding).

Excess error: (||A - U S Vt|| - ||A - A_k||) / ||A||_F; the ratio adds 1e-13 to both sides (rounding).
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys

import numpy as np
from threadpoolctl import threadpool_limits
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd

import fastlr

krylov = sys.modules["fastlr._krylov"]
randomized = sys.modules["fastlr.randomized"]


def spectra(n, d, k):
    i = np.arange(1, min(n, d) + 1.0)
    return {"1/i": 1 / i, "1/sqrt(i)": 1 / np.sqrt(i), "1/i^0.2": i ** -0.2, "0.9^i": 0.9 ** i,
            "1e4:1": np.maximum(np.geomspace(1, 1e-4, i.size), 1e-6),
            "cluster at k": np.where(i < k, 1.0, np.where(i <= k + 15, 0.5 - 1e-3 * (i - k), 0.05)),
            "gap at k": np.where(i <= k, 1.0, np.where(i <= k + 30, 0.5, 0.01))}


def matrix(n, d, s, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((d, s.size)))[0]
    return (U * s) @ V.T


def worst(A, k, p, n_iter, call, seeds):
    opt = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
    norm = np.linalg.norm(A)
    return max((np.linalg.norm(A - (U * s) @ Vt) - opt) / norm
               for U, s, Vt in (call(A, k, n_oversamples=p, n_iter=n_iter, random_state=seed)
                                for seed in range(seeds)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-iter", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7, 10, 15])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--oversamples", type=int, default=10, help="n_oversamples p (l = k + p)")
    parser.add_argument("--shape", type=int, nargs=2, default=[700, 600])
    parser.add_argument("--search", action="store_true", help="q = 1, 2, ... up to the first that passes")
    args = parser.parse_args()
    (n, d), k, p = args.shape, args.k, args.oversamples
    mats = {name: matrix(n, d, s) for name, s in spectra(n, d, k).items()}
    rule = krylov.krylov_depth
    params = inspect.signature(rule).parameters
    rule_q = (lambda it: rule(it, k, k + p)) if len(params) > 1 else rule
    randomized.krylov_applies = lambda *a: True  # measure the finder itself, wherever it would apply
    print(f"{n} x {d}, k = {k}, l = {k + p}, {args.seeds} seeds")
    print("| n_iter | depth q | passes (subspace iteration's) | worst fastlr / scikit-learn (spectrum) | rule's q |")
    print("|---|---|---|---|---|")
    for it in args.n_iter:
        theirs = {name: worst(A, k, p, it, sk_randomized_svd, args.seeds) for name, A in mats.items()}
        if args.search:
            depths = range(1, 4 * it + 8)
        else:
            depths = sorted({max(1, it // 2), it // 2 + 1, (it + 3) // 2, math.ceil(math.sqrt(2 * it + 2)),
                             rule_q(it)})
        for q in depths:
            krylov.krylov_depth = lambda *_, q=q: q
            ratio, where = max(((worst(A, k, p, it, fastlr.randomized_svd, args.seeds) + 1e-13)
                                / (theirs[name] + 1e-13), name) for name, A in mats.items())
            print(f"| {it} | {q} | {2 * q + 1} ({2 * it + 3}) | {ratio:.2f} ({where}) | {rule_q(it)} |", flush=True)
            if args.search and ratio <= 1.0:
                break
    krylov.krylov_depth = rule


if __name__ == "__main__":
    with fastlr.thread_limit(1), threadpool_limits(1):  # a busy machine: no spinning second thread
        main()
