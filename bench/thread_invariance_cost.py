#!/usr/bin/env python
"""One-thread cost of thread-count-invariant reductions: another build of ``fastlr._core`` against this one.

The row passes with a backward half (A^T W, A^T (A V)) and the masked gradients sum fixed blocks of the
problem (eighteenth session, HD); this times them, and randomized_svd through either build, at one
thread (CPU time of the calling thread, min over interleaved rounds, both builds in one process as in
``ab_kernels``). ``--aa`` adds a second copy of the other build, whose ratio to the first is the A/A
spread. ``--threads 2``: wall-clock instead, both cores' teams on that count.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/thread_invariance_cost.py /tmp/old/_core*.so --aa
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _backend
from ab_kernels import cpu_ms, interleaved_ms, load_core
from sparse_products import random_sparse

DENSE_WIDTHS = (10, 20, 40, 60)


def _cases(rng, quick: bool):
    """(label, kernel name, args) of each timed kernel call."""
    for dtype in (np.float32, np.float64):
        A = rng.standard_normal((5760, 1080)).astype(dtype)
        for l in DENSE_WIDTHS[:2] if quick else DENSE_WIDTHS:
            V = rng.standard_normal((1080, l)).astype(dtype)
            W = rng.standard_normal((5760, l)).astype(dtype)
            name = f"5760x1080 {np.dtype(dtype).name} l={l}"
            yield f"A^T (A V) {name}", "power_step", (A, V)
            yield f"gram_product {name}", "gram_product", (A, V)
            yield f"A^T W {name}", "rmatmul", (A, W)
    A = rng.standard_normal((100_000, 500))
    yield "A^T (A V) 100000x500 float64 l=20", "power_step", (A, rng.standard_normal((500, 20)))
    yield "A^T W 100000x500 float64 l=20", "rmatmul", (A, rng.standard_normal((100_000, 20)))
    for dtype in (np.float32, np.float64):
        M = random_sparse(1_000_000, 500, 500_000, dtype, rng)
        for l in (8, 20):
            W = rng.standard_normal((1_000_000, l)).astype(dtype)
            yield (f"CSR A^T W 1Mx500@500k {np.dtype(dtype).name} l={l}", "rmatmul_csr",
                   (M.indptr, M.indices, M.data, W, 500))
            yield (f"CSR A^T (A V) 1Mx500@500k {np.dtype(dtype).name} l={l}", "power_step_csr",
                   (M.indptr, M.indices, M.data, rng.standard_normal((500, l)).astype(dtype)))
    for (m, n, nnz) in ((1_000_000, 500, 500_000), (100_000, 5000, 1_000_000)):
        M = random_sparse(m, n, nnz, np.float64, rng)
        for k in (10, 32):
            U, V = rng.standard_normal((m, k)), rng.standard_normal((n, k))
            yield (f"gd_masked_grad {m}x{n}@{nnz} float64 k={k}", "gd_masked_grad",
                   (M.indptr, M.indices, M.data, U, V, 0.1))


def _with_core(core, call):
    """call() with fastlr's C++ backend set to ``core`` (randomized_svd through another build)."""
    def run():
        saved = _backend._loaded["cpp"]
        _backend._loaded["cpp"] = core
        try:
            return call()
        finally:
            _backend._loaded["cpp"] = saved
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="path of the other build's _core extension file")
    ap.add_argument("--aa", action="store_true", help="also time a second copy of the other build (A/A)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="l = 10, 20 only")
    ap.add_argument("--only", default="", help="comma-separated substrings of the labels to run")
    args = ap.parse_args(argv)
    this = fastlr.get_backend("cpp")
    cores = {"old": load_core(args.other)}
    if args.aa:
        with tempfile.TemporaryDirectory() as tmp:
            cores["old2"] = load_core(shutil.copy(args.other, tmp))
    cores["new"] = this
    for core in cores.values():
        if hasattr(core, "_set_cache_sizes"):
            core._set_cache_sizes(*_backend.read_cache_sizes())
        core.set_num_threads(args.threads)
    fastlr.set_num_threads(args.threads)
    clock = cpu_ms if args.threads == 1 else (lambda f: (lambda t: (f(), (time.perf_counter() - t) * 1e3)[1])(
        time.perf_counter()))
    rng = np.random.default_rng(0)
    only = [s for s in args.only.split(",") if s]
    rows = []
    with threadpool_limits(limits=args.threads):
        cases = list(_cases(rng, args.quick))
        A = rng.standard_normal((5760, 1080))
        for dtype in (np.float32, np.float64):
            Ad = A.astype(dtype)
            for k in (10, 50):
                cases.append((f"randomized_svd 5760x1080 {np.dtype(dtype).name} k={k}", None,
                              lambda Ad=Ad, k=k: fastlr.randomized_svd(Ad, k, random_state=0, backend="cpp")))
        for label, kernel, call_args in cases:
            if only and not any(s in label for s in only):
                continue
            if kernel is None:
                calls = {name: _with_core(core, call_args) for name, core in cores.items()}
            else:
                calls = {name: (lambda core=core: getattr(core, kernel)(*call_args)) for name, core in cores.items()}
            for call in calls.values():
                call()  # warm up (and calibrate)
            times = _timed(calls, args.rounds, clock)
            best = {name: min(t) for name, t in times.items()}
            line = f"{label:44s} " + " ".join(f"{name} {best[name]:8.2f}" for name in cores)
            line += f" | new/old {best['new'] / best['old']:.3f}"
            if args.aa:
                line += f" old2/old {best['old2'] / best['old']:.3f}"
            print(line, flush=True)
            rows.append(line)
    return 0


def _timed(calls: dict, rounds: int, clock) -> dict:
    if clock is cpu_ms:
        return interleaved_ms(calls, rounds, reverse_odd=True)
    times = {name: [] for name in calls}
    for i in range(rounds):
        for name in (list(calls)[::-1] if i % 2 else calls):
            times[name].append(clock(calls[name]))
    return times


if __name__ == "__main__":
    raise SystemExit(main())
