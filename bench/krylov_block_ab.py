"""The Krylov finder's block width at x86-64-v3 (fastlr/_krylov.py ``krylov_block``), measured against
the l-wide blocks it replaces (the rule switched off in this process) and scikit-learn, float32.

    FASTLR_CACHE_DIR=<dir> env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/krylov_block_ab.py --time
    python bench/krylov_block_ab.py --accuracy --seeds 4

``--time``: randomized_svd(k = 10) CPU time, one thread, min over interleaved rounds, on bench_svd's
5760 x 1080 (sigma_i = 1/i) and its transpose. ``--accuracy``: the worst excess error over seeds,
``(||A - U S Vt|| - ||A - A_k||) / ||A||_F`` against the float32 matrix's own optimum, on
bench/krylov_depth.py's spectra (1500 x 800 and 3000 x 1000, k = 7 and 10, n_iter 2, 4, 7, 10).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from sklearn.utils.extmath import randomized_svd as sk_randomized_svd
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import choice

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import interleaved_best_ms  # noqa: E402
from bench_svd import _make  # noqa: E402
from krylov_depth import matrix, spectra  # noqa: E402

krylov = sys.modules["fastlr._krylov"]
RULE = krylov.krylov_block


def _l_wide(op, k, l, n_iter):
    return l, krylov.krylov_depth(n_iter)


def _with_rule(rule, f):
    krylov.krylov_block = rule
    try:
        return f()
    finally:
        krylov.krylov_block = RULE


def time_rows(rounds: int) -> None:
    print("| matrix | scikit-learn ms | l-wide blocks ms | 16-wide blocks ms | ratio before -> after |\n|---|---|---|---|---|")
    A0 = _make("dense5760x1080")[0].astype(np.float32)
    for A in (A0, np.ascontiguousarray(A0.T)):
        calls = {"sklearn": lambda: sk_randomized_svd(A, 10, random_state=0),
                 "old": lambda: _with_rule(_l_wide, lambda: fastlr.randomized_svd(A, 10, random_state=0)),
                 "new": lambda: fastlr.randomized_svd(A, 10, random_state=0)}
        best = interleaved_best_ms(calls, rounds)
        s, o, n = (best[m] for m in ("sklearn", "old", "new"))
        print(f"| {A.shape[0]}x{A.shape[1]} | {s:.1f} | {o:.1f} | {n:.1f} | {s / o:.2f}x -> {s / n:.2f}x |", flush=True)


def _excess(A64, opt, norm, factors):
    U, s, Vt = (np.asarray(x, dtype=np.float64) for x in factors)
    return (np.linalg.norm(A64 - (U * s) @ Vt) - opt) / norm


def accuracy_rows(seeds: int) -> None:
    print("| shape | spectrum | k | n_iter | 16-wide | l-wide | scikit-learn |\n|---|---|---|---|---|---|---|")
    for n, d in ((1500, 800), (3000, 1000)):
        for name, s in spectra(n, d, 10).items():
            A = matrix(n, d, s).astype(np.float32)
            A64 = A.astype(np.float64)
            sv, norm = np.linalg.svd(A64, compute_uv=False), np.linalg.norm(A64)
            for k in (7, 10):
                opt = np.sqrt(np.sum(sv[k:] ** 2))
                for n_iter in (2, 4, 7, 10):
                    def worst(svd):
                        return max(_excess(A64, opt, norm, svd(A, k, n_iter=n_iter, random_state=seed))
                                   for seed in range(seeds))
                    new = worst(fastlr.randomized_svd)
                    old = _with_rule(_l_wide, lambda: worst(fastlr.randomized_svd))
                    print(f"| {n}x{d} | {name} | {k} | {n_iter} | {new:.2e} | {old:.2e} | "
                          f"{worst(sk_randomized_svd):.2e} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    _core._cap_isa(1)
    if _core.build_info()["kernel_isa"] != "x86-64-v3":
        print("no x86-64-v3 kernels here: the rule does not apply")
        return 1
    choice.thresholds()  # the product choice of that level (calibrated at first use), before timing
    with fastlr.thread_limit(1), threadpool_limits(1):
        if args.time:
            time_rows(args.rounds)
        if args.accuracy:
            accuracy_rows(args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
