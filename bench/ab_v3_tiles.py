#!/usr/bin/env python
"""Product kernel rates (GF/s, ms) at x86-64-v3 and v4, this build against another one.

Both builds run in one process on the same arrays, rounds interleaved; per-call CPU time
(time.thread_time), min over rounds, one thread. Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_v3_tiles.py [--other OLD_core.so]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import fastlr._core as this_core
from ab_kernels import load_core  # another build's extension (bench/ is the script's folder)

FLOPS = {"gram_product": 4, "matmul": 2, "rmatmul": 2, "gd_products": 4}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--other")
    ap.add_argument("--shapes", default="5760x1080,100000x500")
    ap.add_argument("--ls", default="10,20,60")
    ap.add_argument("--kernels", default="gram_product,matmul,rmatmul")
    ap.add_argument("--isa", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    cores = [("new", this_core)]
    if a.other:
        cores.insert(0, ("old", load_core(a.other)))
    for _, c in cores:
        c.set_num_threads(1)
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(":")[1].strip()
    blas = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()]
    print(f"# CPU {cpu}; BLAS {blas}; 1 thread; thread_time min of {a.rounds} interleaved rounds")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for shape in a.shapes.split(","):
            n, d = map(int, shape.split("x"))
            for dt in a.dtypes.split(","):
                A = rng.standard_normal((n, d)).astype(dt)
                for l in map(int, a.ls.split(",")):
                    V = rng.standard_normal((d, l)).astype(dt)
                    W = rng.standard_normal((n, l)).astype(dt)
                    for kern in a.kernels.split(","):
                        args = {"gram_product": (A, V), "matmul": (A, V), "rmatmul": (A, W), "gd_products": (A, W, V)}[kern]
                        for isa in map(int, a.isa.split(",")):
                            t = {lab: [] for lab, _ in cores}
                            for _ in range(a.rounds + 1):
                                for lab, c in cores:
                                    c._cap_product_isa(isa)
                                    s = time.thread_time()
                                    getattr(c, kern)(*args)
                                    t[lab].append(time.thread_time() - s)
                            fl = FLOPS[kern] * n * d * l
                            row = f"{shape} {dt} l={l:2d} {kern:12s} v{isa + 2}"
                            for lab, _ in cores:
                                b = min(t[lab][1:])
                                row += f" | {lab} {b * 1e3:8.2f} ms {fl / b / 1e9:6.1f} GF/s"
                            if len(cores) == 2:
                                row += f" | {min(t['old'][1:]) / min(t['new'][1:]):.2f}x"
                            print(row, flush=True)


if __name__ == "__main__":
    main()
