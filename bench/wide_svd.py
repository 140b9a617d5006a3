#!/usr/bin/env python
"""randomized_svd on wide C-order A against scikit-learn, with fastlr's product rule and with the kernels forced.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/wide_svd.py --isa v4 --shape 500x100000

A is a rank-100 signal (sigma_i = 1/i) plus 1% noise. "forced" runs ``FASTLR_PRODUCT_CHOICE=kernel``: the one-pass
kernels at every width, which the width-only rule of the eleventh session picked for these widths (l = k + 10).
Each call's CPU time in the calling thread, min over ``--rounds`` after a warm-up, one thread.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.utils.extmath import randomized_svd as sklearn_randomized_svd
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core

ISA = {"v4": 2, "v3": 1, "baseline": 0}


def best(f, rounds: int) -> float:
    f()
    times = []
    for _ in range(rounds):
        t = time.thread_time()
        f()
        times.append(time.thread_time() - t)
    return min(times) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", choices=list(ISA), default="v4")
    ap.add_argument("--shape", default="500x100000")
    ap.add_argument("--ks", default="10,50")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    _core._cap_isa(ISA[args.isa])
    n, d = map(int, args.shape.split("x"))
    rng = np.random.default_rng(0)
    A64 = (rng.standard_normal((n, 100)) / np.arange(1, 101)) @ rng.standard_normal((100, d)) / np.sqrt(d)
    A64 += 0.01 * rng.standard_normal((n, d)) / np.sqrt(d)
    print(f"randomized_svd {n}x{d}, kernels at {_core.build_info()['kernel_isa']}, 1 thread; "
          "ms: fastlr (rule) / fastlr (kernels forced) / scikit-learn")
    with fastlr.thread_limit(1), threadpool_limits(1):
        for dtype in (np.float32, np.float64):
            A = A64.astype(dtype)
            for k in map(int, args.ks.split(",")):
                times = {}
                for mode in ("auto", "kernel"):
                    os.environ["FASTLR_PRODUCT_CHOICE"] = mode
                    times[mode] = best(lambda: fastlr.randomized_svd(A, k, random_state=0), args.rounds)
                os.environ.pop("FASTLR_PRODUCT_CHOICE")
                ref = best(lambda: sklearn_randomized_svd(A, k, random_state=0), args.rounds)
                print(f"{np.dtype(dtype).name} k={k}: {times['auto']:.1f} / {times['kernel']:.1f} / {ref:.1f} ms: "
                      f"{ref / times['auto']:.2f}x (forced {ref / times['kernel']:.2f}x)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
