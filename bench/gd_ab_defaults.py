"""gd_svd(A, 10) with default arguments: before/after a revision, against scipy's svds, in ONE process.

The "before" gd_svd is fastlr/gd/*.py of a git revision (``--before``, default eec9971: before the
tenth session's one-pass start), loaded as ``fastlr.gd_before`` next to the working tree's
``fastlr.gd`` (both on the installed kernels). Single thread; each call's CPU time
(``time.thread_time``), min over interleaved rounds; a row's gd_svd time is its slowest random
state's, svds' its fastest state's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gd_ab_defaults.py --isa v4
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gd_ab_defaults.py --isa v3
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python bench/gd_ab_defaults.py --isa v3
    python bench/gd_ab_defaults.py --accuracy-only --families    # errors over many seeds, more spectra

Tables: (1) 2000 x 1000 sigma_i = 1/i, rank 10 + 10% noise, rank 10 + 1% noise: times, ratios,
iterations, thin products per run (passes with 10 columns; the start's fused pass of width 30 counts
6), worst error ratio ||A - A_hat|| / ||A - A_10|| over ``--error-seeds`` random states on
``--matrix-seeds`` matrices, worst orthonormality error; (2) with ``--families``: worst error and mean
iterations before/after over 20 random states on 600 x 300 spectra (gaps, decays, steps, exactly
low-rank, noise).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
import scipy.sparse.linalg as sla
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import choice, memory

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gd_seeds  # noqa: E402
from new_user_figures import _best  # noqa: E402

ISA_LEVELS = {"v4": 2, "v3": 1, "baseline": 0}
K = 10
MATRICES = {
    "sigma_i = 1/i": gd_seeds.inverse_spectrum,
    "rank 10 + 10% noise": gd_seeds.low_rank_plus_noise,
    "rank 10 + 1% noise": lambda seed=0: gd_seeds.low_rank_plus_noise(noise=0.01, seed=seed),
}
#: thin products (10 columns) each kernel call is worth, by its factor width
PRODUCTS = ("power_step", "gram_product", "matmul", "rmatmul", "gd_products")


def load_before(rev: str):
    """fastlr/gd of ``rev`` as the package ``fastlr.gd_before``."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=HERE, capture_output=True, text=True,
                          check=True).stdout.strip()
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "fastlr/gd/"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split()
    folder = tempfile.mkdtemp(prefix="gd_before_")
    for name in names:
        text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, capture_output=True, text=True,
                              check=True).stdout
        with open(os.path.join(folder, os.path.basename(name)), "w") as f:
            f.write(text)
    spec = importlib.util.spec_from_file_location("fastlr.gd_before", os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastlr.gd_before"] = module
    spec.loader.exec_module(module)
    return module


def count_products(run):
    """(result, thin products) of run(): kernel calls weighted by columns / K and by sides."""
    counts = []
    saved = {name: getattr(memory.InMemory, name) for name in PRODUCTS}

    def wrapped(name, f):
        def call(self, *args):
            sides = 2 if name in ("power_step", "gram_product", "gd_products") else 1
            counts.append(sides * args[-1].shape[1] / K)
            return f(self, *args)
        return call

    try:
        for name, f in saved.items():
            setattr(memory.InMemory, name, wrapped(name, f))
        result = run()
    finally:
        for name, f in saved.items():
            setattr(memory.InMemory, name, f)
    return result, sum(counts)


def timing_table(before, rounds, seeds, error_seeds, matrix_seeds, accuracy_only):
    print("\n| matrix | before ms | after ms | svds ms | svds / before | svds / after | iterations before / after "
          "| thin products after | worst error ratio before / after (runs) | orthonormality after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, make in MATRICES.items():
        A = make()
        if accuracy_only:
            t = {"before": np.nan, "after": np.nan, "svds": np.nan}
        else:
            calls = {}
            for s in range(seeds):
                calls[f"before{s}"] = lambda s=s: before.gd_svd(A, K, random_state=s)
                calls[f"after{s}"] = lambda s=s: fastlr.gd_svd(A, K, random_state=s)
                calls[f"svds{s}"] = lambda s=s: sla.svds(A, K, random_state=s)
            best = _best(calls, rounds)
            t = {"before": max(best[f"before{s}"] for s in range(seeds)),
                 "after": max(best[f"after{s}"] for s in range(seeds)),
                 "svds": min(best[f"svds{s}"] for s in range(seeds))}
        worst = {"before": 0.0, "after": 0.0}
        its = {"before": [], "after": []}
        passes, orth, runs = [], 0.0, 0
        for ms in range(matrix_seeds):
            B = make(seed=ms)
            optimal = gd_seeds.optimal_error(B, K)
            for s in range(error_seeds):
                for tag, f in (("before", before.gd_svd), ("after", fastlr.gd_svd)):
                    (U, sv, Vt, h), n = count_products(lambda: f(B, K, random_state=s, return_history=True))
                    worst[tag] = max(worst[tag], gd_seeds.error_of(B, U, sv, Vt.T) / optimal)
                    its[tag].append(h.n_iter)
                    if tag == "after":
                        passes.append(n)
                        orth = max(orth, np.abs(U.T @ U - np.eye(K)).max(), np.abs(Vt @ Vt.T - np.eye(K)).max())
                runs += 1
        print(f"| {name} | {t['before'] * 1e3:.2f} | {t['after'] * 1e3:.2f} | {t['svds'] * 1e3:.2f} "
              f"| {t['svds'] / t['before']:.2f}x | **{t['svds'] / t['after']:.2f}x** "
              f"| {min(its['before'])}-{max(its['before'])} / {min(its['after'])}-{max(its['after'])} "
              f"| {min(passes):g}-{max(passes):g} | {worst['before']:.6f} / {worst['after']:.6f} ({runs}) "
              f"| {orth:.0e} |", flush=True)


def families_table(before, seeds=20):
    m, n, k = 600, 300, K
    rng = np.random.default_rng(5)
    Q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
    Q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    i = np.arange(1, n + 1)
    spectra = {f"1 to k, then {r}/sqrt(i-k)": np.where(i <= k, 1.0, r / np.sqrt(np.maximum(i - k, 1)))
               for r in (0.2, 0.5, 0.7)}
    spectra.update({"1/sqrt(i)": i ** -0.5, "1/i": 1.0 / i, "1/i^2": i ** -2.0, "0.9^i": 0.9 ** i,
                    "0.97^i": 0.97 ** i, "1 to k, then 0.3": np.where(i <= k, 1.0, 0.3),
                    "exactly rank k/2": np.where(i <= k // 2, 1.0, 0.0), "exactly rank k": np.where(i <= k, 1.0 / i, 0.0),
                    "exactly rank 2k": np.where(i <= 2 * k, 1.0 / i, 0.0),
                    "rank k + 1e-9": np.where(i <= k, 1.0, 1e-9)})
    items = [(name, (Q1 * s) @ Q2.T) for name, s in spectra.items()]
    items += [(f"rank k + {int(nz * 100)}% noise", gd_seeds.low_rank_plus_noise(m, n, rank=k, noise=nz, seed=3))
              for nz in (0.3, 0.1, 0.01)]
    rng = np.random.default_rng(7)
    items += [("Gaussian 600x300 (flat)", rng.standard_normal((m, n)))]
    print(f"\n| {m} x {n}, k = {k}, {seeds} random states | worst error ratio before / after "
          f"| (error - 1.001 x optimal) / norm(A), after | mean iterations before / after |")
    print("|---|---|---|---|")
    for name, A in items:
        s = np.linalg.svd(A, compute_uv=False)
        optimal, norm = np.sqrt(np.sum(s[k:] ** 2)), np.linalg.norm(A)
        row = {}
        for tag, f in (("before", before.gd_svd), ("after", fastlr.gd_svd)):
            worst, excess, its = 0.0, -np.inf, []
            for seed in range(seeds):
                U, sv, Vt, h = f(A, k, random_state=seed, return_history=True)
                err = np.linalg.norm(A - (U * sv) @ Vt)
                worst = max(worst, err / optimal) if optimal > 1e-8 * norm else np.nan
                excess = max(excess, (err - 1.001 * optimal) / norm)
                its.append(h.n_iter)
            row[tag] = (worst, excess, np.mean(its))
        print(f"| {name} | {row['before'][0]:.6f} / {row['after'][0]:.6f} | {row['after'][1]:+.1e} "
              f"| {row['before'][2]:.2f} / {row['after'][2]:.2f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="eec9971")
    parser.add_argument("--isa", choices=list(ISA_LEVELS), default="v4")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--seeds", type=int, default=3, help="timed random states per matrix")
    parser.add_argument("--error-seeds", type=int, default=50)
    parser.add_argument("--matrix-seeds", type=int, default=2)
    parser.add_argument("--accuracy-only", action="store_true")
    parser.add_argument("--families", action="store_true")
    args = parser.parse_args(argv)
    before = load_before(args.before)
    _core._cap_isa(ISA_LEVELS[args.isa])
    kernel_isa = _core.build_info()["kernel_isa"]
    choice._level = kernel_isa if kernel_isa in choice.LEVELS else None
    from conftest import blas_description

    print(f"fastlr {fastlr.__version__} kernels {kernel_isa}; before = fastlr/gd of {args.before}; "
          f"{blas_description()}; 1 thread")
    with fastlr.thread_limit(1), threadpool_limits(1):
        timing_table(before, args.rounds, args.seeds, args.error_seeds, args.matrix_seeds, args.accuracy_only)
        if args.families:
            families_table(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
