"""Randomized PCA on the block Krylov finder vs subspace iteration (the finder switched off) vs
scikit-learn's randomized PCA: 5760 x 1080 (rank 40 plus noise, mean offset 5), k = 10, per-call
CPU time at 1 thread and wall clock at 2, min over interleaved rounds; explained variance's worst
relative error against the exact PCA.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/pca_krylov.py
"""

import sys
import time

import numpy as np
from sklearn.decomposition import PCA as SklearnPCA
from threadpoolctl import threadpool_limits

import fastlr

randomized = sys.modules["fastlr.randomized"]
krylov_applies = randomized.krylov_applies


def main(rounds=5):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((5760, 40)) * np.linspace(3, 1, 40)) @ rng.standard_normal((40, 1080))
    X += 0.1 * rng.standard_normal(X.shape) + 5.0
    exact = SklearnPCA(10, svd_solver="full").fit(X).explained_variance_
    runs = {"fastlr, Krylov": krylov_applies, "fastlr, subspace iteration": lambda *a: False, "scikit-learn": None}
    print("| dtype | threads | " + " | ".join(runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    for dtype in (np.float64, np.float32):
        Xd = X.astype(dtype)
        for threads, clock in ((1, time.thread_time), (2, time.perf_counter)):
            fastlr.set_num_threads(threads)
            best, err = {}, {}
            with threadpool_limits(threads):
                for _ in range(rounds):
                    for name, rule in runs.items():
                        randomized.krylov_applies = rule or krylov_applies
                        make = SklearnPCA if rule is None else fastlr.PCA
                        t0 = clock()
                        model = make(10, svd_solver="randomized", random_state=0).fit(Xd)
                        best[name] = min(best.get(name, np.inf), clock() - t0)
                        err[name] = np.max(np.abs(model.explained_variance_ / exact - 1))
            randomized.krylov_applies = krylov_applies
            print(f"| {np.dtype(dtype).name} | {threads} | "
                  + " | ".join(f"{best[n] * 1e3:.1f} ms ({err[n]:.1e})" for n in runs) + " |", flush=True)


if __name__ == "__main__":
    main()
