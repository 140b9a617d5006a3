"""2 threads vs 1 right after a multi-threaded BLAS call (OpenBLAS's workers still spinning) and on a
quiet machine: products and randomized_svd, wall clock, min over rounds; prints a JSON dict
{"<call>|<blas or quiet>|<threads>": ms}.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/threads_after_blas.py 6

Run it under two builds' Pythons alternately to compare them (bench/README.md, sixth session, lead).
"""
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits
import fastlr
rounds = int(sys.argv[1])
rng = np.random.default_rng(0)
G = rng.standard_normal((400, 400))
core = fastlr.get_backend("cpp")
cases = []
for name, n, d, l in [("gram_product", 5760, 1080, 20), ("gram_product", 100000, 500, 20)]:
    A = rng.standard_normal((n, d)).astype(np.float32); V = rng.standard_normal((d, l)).astype(np.float32)
    cases.append((f"{name} {n}x{d} l={l} f32", (lambda f, A, V: lambda: f(A, V))(getattr(core, name), A, V)))
A64 = rng.standard_normal((5760, 1080)); A32 = A64.astype(np.float32)
cases.append(("randomized_svd 5760x1080 k=10 f64", lambda: fastlr.randomized_svd(A64, 10, random_state=0)))
cases.append(("randomized_svd 5760x1080 k=10 f32", lambda: fastlr.randomized_svd(A32, 10, random_state=0)))
# ninth session's routes: the float32-formed Gram matrix (float64, k = 50), the Krylov finder on a wide
# matrix's rows, and a sparse product on the CSR kernel
cases.append(("randomized_svd 5760x1080 k=50 f64", lambda: fastlr.randomized_svd(A64, 50, random_state=0)))
W64 = np.ascontiguousarray(A64.T); W32 = W64.astype(np.float32)
cases.append(("randomized_svd 1080x5760 k=10 f64", lambda: fastlr.randomized_svd(W64, 10, random_state=0)))
cases.append(("randomized_svd 1080x5760 k=10 f32", lambda: fastlr.randomized_svd(W32, 10, random_state=0)))
S = __import__("scipy.sparse", fromlist=["random"]).random(100000, 5000, density=0.002, format="csr", random_state=1)
SV = rng.standard_normal((5000, 8))
cases.append(("InMemory(csr 100000x5000 0.2%).times(8 columns) f64",
              (lambda op: lambda: op.times(SV))(__import__("fastlr._matrix", fromlist=["InMemory"]).InMemory(S))))
res = {}
for r in range(rounds + 1):
    for before in ("blas", "quiet"):
        for label, call in cases:
            for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                fastlr.set_num_threads(t)
                with threadpool_limits(limits=t, user_api="blas"):
                    if before == "blas":
                        with threadpool_limits(limits=2, user_api="blas"):
                            G @ G
                    else:
                        time.sleep(0.05)
                    w = time.perf_counter(); call(); w = time.perf_counter() - w
                if r > 0:
                    res.setdefault(f"{label}|{before}|{t}", []).append(w * 1e3)
print(json.dumps({k: min(v) for k, v in res.items()}))
