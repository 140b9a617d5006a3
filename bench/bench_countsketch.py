"""CountSketch S @ A: fastlr (cpp, numba) vs SciPy, against a memory floor.

Side by side in one run, at 1 and 2 threads (fastlr and BLAS limited together),
float64 and float32. The "memory floor" is one parallel Numba pass that only
reads A (a sum): no sketch can be faster than reading its input once.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_countsketch.py --benchmark-only

"fastlr-seeded-*" is construction plus apply for a seeded sketch: the backend's
countsketch_seeded_* kernel called directly (it hashes each column on the fly, so there
is nothing to construct); "fastlr-construct+apply" is today's CountSketch(m, n, seed)
followed by S @ A. For quotable ratios on a shared machine, run the interleaved
comparison (one process, rounds interleaved, minimum per method):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_countsketch.py --threads 1
"""

import numba as nb
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import fastlr

DENSE = {"5760x1080": (5760, 1080, 20), "100000x200": (100000, 200, 50), "20000x2000": (20000, 2000, 40)}
SPARSE = {"csr1000000x500": (1_000_000, 500, 500_000, 50)}
METHODS = ["fastlr-cpp", "fastlr-numba", "fastlr-seeded-cpp", "fastlr-seeded-numba", "fastlr-construct+apply",
           "scipy-cwt", "scipy-csr-matmul", "memory-floor"]
SEED = 0


@nb.njit(parallel=True, cache=True, fastmath=True)  # fastmath: a vectorized sum, bound by memory only
def _read_all_dense(A):
    total = 0.0
    n, d = A.shape
    for i in nb.prange(n):
        s = A[i, 0] * 0  # accumulate in A's dtype: no float32 -> float64 conversions
        for j in range(d):
            s += A[i, j]
        total += s
    return total


@nb.njit(parallel=True, cache=True, fastmath=True)
def _read_all_csr(indptr, indices, data, rows, values):
    # Reads everything a CSR sketch must read: the structure, the data and the hash.
    total = 0.0
    n = len(indptr) - 1
    for i in nb.prange(n):
        s = data[0] * 0 if len(data) else 0.0
        for p in range(indptr[i], indptr[i + 1]):
            s += data[p] * indices[p]
        total += s * values[i] + rows[i]
    return total


@nb.njit(parallel=True, cache=True, fastmath=True)
def _read_csr_only(indptr, indices, data):
    # Reads A's CSR arrays only: the floor for a seeded sketch, which reads no hash arrays.
    total = 0.0
    n = len(indptr) - 1
    for i in nb.prange(n):
        s = data[0] * 0 if len(data) else 0.0
        for p in range(indptr[i], indptr[i + 1]):
            s += data[p] * indices[p]
        total += s
    return total


def _floor_a(A):
    """Read A once and nothing else: NumPy's streaming sum (dense) or a Numba pass over the CSR arrays."""
    nb.set_num_threads(fastlr.get_num_threads())
    if sp.issparse(A):
        return lambda: _read_csr_only(A.indptr, A.indices, A.data)
    return lambda: A.sum()


def _memory_floor(A, S):
    nb.set_num_threads(fastlr.get_num_threads())
    if sp.issparse(A):
        return lambda: _read_all_csr(A.indptr, A.indices, A.data, S.rows, S.values)
    return lambda: _read_all_dense(A)


_cache = {}


def _matrix(name, dtype):
    key = (name, np.dtype(dtype).name)
    if key not in _cache:
        _cache.clear()  # keep one large matrix alive at a time
        rng = np.random.default_rng(0)
        if name in DENSE:
            n, d, _ = DENSE[name]
            _cache[key] = rng.standard_normal((n, d), dtype=np.float64).astype(dtype)
        else:
            n, d, nnz, _ = SPARSE[name]
            rows = rng.integers(0, n, nnz)
            cols = rng.integers(0, d, nnz)
            _cache[key] = sp.csr_matrix((rng.standard_normal(nnz).astype(dtype), (rows, cols)), shape=(n, d))
    return _cache[key]


def _seeded(backend, A, m):
    """Construction + apply of the seeded CountSketch (m, A.shape[0], SEED) with the kernel itself."""
    kernels = fastlr.get_backend(backend)
    n, d = A.shape
    if not sp.issparse(A):
        return lambda: kernels.countsketch_seeded_dense(A, SEED, m)
    fn = kernels.countsketch_seeded_csr if A.format == "csr" else kernels.countsketch_seeded_csc
    return lambda: fn(A.indptr, A.indices, A.data, SEED, m, n, d)


def _runner(method, A, S, m):
    if method.startswith("fastlr-seeded-"):
        return _seeded(method.rsplit("-", 1)[1], A, m)
    if method == "floor-A":
        return _floor_a(A)
    if method == "fastlr-construct+apply":
        return lambda: fastlr.CountSketch(m, A.shape[0], seed=SEED) @ A
    if method == "fastlr-cpp":
        return lambda: S.apply(A, backend="cpp")
    if method == "fastlr-numba":
        return lambda: S.apply(A, backend="numba")
    if method == "scipy-cwt":
        return lambda: scipy.linalg.clarkson_woodruff_transform(A, m, seed=0)
    if method == "scipy-csr-matmul":
        S_csr = S.to_scipy().astype(A.dtype)
        return lambda: S_csr @ A
    return _memory_floor(A, S)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", list(DENSE) + list(SPARSE))
def test_countsketch(benchmark, threads, shape, dtype, method):
    A = _matrix(shape, dtype)
    m = DENSE[shape][2] if shape in DENSE else SPARSE[shape][3]
    S = fastlr.CountSketch(m, A.shape[0], seed=SEED)
    fn = _runner(method, A, S, m)
    fn()  # warm up (Numba compilation, page faults)
    benchmark.group = f"{shape} {np.dtype(dtype).name} {threads}thr"
    benchmark.extra_info.update(shape=shape, dtype=np.dtype(dtype).name, threads=threads, method=method)
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)


INTERLEAVED = ["fastlr-seeded-cpp", "fastlr-seeded-numba", "fastlr-construct+apply", "fastlr-cpp", "scipy-cwt",
               "memory-floor", "floor-A"]


def interleaved(threads: int, rounds: int, shapes, dtypes, cpu_time: bool = False) -> None:
    """Print min-of-rounds ms per method, all methods' rounds interleaved in this one process.

    ``cpu_time``: time with this thread's CPU clock (``time.thread_time``) instead of the wall
    clock, which on an oversubscribed machine leaves out the time the thread waits for a core;
    only meaningful at one thread.
    """
    import platform
    import time

    from conftest import blas_description, git_revision
    from threadpoolctl import threadpool_limits

    clock = time.thread_time if cpu_time else time.perf_counter
    fastlr.set_num_threads(threads)
    print(f"# {platform.processor() or platform.machine()}; threads={threads}; rev {git_revision()}; "
          f"clock {clock.__name__}; "
          f"{blas_description()}")
    print("| A (m) | dtype | threads | " + " | ".join(INTERLEAVED) + " | cwt / seeded | seeded / floor-A |")
    print("|---" * (len(INTERLEAVED) + 5) + "|")
    with threadpool_limits(limits=threads):
        for shape in shapes:
            for dtype in dtypes:
                A = _matrix(shape, dtype)
                m = DENSE[shape][2] if shape in DENSE else SPARSE[shape][3]
                S = fastlr.CountSketch(m, A.shape[0], seed=SEED)
                fns = {name: _runner(name, A, S, m) for name in INTERLEAVED}
                for fn in fns.values():
                    fn()  # warm up
                best = dict.fromkeys(fns, float("inf"))
                for _ in range(rounds):
                    for name, fn in fns.items():
                        t0 = clock()
                        fn()
                        best[name] = min(best[name], clock() - t0)
                ms = {k: v * 1e3 for k, v in best.items()}
                cells = " | ".join(f"{ms[k]:.2f}" for k in INTERLEAVED)
                print(f"| {shape} ({m}) | {np.dtype(dtype).name} | {threads} | {cells} | "
                      f"{ms['scipy-cwt'] / ms['fastlr-seeded-cpp']:.1f}x | "
                      f"{ms['fastlr-seeded-cpp'] / ms['floor-A']:.2f} |", flush=True)


if __name__ == "__main__":
    import argparse
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="interleaved CountSketch comparison (see the module docstring)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--shapes", default="csr1000000x500,5760x1080,100000x200")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--cpu-time", action="store_true", help="time with the thread's CPU clock (1 thread only)")
    args = ap.parse_args()
    dtypes = [np.dtype(t) for t in args.dtypes.split(",")]
    interleaved(args.threads, args.rounds, args.shapes.split(","), dtypes, args.cpu_time)
