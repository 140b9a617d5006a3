"""The depth rule of the block Krylov finder (fastlr/_krylov.py ``krylov_depth``), measured: for each
n_iter and candidate depth q, the worst over seeds and spectra of fastlr's excess error over
scikit-learn's (randomized_svd at the same n_iter), 700 x 600, k = 10.

    python bench/krylov_depth.py --seeds 20

Excess error: (||A - U S Vt|| - ||A - A_k||) / ||A||_F; the ratio adds 1e-13 to both sides (rounding).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd

import fastlr

krylov = sys.modules["fastlr._krylov"]
randomized = sys.modules["fastlr.randomized"]


def spectra(n, d, k):
    i = np.arange(1, min(n, d) + 1.0)
    return {"1/i": 1 / i, "1/sqrt(i)": 1 / np.sqrt(i), "1/i^0.2": i ** -0.2, "0.9^i": 0.9 ** i,
            "1e4:1": np.maximum(np.geomspace(1, 1e-4, i.size), 1e-6),
            "cluster at k": np.where(i < k, 1.0, np.where(i <= k + 15, 0.5 - 1e-3 * (i - k), 0.05)),
            "gap at k": np.where(i <= k, 1.0, np.where(i <= 40, 0.5, 0.01))}


def matrix(n, d, s, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((d, s.size)))[0]
    return (U * s) @ V.T


def worst(A, k, n_iter, call, seeds):
    opt = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
    norm = np.linalg.norm(A)
    return max((np.linalg.norm(A - (U * s) @ Vt) - opt) / norm
               for U, s, Vt in (call(A, k, n_iter=n_iter, random_state=seed) for seed in range(seeds)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n-iter", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7, 10, 15])
    args = parser.parse_args()
    n, d, k = 700, 600, 10
    mats = {name: matrix(n, d, s) for name, s in spectra(n, d, k).items()}
    theirs = {(name, it): worst(A, k, it, sk_randomized_svd, args.seeds) for name, A in mats.items()
              for it in args.n_iter}
    rule = krylov.krylov_depth
    randomized.krylov_applies = lambda *a: True  # measure the finder itself, wherever it would apply
    print("| n_iter | depth q | passes (subspace iteration's) | worst fastlr / scikit-learn (spectrum) | rule's q |")
    print("|---|---|---|---|---|")
    for it in args.n_iter:
        for q in sorted({max(1, it // 2), it // 2 + 1, (it + 3) // 2, math.ceil(math.sqrt(2 * it + 2)), rule(it)}):
            krylov.krylov_depth = lambda _, q=q: q
            ratio, where = max(((worst(A, k, it, fastlr.randomized_svd, args.seeds) + 1e-13)
                                / (theirs[(name, it)] + 1e-13), name) for name, A in mats.items())
            print(f"| {it} | {q} | {2 * q + 1} ({2 * it + 3}) | {ratio:.2f} ({where}) | {rule(it)} |", flush=True)
    krylov.krylov_depth = rule


if __name__ == "__main__":
    main()
