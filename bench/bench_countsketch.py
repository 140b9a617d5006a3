"""CountSketch S @ A: fastlr (cpp, numba) vs SciPy, against a memory floor.

Side by side in one run, at 1 and 2 threads (fastlr and BLAS limited together),
float64 and float32. The "memory floor" is one parallel Numba pass that only
reads A (a sum): no sketch can be faster than reading its input once.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_countsketch.py --benchmark-only
"""

import numba as nb
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import fastlr

DENSE = {"5760x1080": (5760, 1080, 20), "100000x200": (100000, 200, 50), "20000x2000": (20000, 2000, 40)}
SPARSE = {"csr1000000x500": (1_000_000, 500, 500_000, 50)}
METHODS = ["fastlr-cpp", "fastlr-numba", "scipy-cwt", "scipy-csr-matmul", "memory-floor"]


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


def _runner(method, A, S, m):
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
    S = fastlr.CountSketch(m, A.shape[0], seed=0)
    fn = _runner(method, A, S, m)
    fn()  # warm up (Numba compilation, page faults)
    benchmark.group = f"{shape} {np.dtype(dtype).name} {threads}thr"
    benchmark.extra_info.update(shape=shape, dtype=np.dtype(dtype).name, threads=threads, method=method)
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
