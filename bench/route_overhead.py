"""The Python a dense product's route costs per call: ``InMemory.times``, ``rtimes``, ``gram_product``, ``power_pass``
and ``gd_products`` on a tiny A (64 x 64 float64, so the product itself is a few microseconds) minus the bare call
they end in (the C++ kernel at 3 columns, x86-64-v3: 2 until the twentieth session, when float64 2 columns moved to
the column passes; ``_core.vector_product`` at 1 column, or with FASTLR_PRODUCT_CHOICE=blas NumPy's BLAS expression,
the "[BLAS]" rows), one thread, CPU time of this thread. "warm": best of 7 timeit batches of 300 calls; "after a GEMM": median of ROUNDS single calls, each right
after a 5760 x 1080 x 20 float64 GEMM has flushed the caches (as a product on a large A meets it; fastlr's call and
the bare one alternate).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTLR_CACHE_DIR=<dir> python bench/route_overhead.py [ROUNDS]
"""

import sys
import time
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice


def cases(op, A, V1, V2, W2):
    """name -> (fastlr's call, the bare call it ends in)."""
    k = _core
    return {
        "times l=3 [kernel]": (lambda: op.times(V2), lambda: k.matmul(A, V2)),
        "rtimes l=3 [kernel]": (lambda: op.rtimes(W2), lambda: k.rmatmul(A, W2)),
        "gram l=3 [kernel]": (lambda: op.gram_product(V2), lambda: k.gram_product(A, V2)),
        "power l=3 [kernel]": (lambda: op.power_pass(V2), lambda: k.power_step(A, V2)),
        "gd l=3 [kernel]": (lambda: op.gd_products(W2, V2), lambda: k.gd_products(A, W2, V2)),
        "times l=1 [vector]": (lambda: op.times(V1), lambda: k.vector_product(0, A, V1)),
        "rtimes l=1 [vector]": (lambda: op.rtimes(V1), lambda: k.vector_product(1, A, V1)),
        "gram l=1 [vector]": (lambda: op.gram_product(V1), lambda: k.vector_product(2, A, V1)[1]),
        "power l=1 [vector]": (lambda: op.power_pass(V1), lambda: k.vector_product(2, A, V1)),
        "gd l=1 [vector]": (lambda: op.gd_products(V1, V1), lambda: k.vector_product(3, A, V1, V1)),
        # the rows below run where the route is BLAS (FASTLR_PRODUCT_CHOICE=blas), the rows above where it is not
        "times l=1 [BLAS]": (lambda: op.times(V1), lambda: A @ V1),
        "rtimes l=1 [BLAS]": (lambda: op.rtimes(V1), lambda: A.T @ V1),
        "gram l=1 [BLAS]": (lambda: op.gram_product(V1), lambda: A.T @ (A @ V1)),
        "power l=1 [BLAS]": (lambda: op.power_pass(V1), lambda: (lambda P: (P, A.T @ P))(A @ V1)),
        "gd l=1 [BLAS]": (lambda: op.gd_products(V1, V1), lambda: (A @ V1, A.T @ V1)),
    }


def main(argv) -> int:
    rounds = int(argv[0]) if argv else 101
    _core._cap_isa(1)
    choice.thresholds()
    rng = np.random.default_rng(0)
    big, big_v = rng.standard_normal((5760, 1080)), rng.standard_normal((1080, 20))
    A = rng.standard_normal((64, 64))
    op = InMemory(A)
    V1, V2, W2 = rng.standard_normal((64, 1)), rng.standard_normal((64, 3)), rng.standard_normal((64, 3))
    warm_total, cold_total = [], []
    with fastlr.thread_limit(1), threadpool_limits(1):
        for name, (ours, bare) in cases(op, A, V1, V2, W2).items():
            kind, width = name.split()[0], int(name.split("=")[1][0])
            route = op._route({"times": "matmul", "rtimes": "rmatmul", "power": "gram"}.get(kind, kind), width, 1)
            if f"[{'kernel' if route[0] else 'vector' if route[3] is not None else 'BLAS'}]" not in name:
                continue  # another route's row
            warm = [min(timeit.repeat(f, number=300, repeat=7)) / 300 for f in (ours, bare)]
            cold = ([], [])
            for _ in range(rounds):
                for i, f in enumerate((ours, bare)):
                    big @ big_v
                    t0 = time.thread_time()
                    f()
                    cold[i].append(time.thread_time() - t0)
            c = [float(np.median(x)) for x in cold]
            warm_total.append(warm[0] - warm[1])
            cold_total.append(c[0] - c[1])
            print(f"{name:20s} warm: fastlr {warm[0] * 1e6:6.2f} bare {warm[1] * 1e6:6.2f} -> "
                  f"+{warm_total[-1] * 1e6:5.1f} us | after a GEMM: fastlr {c[0] * 1e6:6.1f} bare {c[1] * 1e6:6.1f} "
                  f"-> +{cold_total[-1] * 1e6:5.1f} us", flush=True)
    print(f"mean over the routes: warm +{np.mean(warm_total) * 1e6:.1f} us, "
          f"after a GEMM +{np.mean(cold_total) * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
