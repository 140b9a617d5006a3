"""PCA with the defaults a user gets: ``fastlr.PCA(k).fit(X)`` vs ``sklearn.decomposition.PCA(k).fit(X)``.

Both choose their solver by scikit-learn's "auto" rule (fastlr.PCA follows it since the eighth
session), so each row names the solver and compares like with like; the last column is the
largest relative difference of the explained variances. Single thread (threadpoolctl and
fastlr), CPU time of each call (``time.thread_time``), min over interleaved rounds in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/pca_defaults.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA as SklearnPCA
from threadpoolctl import threadpool_limits

import fastlr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import blas_description  # noqa: E402


def _dense(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, 30)) * 0.8 ** np.arange(30)) @ rng.standard_normal((30, d))
    return X + 0.05 * rng.standard_normal((n, d)) + 3.0 * rng.standard_normal(d)


def _sparse(n, d, density, seed=0):
    return sp.random(n, d, density=density, format="csr", random_state=seed) * 10.0


CASES = [  # (label, X, n_components)
    ("100000x200 dense, k=10", lambda: _dense(100_000, 200), 10),
    ("5760x1080 dense, k=10", lambda: _dense(5760, 1080), 10),
    ("3000x1500 dense, k=0.9", lambda: _dense(3000, 1500), 0.9),
    ("2000x300 dense, mle", lambda: _dense(2000, 300), "mle"),
    ("20000x2000 CSR 1%, k=10", lambda: _sparse(20_000, 2000, 0.01), 10),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# {blas_description()}; fastlr {fastlr.__version__}; 1 thread; min of {args.rounds} rounds (CPU ms)")
    print("| X, n_components | solver (both) | fastlr ms | scikit-learn ms | speed-up | n_components_ | max rel. diff of explained_variance_ |")
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(1), fastlr.thread_limit(1):
        for label, make, k in CASES:
            X = make()
            best = {"fastlr": np.inf, "sklearn": np.inf}
            fits = {}
            for _ in range(args.rounds):
                for name, cls in (("fastlr", fastlr.PCA), ("sklearn", SklearnPCA)):
                    t0 = time.thread_time()
                    fits[name] = cls(k, random_state=0).fit(X)
                    best[name] = min(best[name], time.thread_time() - t0)
            ours, theirs = fits["fastlr"], fits["sklearn"]
            assert ours._fit_svd_solver == theirs._fit_svd_solver, (ours._fit_svd_solver, theirs._fit_svd_solver)
            n = min(len(ours.explained_variance_), len(theirs.explained_variance_))
            diff = float(np.max(np.abs(ours.explained_variance_[:n] / theirs.explained_variance_[:n] - 1)))
            print(f"| {label} | {ours._fit_svd_solver} | {best['fastlr'] * 1e3:.1f} | {best['sklearn'] * 1e3:.1f} | "
                  f"{best['sklearn'] / best['fastlr']:.2f}x | {ours.n_components_} / {theirs.n_components_} | "
                  f"{diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
