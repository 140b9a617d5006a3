"""Sparse PCA: fastlr.PCA (implicit centering, sparse stays sparse) vs densify-then-scikit-learn PCA.

Each measurement runs in a fresh child process (so peak memory is its own): the
child builds the CSR matrix, resets its peak RSS (``/proc/self/clear_refs``),
then times one fit and reports the peak RSS above the RSS it had before the
fit (``VmHWM - VmRSS``, Linux), and the peak of NumPy's allocations during a
second, untimed fit (tracemalloc: RSS misses memory malloc reuses). Rows are interleaved (round x threads x
density x method), since other jobs share the cores; the table gives the
median over rounds. Children run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
and with BLAS, OpenMP and fastlr limited to the same thread count.

    python bench/bench_pca.py                   # 20000 x 2000 CSR, 10% and 1%, k = 10, 3 rounds
    python bench/bench_pca.py --rounds 1 --n 5000 --d 500     # quick

Methods:
  fastlr    fastlr.PCA(k, svd_solver="randomized", random_state=0).fit(X)        (X stays CSR)
  sklearn   sklearn.decomposition.PCA(k, svd_solver="randomized", random_state=0).fit(X.toarray())
            (the densification is timed and counted in the peak memory)
Both use their defaults otherwise (iterated_power="auto": 7 power iterations for k < 0.1 min(X.shape)).

    python bench/bench_pca.py --tolerance       # svd_to_tolerance vs randomized_svd at the rank it finds

Tolerance mode (issue 14's target: within 1.3x of the fixed-rank call that uses the right rank):
  tolerance  fastlr.svd_to_tolerance(A, tol, random_state=0)     (block_size 16, n_iter 2 per block)
  fixed      fastlr.randomized_svd(A, k, random_state=0), k = the rank svd_to_tolerance returned
on "dense" (5000 x 1000, sigma_i = 1/i, tol 0.1) and "sparse" (20000 x 2000 CSR: a product of sparse
rank-30 factors with a geometric spectrum plus 0.01 x the 1% matrix, tol 0.05); both report the relative
Frobenius error they reach.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD_ENV_DROP = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def tolerance_matrix(name):
    import numpy as np
    import scipy.fft

    rng = np.random.default_rng(0)
    if name == "dense":
        n, d = 5000, 1000
        Q1 = scipy.fft.dct(np.eye(n, d), axis=0, norm="ortho")[rng.permutation(n)]
        Q2 = scipy.fft.dct(np.eye(d, d), axis=0, norm="ortho")[rng.permutation(d)]
        return (Q1 / np.arange(1, d + 1)) @ Q2.T, 0.1
    import scipy.sparse as sp

    P = sp.random(20000, 30, density=0.2, format="csr", random_state=1) @ sp.diags(0.85 ** np.arange(30))
    Q = sp.random(30, 2000, density=0.03, format="csr", random_state=2)
    return (P @ Q + 0.01 * make(20000, 2000, 0.01)).tocsr(), 0.05


def tolerance_child(args) -> None:
    import numpy as np
    import scipy.sparse as sp

    import fastlr

    fastlr.set_num_threads(args.threads)
    A, tol = tolerance_matrix(args.matrix)
    U, s, Vt = fastlr.svd_to_tolerance(A[:300], tol, random_state=0)  # warm up
    k = len(fastlr.svd_to_tolerance(A, tol, random_state=0)[1])
    start = time.perf_counter()
    if args.method == "tolerance":
        U, s, Vt = fastlr.svd_to_tolerance(A, tol, random_state=0)
    else:
        U, s, Vt = fastlr.randomized_svd(A, k, random_state=0)
    seconds = time.perf_counter() - start
    sq = float(sp.linalg.norm(A) ** 2) if sp.issparse(A) else float(np.linalg.norm(A) ** 2)
    err = fastlr.LowRank(U, s, Vt).error(A) / np.sqrt(sq)
    print(json.dumps({"seconds": seconds, "k": len(s), "error": err, "tol": tol}))


def child(args) -> None:

    from sklearn.decomposition import PCA

    import fastlr

    fastlr.set_num_threads(args.threads)
    X = make(args.n, args.d, args.density)
    if args.method == "fastlr":
        fastlr.PCA(args.k, svd_solver="randomized", random_state=0).fit(X[:200])  # warm kernels up
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = _status("VmRSS")
    start = time.perf_counter()
    if args.method == "fastlr":
        pca = fastlr.PCA(args.k, svd_solver="randomized", random_state=0).fit(X)
    else:
        pca = PCA(args.k, svd_solver="randomized", random_state=0).fit(X.toarray())
    seconds = time.perf_counter() - start
    peak = _status("VmHWM") - base
    # RSS misses memory malloc reuses from earlier allocations: also trace NumPy's allocations in a second fit.
    import tracemalloc

    tracemalloc.start()
    if args.method == "fastlr":
        fastlr.PCA(args.k, svd_solver="randomized", random_state=0).fit(X)
    else:
        PCA(args.k, svd_solver="randomized", random_state=0).fit(X.toarray())
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 2**20, "traced_mb": traced / 2**20, "nnz": X.nnz,
                      "explained_variance": pca.explained_variance_.tolist(),
                      "ratio_sum": float(pca.explained_variance_ratio_.sum())}))


def make(n, d, density):
    """The test matrix: uniform positions, entries N(1, 1) (so every column has a nonzero mean)."""
    import numpy as np
    import scipy.sparse as sp

    X = sp.random(n, d, density=density, format="csr", dtype=np.float64, random_state=np.random.default_rng(0))
    X.data = np.random.default_rng(1).standard_normal(X.nnz) + 1.0
    return X


def exact_variances(n, d, density, k):
    """The top-k explained variances from the exact covariance (eigh of the d x d matrix)."""
    import numpy as np

    X = make(n, d, density)
    mu = np.asarray(X.mean(axis=0)).ravel()
    C = (X.T @ X).toarray() - n * np.outer(mu, mu)
    return np.linalg.eigvalsh(C / (n - 1))[::-1][:k]


def run(method, density, threads, args, matrix=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--child", "--method", method, "--density", str(density), "--threads",
           str(threads), "--n", str(args.n), "--d", str(args.d), "--k", str(args.k)]
    if matrix is not None:
        cmd += ["--matrix", matrix]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", default="fastlr")
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--densities", default="0.1,0.01")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--thread-counts", default="1,2")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--d", type=int, default=2000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, help="write all rows here")
    p.add_argument("--tolerance", action="store_true", help="time svd_to_tolerance against randomized_svd")
    p.add_argument("--matrix", default="dense", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        tolerance_child(args) if args.method in ("tolerance", "fixed") else child(args)
        return
    if args.tolerance:
        tolerance_main(args)
        return
    densities = [float(x) for x in args.densities.split(",")]
    threads = [int(x) for x in args.thread_counts.split(",")]
    rows = []
    exact = {density: exact_variances(args.n, args.d, density, args.k) for density in densities}
    for r in range(args.rounds):
        for t in threads:
            for density in densities:
                for method in ("fastlr", "sklearn"):
                    res = run(method, density, t, args)
                    res.update(method=method, density=density, threads=t, round=r)
                    rows.append(res)
                    print(f"round {r} threads {t} density {density} {method}: {res['seconds']:.3f} s, "
                          f"peak +{res['peak_mb']:.0f} MB", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.processor() or platform.machine(), "args": vars(args), "rows": rows}, f)
    print(f"\n{args.n} x {args.d} CSR, k = {args.k}, median of {args.rounds} rounds "
          f"(time s / peak RSS above the input, MB / tracemalloc peak, MB)\n")
    print("| density | nnz | threads | fastlr.PCA | densify + sklearn PCA | speed-up | memory ratio (traced) | max rel. error "
          "of explained_variance_ (fastlr / sklearn) |")
    print("|---|---|---|---|---|---|---|---|")
    for density in densities:
        for t in threads:
            sel = {m: [x for x in rows if x["method"] == m and x["density"] == density and x["threads"] == t]
                   for m in ("fastlr", "sklearn")}
            sec = {m: statistics.median(x["seconds"] for x in sel[m]) for m in sel}
            mem = {m: statistics.median(x["peak_mb"] for x in sel[m]) for m in sel}
            traced = {m: statistics.median(x["traced_mb"] for x in sel[m]) for m in sel}
            err = {m: max(abs(a - b) / b for a, b in zip(sel[m][0]["explained_variance"], exact[density]))
                   for m in sel}
            print(f"| {density:g} | {sel['fastlr'][0]['nnz']} | {t} | {sec['fastlr']:.2f} s / {mem['fastlr']:.0f} MB "
                  f"/ {traced['fastlr']:.0f} MB | {sec['sklearn']:.2f} s / {mem['sklearn']:.0f} MB "
                  f"/ {traced['sklearn']:.0f} MB | {sec['sklearn'] / sec['fastlr']:.1f}x "
                  f"| {traced['sklearn'] / max(traced['fastlr'], 1e-9):.0f}x | {err['fastlr']:.1e} / {err['sklearn']:.1e} |")


def tolerance_main(args) -> None:
    threads = [int(x) for x in args.thread_counts.split(",")]
    rows = []
    for r in range(args.rounds):
        for t in threads:
            for matrix in ("dense", "sparse"):
                for method in ("tolerance", "fixed"):
                    res = run(method, 0.01, t, args, matrix=matrix)
                    res.update(method=method, matrix=matrix, threads=t, round=r)
                    rows.append(res)
                    print(f"round {r} threads {t} {matrix} {method}: {res['seconds']:.3f} s, k={res['k']}, "
                          f"error {res['error']:.4f}", file=sys.stderr)
    print(f"\nmedian of {args.rounds} rounds\n")
    print("| matrix | tol | threads | svd_to_tolerance | randomized_svd(k) | ratio |")
    print("|---|---|---|---|---|---|")
    for matrix in ("dense", "sparse"):
        for t in threads:
            sel = {m: [x for x in rows if x["method"] == m and x["matrix"] == matrix and x["threads"] == t]
                   for m in ("tolerance", "fixed")}
            sec = {m: statistics.median(x["seconds"] for x in sel[m]) for m in sel}
            a, b = sel["tolerance"][0], sel["fixed"][0]
            print(f"| {matrix} | {a['tol']} | {t} | {sec['tolerance']:.3f} s (k={a['k']}, error {a['error']:.4f}) "
                  f"| {sec['fixed']:.3f} s (error {b['error']:.4f}) | {sec['tolerance'] / sec['fixed']:.2f} |")


if __name__ == "__main__":
    main()
