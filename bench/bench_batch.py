"""Many small matrices at once: fastlr.randomized_svd of a (b, n, d) batch against a Python loop
over scikit-learn's randomized_svd and against torch.svd_lowrank on the batch (if torch is installed).

Run as a script (anchors at their best: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset here):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_batch.py [--count 1000] [--rounds 3]
    [--n 480 --d 90 --k 10 --dtype float64 --threads 1 2]
Prints, per thread count, the minimum over rounds of each method (interleaved) and the worst
excess Frobenius error over the batch relative to the optimal rank-k error. One thread: each call's
CPU time (``time.thread_time``: every method runs in the calling thread); more: wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

import fastlr  # noqa: E402


def _batch(count, n, d, seed=0):
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.arange(1, d + 1)  # sigma_i = 1/i, as in the GD benchmark
    out = np.empty((count, n, d))
    for i in range(count):
        U = np.linalg.qr(rng.standard_normal((n, d)))[0]
        V = np.linalg.qr(rng.standard_normal((d, d)))[0]
        out[i] = (U * spectrum) @ V.T
    return out


def _worst_excess(B, U, s, Vt, k):
    worst = 0.0
    for i in range(len(B)):  # in float64 whatever the batch's dtype
        A, u, t, vt = (np.asarray(x[i], dtype=np.float64) for x in (B, U, s, Vt))
        opt = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
        err = np.linalg.norm(A - (u * t) @ vt)
        worst = max(worst, err / opt)
    return worst


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--n", type=int, default=480)
    parser.add_argument("--d", type=int, default=90)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from sklearn.utils.extmath import randomized_svd as sk_rsvd

    try:
        import torch
    except ImportError:
        torch = None
    B = _batch(args.count, args.n, args.d).astype(args.dtype)
    k = args.k
    blas = [(i["internal_api"], i.get("architecture")) for i in threadpool_info() if i["user_api"] == "blas"]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    isa = fastlr.get_backend("cpp").build_info().get("isa", "?") if "cpp" in fastlr.available_backends() else "n/a"
    print(f"# CPU {cpu}; fastlr kernels {isa}")
    print(f"# BLAS: {blas}; batch {args.count} x {args.n} x {args.d} {args.dtype}, k={k}, "
          f"sigma_i = 1/i")

    def ours():
        return fastlr.randomized_svd(B, k, random_state=0)

    def sklearn_loop():
        out = [sk_rsvd(A, k, random_state=0) for A in B]
        return tuple(np.stack(x) for x in zip(*out))

    methods = {"fastlr batch": ours, "sklearn loop": sklearn_loop}
    if torch is not None:
        T = torch.from_numpy(B)

        def torch_lowrank():
            U, s, V = torch.svd_lowrank(T, q=k + 10, niter=4)
            return U[..., :k].numpy(), s[..., :k].numpy(), V[..., :k].transpose(-1, -2).numpy()

        methods["torch.svd_lowrank"] = torch_lowrank
    for threads in args.threads:
        clock = time.thread_time if threads == 1 else time.perf_counter
        times = {name: [] for name in methods}
        results = {}
        with threadpool_limits(threads), fastlr.thread_limit(threads):
            if torch is not None:
                torch.set_num_threads(threads)
            for _ in range(args.rounds):
                for name, fn in methods.items():
                    start = clock()
                    results[name] = fn()
                    times[name].append(clock() - start)
        base = min(times["sklearn loop"])
        for name in methods:
            t = min(times[name])
            print(f"threads={threads} {name:18s} {t * 1e3:9.1f} ms {'cpu' if threads == 1 else 'wall'}  "
                  f"{base / t:5.2f}x sklearn loop  "
                  f"worst excess error {_worst_excess(B, *results[name], k):.6f}")


if __name__ == "__main__":
    main()
