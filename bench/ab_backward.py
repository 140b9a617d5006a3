#!/usr/bin/env python
"""The backward products against the BLAS calls they replace: ``A.T @ W`` (rmatmul),
``A.T @ (A @ V)`` (gram_product) and ``(A @ V, A.T @ W)`` (gd_products, --kernels) of row-major A, per
factor width, one thread.

Per-call CPU time (time.thread_time), min over interleaved rounds, one process: this build's kernel
(and another build's, --other), fastlr's BLAS layout (``_linalg.blas_times``) and the user's
expression (``A.T @ W``; ``A.T @ (A @ V)``). Ratios are BLAS time over kernel time (> 1: the kernel
faster). Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_backward.py [--other OLD_core.so]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ab_kernels import load_core  # another build's extension (bench/ is the script's folder)
from threadpoolctl import threadpool_info, threadpool_limits

import fastlr._core as this_core
from fastlr._linalg import blas_times


def widths(spec: str) -> list[int]:
    """"8-12,16" -> [8, 9, 10, 11, 12, 16]."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--other")
    ap.add_argument("--shapes", default="5760x1080,100000x500")
    ap.add_argument("--ls32", default="8,12,16,17,20,24,28,32,36,40,44,48")
    ap.add_argument("--ls64", default="4,6,8,9,10,12,14,16,18,20,22,24")
    ap.add_argument("--kernels", default="rmatmul,gram_product")
    ap.add_argument("--isa", type=int, default=1, help="_cap_isa level: 0 baseline, 1 x86-64-v3")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    cores = [("new", this_core)] + ([("old", load_core(a.other))] if a.other else [])
    for _, c in cores:
        c.set_num_threads(1)
        c._cap_isa(a.isa)
    cpu = [line for line in open("/proc/cpuinfo") if line.startswith("model name")][0].split(":")[1].strip()
    blas = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()]
    print(f"# CPU {cpu}; BLAS {blas}; isa cap {a.isa}; 1 thread; thread_time min of {a.rounds} interleaved rounds")
    labels = [lab for lab, _ in cores] + ["blas_times", "user"]
    print("# shape dtype l kernel | " + " | ".join(f"{lab} ms" for lab in labels)
          + " | blas_times/new" + (" | blas_times/old | old/new" if a.other else ""))
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for shape in a.shapes.split(","):
            n, d = map(int, shape.split("x"))
            for dt, spec in (("float32", a.ls32), ("float64", a.ls64)):
                A = rng.standard_normal((n, d)).astype(dt)
                for l in widths(spec):
                    V = rng.standard_normal((d, l)).astype(dt)
                    W = rng.standard_normal((n, l)).astype(dt)
                    for kern in a.kernels.split(","):
                        if kern == "rmatmul":
                            calls = [lambda c=c: c.rmatmul(A, W) for _, c in cores]
                            calls += [lambda: blas_times(A.T, W), lambda: A.T @ W]
                        elif kern == "gram_product":
                            calls = [lambda c=c: c.gram_product(A, V) for _, c in cores]
                            calls += [lambda: blas_times(A.T, blas_times(A, V)), lambda: A.T @ (A @ V)]
                        else:  # gd_products: (A @ V, A.T @ W) in one pass
                            calls = [lambda c=c: c.gd_products(A, W, V) for _, c in cores]
                            calls += [lambda: (blas_times(A, V), blas_times(A.T, W)), lambda: (A @ V, A.T @ W)]
                        t = [[] for _ in calls]
                        for r in range(a.rounds + 1):
                            order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
                            for i in order:
                                s = time.thread_time()
                                calls[i]()
                                t[i].append(time.thread_time() - s)
                        best = [min(x[1:]) * 1e3 for x in t]
                        row = f"{shape} {dt} l={l:2d} {kern:12s} | " + " | ".join(f"{b:7.2f}" for b in best)
                        nb = len(cores)
                        row += f" | {best[nb] / best[0]:.2f}"
                        if a.other:
                            row += f" | {best[nb] / best[1]:.2f} | {best[1] / best[0]:.2f}"
                        print(row, flush=True)


if __name__ == "__main__":
    main()
