"""The Krylov finder's narrow blocks at x86-64-v3 (fastlr/_krylov.py ``krylov_block``, sixteenth session): float32
on the Gram route (16-column blocks, judged by ``_NarrowWatch``) and float64 l = 17-20
(two 8-column tiles), against the routes they replace (switched off in this process) and scikit-learn.

    FASTLR_CACHE_DIR=<dir> env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/krylov_narrow_ab.py --time
    FASTLR_CACHE_DIR=<dir> env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/krylov_narrow_ab.py --spectra
    python bench/krylov_narrow_ab.py --accuracy --seeds 4 [--shape 5760x1080]

``--time``: CPU time, one thread, min over interleaved rounds: bench_svd's 5760 x 1080 (sigma_i = 1/i) float32
k = 50 (narrow vs the Gram route) and float64 k = 10 (16 vs 20 columns). ``--accuracy``: float32 k = 50, the worst
excess ``||A - U S Vt|| / ||A - A_k|| - 1`` over seeds on krylov_depth.py's spectra and more, with how many seeds
kept the narrow result. ``--spectra``: float32 k = 50 on 5760 x 1080 by spectrum (kept, deepened, refused early
or late: seventeenth session), CPU ms against the Gram route and scikit-learn, worst excess of 2 seeds.
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
from bench_svd import _make, _sqnorm, excess_error  # noqa: E402
from krylov_depth import matrix, spectra  # noqa: E402

krylov = sys.modules["fastlr._krylov"]
RULE = krylov.krylov_block


def _without_narrow(f):
    """f() with the narrow rules off: the Gram route for float32, l-wide blocks for float64."""
    def rule(op, k, l, n_iter):
        b, q = RULE(op, k, l, n_iter)
        return (l, krylov.krylov_depth(n_iter)) if op.dtype == np.float64 else (b, q)

    share, krylov.NARROW_SHARE, krylov.krylov_block = krylov.NARROW_SHARE, 0.0, rule
    try:
        return f()
    finally:
        krylov.NARROW_SHARE, krylov.krylov_block = share, RULE


def time_rows(rounds: int) -> None:
    print("| row | scikit-learn ms | before ms | after ms | ratio before -> after | excess (worst of 3) before / after / sklearn |")
    print("|---|---|---|---|---|---|")
    A64, s_exact = _make("dense5760x1080")
    for dtype, k in ((np.float32, 50), (np.float64, 10)):
        A = A64.astype(dtype)
        sq = _sqnorm(A)
        calls = {"sklearn": lambda s=0: sk_randomized_svd(A, k, random_state=s),
                 "before": lambda s=0: _without_narrow(lambda: fastlr.randomized_svd(A, k, random_state=s)),
                 "after": lambda s=0: fastlr.randomized_svd(A, k, random_state=s)}
        best = interleaved_best_ms(calls, rounds)
        err = {m: max(excess_error(A, sq, s_exact, k, *c(s)) for s in range(3)) for m, c in calls.items()}
        s, o, n = (best[m] for m in ("sklearn", "before", "after"))
        print(f"| 5760x1080 {np.dtype(dtype).name} k={k} | {s:.1f} | {o:.1f} | {n:.1f} | {s / o:.2f}x -> {s / n:.2f}x | "
              f"{err['before']:.2e} / {err['after']:.2e} / {err['sklearn']:.2e} |", flush=True)


def spectrum_rows(rounds: int, seeds: int = 2, shape: str = "5760x1080", k: int = 50) -> None:
    print("| float32 k=50 spectrum | scikit-learn ms | Gram route ms | narrow ms | kept | worst excess sklearn / Gram / narrow |")
    print("|---|---|---|---|---|---|")
    n, d = map(int, shape.split("x"))
    i = np.arange(1, d + 1.0)
    rows = {"1/i": 1 / i, "10:1 geometric": np.geomspace(1, 0.1, d), "1/sqrt(i)": i ** -0.5, "1/i^0.7": i ** -0.7,
            "1/i^1.5": i ** -1.5, "0.9^i": 0.9 ** i, "exp(-sqrt i)": np.exp(-np.sqrt(i)), "1/i^0.2": i ** -0.2,
            "1e4:1": np.maximum(np.geomspace(1, 1e-4, d), 1e-6),
            "cluster at k": np.where(i < k, 1.0, np.where(i <= k + 15, 0.5 - 1e-3 * (i - k), 0.05))}
    factors = krylov.krylov_factors
    for name, s in rows.items():
        A = matrix(n, d, s).astype(np.float32)
        A64 = A.astype(np.float64)
        opt = max(float(np.sqrt(np.sum(np.linalg.svd(A64, compute_uv=False)[k:] ** 2))), 1e-30)
        calls = {"sklearn": lambda s=0: sk_randomized_svd(A, k, random_state=s),
                 "gram": lambda s=0: _without_narrow(lambda: fastlr.randomized_svd(A, k, random_state=s)),
                 "narrow": lambda s=0: fastlr.randomized_svd(A, k, random_state=s)}
        best = interleaved_best_ms(calls, rounds)
        kept = []

        def record(*a):
            f = factors(*a)
            kept.append(f is not None)
            return f

        sys.modules["fastlr.randomized"].krylov_factors = record
        try:
            err = {m: max(np.linalg.norm(A64 - (np.asarray(U, np.float64) * S) @ np.asarray(Vt, np.float64)) / opt - 1
                          for U, S, Vt in (c(seed) for seed in range(seeds))) for m, c in calls.items()}
        finally:
            sys.modules["fastlr.randomized"].krylov_factors = factors
        print(f"| {name} | {best['sklearn']:.1f} | {best['gram']:.1f} | {best['narrow']:.1f} | {sum(kept)}/{seeds} | "
              f"{err['sklearn']:.2e} / {err['gram']:.2e} / {err['narrow']:.2e} |", flush=True)


def more_spectra(d: int, k: int) -> dict:
    i = np.arange(1, d + 1.0)
    return {"10:1 geometric": np.geomspace(1, 0.1, d), "1/i^0.7": i ** -0.7, "1/i^1.5": i ** -1.5,
            "0.95^i": 0.95 ** i, "1/i + 1e-2": 1 / i + 1e-2, "staircase of 8": 1.0 / (1 + (i - 1) // 8),
            "30 within 0.1% across k": np.where(i < k - 10, 1 / i, np.where(
                i <= k + 20, 1 / (k - 10) * (1 - 1e-3 * (i - k + 10) / 30), 0.5 / i)),
            "20 equal, then 1/i": np.where(i <= 20, 1.0, 0.9 / np.maximum(i - 19, 1)),
            "flat rank k": np.where(i <= k, 1.0, 0.0), "exp(-sqrt i)": np.exp(-np.sqrt(i)), "1/i^2": i ** -2.0,
            "0.85^i": 0.85 ** i}


def accuracy_rows(seeds: int, shape: str, k: int = 50) -> None:
    print("| spectrum | narrow kept | worst excess | Gram route | scikit-learn |\n|---|---|---|---|---|")
    n, d = map(int, shape.split("x"))
    factors = krylov.krylov_factors
    for name, s in {**spectra(n, d, k), **more_spectra(d, k)}.items():
        A = matrix(n, d, s).astype(np.float32)
        A64 = A.astype(np.float64)
        opt = max(float(np.sqrt(np.sum(np.linalg.svd(A64, compute_uv=False)[k:] ** 2))), 1e-30)
        kept = []

        def record(*a):
            f = factors(*a)
            kept.append(f is not None)
            return f

        def worst(svd):
            return max(np.linalg.norm(A64 - (np.asarray(U, np.float64) * S) @ np.asarray(Vt, np.float64)) / opt - 1
                       for U, S, Vt in (svd(A, k, random_state=seed) for seed in range(seeds)))

        krylov.krylov_factors = record
        sys.modules["fastlr.randomized"].krylov_factors = record
        try:
            new = worst(fastlr.randomized_svd)
        finally:
            krylov.krylov_factors = factors
            sys.modules["fastlr.randomized"].krylov_factors = factors
        old = _without_narrow(lambda: worst(fastlr.randomized_svd))
        print(f"| {name} | {sum(kept)}/{len(kept)} | {new:.2e} | {old:.2e} | {worst(sk_randomized_svd):.2e} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--spectra", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--shape", default="3000x1000")
    args = parser.parse_args(argv)
    _core._cap_isa(1)
    if _core.build_info()["kernel_isa"] != "x86-64-v3":
        print("no x86-64-v3 kernels here: the rules do not apply")
        return 1
    choice.thresholds()
    with fastlr.thread_limit(1), threadpool_limits(1):
        if args.time:
            time_rows(args.rounds)
        if args.spectra:
            spectrum_rows(args.rounds)
        if args.accuracy:
            accuracy_rows(args.seeds, args.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
