"""Single-pass StreamingSVD (Tropp-Yurtsever-Udell-Cevher) vs the two-pass randomized_svd.

Three parts, each printing a markdown table:

* ``accuracy``: ``||A - A_hat||_F / ||A - A_k||_F`` (1 is optimal), worst and median over 20
  seeds, on generated data (fastlr.datasets: decaying and flat spectra plus noise, a sparse
  term-document matrix, a coherent matrix), k = 10;
* ``timing``: seconds (best of 3) on a dense 100000 x 500 matrix and a sparse 200000 x 5000
  term-document matrix (datasets.text, 0.95M nonzeros, cached in the temp directory), at 1 and 2 threads, with the error ratio of each result;
* ``zeta``: nonzeros per column of the sparse sign test matrices (fastlr.streaming.SPARSE_SIGN_NNZ):
  time on the dense case vs worst error ratio on the coherent matrix.

Run with the machine's OpenBLAS tuning variables unset for this process only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_streaming.py accuracy timing zeta
"""

import os
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import StreamingSVD, datasets, streaming

K = 10
SEEDS = range(20)


def tail(A, k):
    """||A - A_k||_F from the exact spectrum."""
    if sp.issparse(A):
        total = float((A.data.astype(np.float64) ** 2).sum())
        top = scipy.sparse.linalg.svds(A, k=k, return_singular_vectors=False, random_state=0)
        return np.sqrt(max(total - float((top ** 2).sum()), 0.0))
    A = np.asarray(A, dtype=np.float64)
    G = A.T @ A if A.shape[0] >= A.shape[1] else A @ A.T
    ev = np.clip(np.linalg.eigvalsh(G)[::-1], 0, None)
    return float(np.sqrt(ev[k:].sum()))


def error(A, U, s, Vt):
    return fastlr.LowRank(U, s, Vt).error(A)


def methods(k):
    return {
        "StreamingSVD countsketch (s=4k+1, c=2s+1)": lambda A, seed: StreamingSVD(k, random_state=seed).fit(A).result(),
        "StreamingSVD gaussian (s=4k+1, c=2s+1)": lambda A, seed: StreamingSVD(
            k, sketch="gaussian", random_state=seed).fit(A).result(),
        "StreamingSVD countsketch (s=4k+1, c=4s+1)": lambda A, seed: StreamingSVD(
            k, core_size=4 * (4 * k + 1) + 1, random_state=seed).fit(A).result(),
        "StreamingSVD countsketch (s=2k+1, c=2s+1)": lambda A, seed: StreamingSVD(
            k, range_size=2 * k + 1, random_state=seed).fit(A).result(),
        "randomized_svd n_iter=0 (2 passes)": lambda A, seed: fastlr.randomized_svd(A, k, n_iter=0, random_state=seed),
        "randomized_svd n_iter=auto": lambda A, seed: fastlr.randomized_svd(A, k, random_state=seed),
    }


def coherent(n=3000, d=400, k=K, seed=0):
    """A few large entries in distinct rows and columns over small noise."""
    rng = np.random.default_rng(seed)
    A = 0.01 * rng.standard_normal((n, d)) / np.sqrt(d)
    A[rng.choice(n, k, replace=False), rng.choice(d, k, replace=False)] = np.linspace(1, 2, k)
    return A


def accuracy_data():
    return {
        "lowrank 3000x400, rank 30, sigma_i=0.8^i, noise 0.05": datasets.lowrank(
            1, shape=(3000, 400), rank=30, noise=0.05, seed=1)[0],
        "lowrank 3000x400, rank 10 flat, noise 0.5": datasets.lowrank(
            1, shape=(3000, 400), rank=10, spectrum=np.ones(10), noise=0.5, seed=2)[0],
        "sigma_i = 1/i, 3000x400": _poly(3000, 400),
        "text 5000x2000 CSR (177k nnz)": datasets.text(1, n_terms=5000, n_docs=2000, seed=0)[0],
        "coherent 3000x400 (10 spikes + noise)": coherent(),
    }


def _poly(n, d, seed=3):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, d)))[0]
    V = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (U / np.arange(1, d + 1)) @ V.T


def run_accuracy():
    print("\n### Accuracy: ||A - A_hat||_F / ||A - A_k||_F, worst [median] over 20 seeds, k = 10\n")
    data = accuracy_data()
    names = list(methods(K))
    print("| matrix | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, A in data.items():
        best = tail(A, K)
        cells = []
        for fn in methods(K).values():
            ratios = [error(A, *fn(A, seed)) / best for seed in SEEDS]
            cells.append(f"{max(ratios):.3f} [{np.median(ratios):.3f}]")
        print(f"| {label} | " + " | ".join(cells) + " |")
        sys.stdout.flush()


def timing_data():
    rng = np.random.default_rng(0)
    n, d = 100_000, 500
    U = rng.standard_normal((n, 100)) / np.sqrt(n)
    V = np.linalg.qr(rng.standard_normal((d, 100)))[0]
    dense = (U / np.arange(1, 101)) @ V.T + 0.02 / np.sqrt(n) * rng.standard_normal((n, d))
    return {"dense 100000x500 (rank-100 1/i + noise)": dense,
            "text CSR 200000x5000 (0.95M nnz)": _cached_text()}


def _cached_text():
    """A Zipfian term-document matrix (terms x documents); generating it takes minutes, so it is
    kept in the temp directory."""
    path = os.path.join(tempfile.gettempdir(), "fastlr_bench_text_200000x5000.npz")
    if os.path.exists(path):
        return sp.load_npz(path).tocsr()
    A = datasets.text(1, n_terms=200_000, n_docs=5000, doc_length=300, seed=0)[0]
    sp.save_npz(path, sp.csr_matrix(A))
    return A


def best_of(fn, rounds=3):
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run_timing():
    print("\n### Time (best of 3, seconds) and error ratio, k = 10\n")
    print("| matrix | method | threads | fit (one pass) | result() | total | error ratio | state MB |")
    print("|---|---|---|---|---|---|---|---|")
    for label, A in timing_data().items():
        best = tail(A, K)
        for threads in (1, 2):
            fastlr.set_num_threads(threads)
            with threadpool_limits(threads, user_api="blas"):
                for sketch in ("countsketch", "gaussian"):
                    est = StreamingSVD(K, sketch=sketch, random_state=0)
                    t_fit, _ = best_of(lambda est=est, A=A: est.fit(A))
                    t_res, lr = best_of(est.result)
                    print(f"| {label} | StreamingSVD {sketch} | {threads} | {t_fit:.2f} | {t_res:.2f} | "
                          f"{t_fit + t_res:.2f} | {lr.error(A) / best:.3f} | {est.nbytes / 2**20:.0f} |")
                    sys.stdout.flush()
                for n_iter in (0, "auto"):
                    t, res = best_of(lambda A=A, n_iter=n_iter: fastlr.randomized_svd(A, K, n_iter=n_iter,
                                                                                      random_state=0))
                    print(f"| {label} | randomized_svd n_iter={n_iter} | {threads} | | | {t:.2f} | "
                          f"{error(A, *res) / best:.3f} | |")
                    sys.stdout.flush()


def run_zeta():
    print("\n### Nonzeros per column (zeta) of the sparse sign test matrices\n")
    print("| zeta | fit + result, dense 100000x500, 1 thread (s) | coherent: worst [median] ratio, 20 seeds |")
    print("|---|---|---|")
    A = next(iter(timing_data().values()))
    C = coherent()
    best = tail(C, K)
    fastlr.set_num_threads(1)
    saved = streaming.SPARSE_SIGN_NNZ
    try:
        with threadpool_limits(1, user_api="blas"):
            for zeta in (1, 2, 4, 8):
                streaming.SPARSE_SIGN_NNZ = zeta
                t, _ = best_of(lambda: StreamingSVD(K, random_state=0).fit(A).result())
                ratios = [StreamingSVD(K, random_state=s).fit(C).result().error(C) / best for s in SEEDS]
                print(f"| {zeta} | {t:.2f} | {max(ratios):.2f} [{np.median(ratios):.2f}] |")
                sys.stdout.flush()
    finally:
        streaming.SPARSE_SIGN_NNZ = saved


def main(argv):
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; run with env -u {var}", file=sys.stderr)
    parts = argv or ["accuracy", "timing", "zeta"]
    print(f"fastlr {fastlr.__version__}, backend {fastlr.current_backend()}, load average {os.getloadavg()}")
    for part in parts:
        {"accuracy": run_accuracy, "timing": run_timing, "zeta": run_zeta}[part]()


if __name__ == "__main__":
    main(sys.argv[1:])
