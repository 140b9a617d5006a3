"""The Python cost of fastlr's dense BLAS route before its GEMM, as a benchmark meets it: ``InMemory.times``,
``rtimes`` and ``gram_product`` at 60 columns of 5760 x 1080 (their BLAS route at x86-64-v3) with the BLAS call
stubbed out, timed warm (timeit) and right after a real 5760 x 1080 x 60 GEMM, which flushes the caches the Python
code and its objects sat in (median and min of 25, microseconds). NumPy's own ``A @ V`` pays only its C dispatch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTLR_CACHE_DIR=<dir> python bench/route_prelude.py
"""

import time
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice, memory


def main() -> int:
    _core._cap_isa(1)
    choice.thresholds()
    rng = np.random.default_rng(0)
    real = memory.blas_product
    with fastlr.thread_limit(1), threadpool_limits(1):
        for dt in (np.float32, np.float64):
            A = rng.standard_normal((5760, 1080)).astype(dt)
            op = InMemory(A)
            V, W = rng.standard_normal((1080, 60)).astype(dt), rng.standard_normal((5760, 60)).astype(dt)
            P, Z = A @ V, A.T @ W
            calls = {"times": lambda: op.times(V), "rtimes": lambda: op.rtimes(W), "gram": lambda: op.gram_product(V)}
            out = []
            memory.blas_product = lambda M, F, swapped: P if M.shape[0] == A.shape[0] else Z  # noqa: B023
            try:
                for name, call in calls.items():
                    warm = timeit.timeit(call, number=500) / 500
                    cold = []
                    for _ in range(25):
                        A @ V
                        t0 = time.perf_counter()
                        call()
                        cold.append(time.perf_counter() - t0)
                    out.append(f"{name}: warm {warm * 1e6:.1f}, after a GEMM median {np.median(cold) * 1e6:.1f} "
                               f"min {min(cold) * 1e6:.1f} us")
            finally:
                memory.blas_product = real
            print(np.dtype(dt).name, " | ".join(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
