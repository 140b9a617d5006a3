"""Sketched and randomized SVD: fastlr vs scikit-learn, SciPy, PyTorch and plain NumPy SCW.

Side by side in one run, at 1 and 2 threads (fastlr, BLAS and torch limited
together), float64 and float32, k = 10 and 50. Every row records its time AND its
excess error ``||A - A_hat||_F / ||A - A_k||_F - 1`` (``extra_info["excess_error"]``),
where ``||A - A_k||_F`` comes from the exact spectrum. Randomized methods'
excess errors are heavy-tailed across seeds, so their rows report the median
over random_state = 0, 1, 2 (timing uses random_state = 0).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_svd.py --benchmark-only \
        --benchmark-json svd.json
    python bench/bench_svd.py svd.json        # markdown table of time and excess error

Rows:
  fastlr          fastlr.randomized_svd(A, k)          (defaults: n_oversamples=10, n_iter="auto")
  sklearn         sklearn.utils.extmath.randomized_svd (same arguments)
  svds            scipy.sparse.linalg.svds(A, k)       (ARPACK, to machine precision; one round)
  torch           torch.svd_lowrank(A, q=k+10, niter=<sklearn's "auto">), if torch is installed
  scw-2k/scw-4k   fastlr.scw(A, CountSketch(m, n), k) with m = 2k, 4k
  numpy-scw-2k/4k the same SCW as plain NumPy/SciPy calls (scipy CSR sketch, np.linalg.svd)
"""

import json
import sys

import numpy as np
import pytest
import scipy.fft
import scipy.sparse as sp
import scipy.sparse.linalg

import fastlr

MATRICES = ["dense5760x1080", "dense100000x500", "csr200000x5000"]
KS = [10, 50]
METHODS = ["fastlr", "sklearn", "svds", "torch", "scw-2k", "numpy-scw-2k", "scw-4k", "numpy-scw-4k"]
ROUNDS = {"dense5760x1080": 5, "dense100000x500": 1, "csr200000x5000": 2}
WARMUP = {"dense5760x1080": 1, "dense100000x500": 0, "csr200000x5000": 0}


def _orthonormal_columns(n, r, rng):
    """n x r orthonormal columns: a randomly signed, permuted DCT basis (QR of n x r would take seconds)."""
    Q = scipy.fft.dct(np.eye(n, r), axis=0, norm="ortho")
    return (rng.choice([-1.0, 1.0], n)[:, None] * Q)[rng.permutation(n)]


def _make(name):
    """(A in float64, its exact singular values up to 50)."""
    rng = np.random.default_rng(0)
    if name == "dense5760x1080":  # sigma_i = 1 / i
        s = 1.0 / np.arange(1, 1081)
        A = (_orthonormal_columns(5760, 1080, rng) * s) @ _orthonormal_columns(1080, 1080, rng).T
        return A, s[:50]
    if name == "dense100000x500":  # rank-100 signal with sigma_i = 1/i, plus noise at sigma ~ 0.02
        n, d = 100_000, 500
        U = rng.standard_normal((n, 100)) / np.sqrt(n)
        V = np.linalg.qr(rng.standard_normal((d, 100)))[0]
        A = (U / np.arange(1, 101)) @ V.T
        A += 0.02 / np.sqrt(n) * rng.standard_normal((n, d))
        s = np.sqrt(np.clip(np.linalg.eigvalsh(A.T @ A)[::-1][:50], 0, None))
        return A, s
    n, d, nnz = 200_000, 5000, 2_000_000  # Zipfian column popularity, uniform rows
    p = 1.0 / np.arange(1, d + 1) ** 1.1
    cols = rng.choice(d, nnz, p=p / p.sum())
    rows = rng.integers(0, n, nnz)
    A = sp.csr_matrix((rng.standard_normal(nnz), (rows, cols)), shape=(n, d))
    s = np.sort(scipy.sparse.linalg.svds(A, k=50, tol=1e-12, random_state=0)[1])[::-1]
    return A, s


_cache = {}


def _matrix(name, dtype):
    """(A in dtype, ||A||_F^2 of that A, exact singular values)."""
    key = (name, np.dtype(dtype).name)
    if key not in _cache:
        if (name, "float64") not in _cache:
            A, s = _make(name)
            _cache[(name, "float64")] = (A, _sqnorm(A), s)
        A64, sq, s = _cache[(name, "float64")]
        if dtype == np.float32:
            A = A64.astype(np.float32)
            _cache[key] = (A, _sqnorm(A), s)
    return _cache[key]


def _sqnorm(A):
    data = A.data if sp.issparse(A) else A
    return float(np.einsum("i,i->", data.ravel(), data.ravel(), dtype=np.float64))


def excess_error(A, sqnorm, s_exact, k, U, s, Vt):
    """||A - U diag(s) Vt||_F / ||A - A_k||_F - 1, via ||A||^2 - 2 sum_i s_i u_i^T A v_i + ||U diag(s) Vt||^2,
    the last from the k x k Gram matrices of U and V (not ||s||^2: float32 factors are orthonormal only to
    ~1e-7, which moved the figure by +-4e-7 on 100000 x 500)."""
    U, s, Vt = (np.asarray(x, dtype=np.float64) for x in (U, s, Vt))
    AV = A.astype(np.float64) @ Vt.T  # float64: a float32 product's rounding (~1e-7 of ||A||^2) swamps small errors
    cross = float(np.einsum("ij,ij,j->", U, np.asarray(AV, dtype=np.float64), s))
    approx2 = float(np.einsum("ij,ij,i,j->", U.T @ U, Vt @ Vt.T, s, s))
    err2 = sqnorm - 2 * cross + approx2
    opt2 = sqnorm - float(np.sum(s_exact[:k].astype(np.float64) ** 2))
    return float(np.sqrt(max(err2, 0.0) / opt2) - 1)


def _auto_n_iter(k, shape):
    return 7 if k < 0.1 * min(shape) else 4  # scikit-learn's "auto"


def _numpy_scw(A, S_csr, k):
    """SCW as plain NumPy/SciPy calls: the same algorithm as fastlr.scw."""
    M = S_csr @ A
    M = M.toarray() if sp.issparse(M) else np.asarray(M)
    _, sm, Vtm = np.linalg.svd(M, full_matrices=False)
    r = int(np.count_nonzero(sm > max(M.shape) * np.finfo(M.dtype).eps * sm[0]))
    V = Vtm[:r].T
    B = np.asarray(A @ V)
    Ub, sb, Zt = np.linalg.svd(B, full_matrices=False)
    return Ub[:, :k], sb[:k], (V @ Zt.T[:, :k]).T


def _torch_runner(A, k, threads, seed):
    torch = pytest.importorskip("torch")
    if sp.issparse(A):
        coo = A.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        At = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), A.shape, check_invariants=True).coalesce()
    else:
        At = torch.from_numpy(A)
    niter = _auto_n_iter(k, A.shape)

    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        try:
            U, S, V = torch.svd_lowrank(At, q=k + 10, niter=niter)
        finally:
            torch.set_num_threads(previous)
        return U[:, :k].numpy(), S[:k].numpy(), V[:, :k].T.numpy()

    return run


RANDOMIZED = ("fastlr", "sklearn", "torch")


def _runner(method, A, k, threads, seed=0):
    if method == "fastlr":
        return lambda: fastlr.randomized_svd(A, k, random_state=seed)
    if method == "sklearn":
        extmath = pytest.importorskip("sklearn.utils.extmath")
        return lambda: extmath.randomized_svd(A, k, random_state=seed)
    if method == "svds":
        return lambda: scipy.sparse.linalg.svds(A, k=k, random_state=0)
    if method == "torch":
        return _torch_runner(A, k, threads, seed)
    m = (2 if method.endswith("2k") else 4) * k
    S = fastlr.CountSketch(m, A.shape[0], seed=0)
    if method.startswith("numpy"):
        S_csr = S.to_scipy().astype(A.dtype)
        return lambda: _numpy_scw(A, S_csr, k)
    return lambda: tuple(fastlr.scw(A, S, k))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("matrix", MATRICES)
def test_svd(benchmark, threads, matrix, dtype, k, method):
    A, sqnorm, s_exact = _matrix(matrix, dtype)
    fn = _runner(method, A, k, threads)
    benchmark.group = f"{matrix} {np.dtype(dtype).name} k={k} {threads}thr"
    rounds, warmup = (1 if method == "svds" else ROUNDS[matrix]), WARMUP[matrix]
    if "scw" in method:  # fast (2 passes): a single cold round is mostly page faults and noise
        rounds, warmup = max(rounds, 5), 1
    U, s, Vt = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
    errors = [excess_error(A, sqnorm, s_exact, k, U, s, Vt)]
    if method in RANDOMIZED:
        errors += [excess_error(A, sqnorm, s_exact, k, *_runner(method, A, k, threads, seed)()) for seed in (1, 2)]
    benchmark.extra_info.update(
        matrix=matrix, dtype=np.dtype(dtype).name, k=k, threads=threads, method=method,
        excess_error=float(np.median(errors)), excess_errors=errors,
    )


def table(path):
    """Markdown table (min time in ms, excess error) from a --benchmark-json file."""
    rows = {}
    for b in json.load(open(path))["benchmarks"]:
        e = b["extra_info"]
        rows.setdefault((e["matrix"], e["dtype"], e["k"], e["threads"]), {})[e["method"]] = (
            b["stats"]["min"] * 1e3, e["excess_error"])
    methods = [m for m in METHODS if any(m in r for r in rows.values())]
    print("| matrix | dtype | k | thr | " + " | ".join(methods) + " |")
    print("|" + "---|" * (4 + len(methods)))
    for key in sorted(rows, key=lambda r: (MATRICES.index(r[0]), r[1], r[2], r[3])):
        cells = [f"{rows[key][m][0]:.1f} ms / {rows[key][m][1]:.1e}" if m in rows[key] else "-" for m in methods]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cells) + " |")


def isa_rounds(argv):
    """Single thread, fastlr at x86-64-v4 and x86-64-v3 against its anchors, rounds interleaved in one process.

        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_svd.py --isa [--rounds 5]
        env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python bench/bench_svd.py --isa  # AVX2 BLAS

    "v3" caps every kernel (``_core._cap_isa(1)``) and runs the x86-64-v3 kernel/BLAS
    rule; the anchors (scikit-learn, NumPy SCW) run on whatever BLAS kernel the process has (printed).
    Times: each call's thread CPU time (``time.thread_time``), min over the rounds; errors: excess
    error, median over random_state = 0, 1, 2 for the randomized methods (SCW's sketch is seeded).
    """
    import argparse
    import time

    from threadpoolctl import threadpool_info, threadpool_limits

    from fastlr._matrix import choice

    ap = argparse.ArgumentParser()
    ap.add_argument("--isa", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--matrices", default="dense5760x1080,dense100000x500")
    ap.add_argument("--ks", default="10,50")
    ap.add_argument("--methods", default="fastlr,sklearn,scw-4k,numpy-scw-4k")
    args = ap.parse_args(argv)
    core = fastlr.get_backend("cpp")
    core.set_num_threads(1)
    levels = {"v4": (2, "x86-64-v4"), "v3": (1, "x86-64-v3")}

    def at(level, fn):
        cap, name = levels[level]
        core._cap_isa(cap)
        choice._level = name
        return fn()

    blas = "; ".join(f"{p['internal_api']} {p['version']} {p.get('architecture', '?')}" for p in threadpool_info()
                     if p["user_api"] == "blas")
    print(f"BLAS: {blas}", flush=True)
    methods = args.methods.split(",")
    cols = [(m, lv) for m in methods for lv in (levels if not m.startswith(("sklearn", "numpy")) else [None])]
    print("| matrix | dtype | k | " + " | ".join(m + (f" {lv}" if lv else "") for m, lv in cols) + " |")
    print("|" + "---|" * (3 + len(cols)))
    try:
        with threadpool_limits(limits=1):
            for matrix in args.matrices.split(","):
                for dtype in (np.float32, np.float64):
                    A, sqnorm, s_exact = _matrix(matrix, dtype)
                    for k in map(int, args.ks.split(",")):
                        times = {c: [] for c in cols}
                        for _ in range(args.rounds + 1):  # the first round warms up
                            for m, lv in cols:
                                fn = _runner(m, A, k, 1)
                                s = time.thread_time()
                                at(lv or "v4", fn)
                                times[m, lv].append(time.thread_time() - s)
                        cells = []
                        anchor = {m: min(times[m, None][1:]) for m, lv in cols if lv is None}
                        for m, lv in cols:
                            seeds = (0, 1, 2) if m in RANDOMIZED else (0,)
                            errs = [excess_error(A, sqnorm, s_exact, k, *at(lv or "v4", _runner(m, A, k, 1, seed)))
                                    for seed in seeds]
                            t = min(times[m, lv][1:]) * 1e3
                            ref = anchor.get("sklearn" if m == "fastlr" else "numpy-" + m)
                            ratio = f" ({ref * 1e3 / t:.2f}x)" if ref and lv else ""
                            cells.append(f"{t:.1f}{ratio} / {np.median(errs):.1e}")
                        print(f"| {matrix} | {np.dtype(dtype).name} | {k} | " + " | ".join(cells) + " |", flush=True)
    finally:
        core._cap_isa(2)
        choice._level = None


if __name__ == "__main__":
    if "--isa" in sys.argv:
        isa_rounds(sys.argv[1:])
    else:
        table(sys.argv[1])
