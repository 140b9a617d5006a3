#!/usr/bin/env python
"""Public calls of an older checkout against this one's, interleaved in ONE process: randomized_svd (k = 10, 50)
and scw (CountSketch m = 20, k = 10) on tall, square-ish and wide dense A, float32 and float64.

Each package gets its own fresh calibration cache (``FASTLR_CACHE_DIR``, set around its calls), so both measure
their own kernel-or-BLAS thresholds. Wall milliseconds, min over rounds, the order alternating; new / old < 1: this
checkout is faster. Prepare the older checkout as package ``fastlr_old`` (as for ab_countsketch_api.py):

    git archive <commit> fastlr | tar -x -C /tmp/old && mv /tmp/old/fastlr /tmp/old/fastlr_old
    cp <that commit's _core .so> /tmp/old/fastlr_old/
    sed -i 's/"fastlr\\._/"fastlr_old._/g' /tmp/old/fastlr_old/_backend.py   # its backends load its own modules
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_public_calls.py --old /tmp/old [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr

SHAPES = ((100000, 200), (100000, 500), (5760, 1080), (20000, 2000))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="folder holding the older checkout as package fastlr_old")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.old)
    import fastlr_old  # noqa: E402 (found only once --old is on the path)

    caches = {fastlr_old: tempfile.mkdtemp(), fastlr: tempfile.mkdtemp()}

    def wall(lib, call) -> float:
        os.environ["FASTLR_CACHE_DIR"] = caches[lib]
        start = time.perf_counter()
        call(lib)
        return time.perf_counter() - start

    rng = np.random.default_rng(0)
    with threadpool_limits(args.threads), fastlr.thread_limit(args.threads), fastlr_old.thread_limit(args.threads):
        for n, d in SHAPES:
            for dtype in (np.float32, np.float64):
                A = rng.standard_normal((n, d)).astype(dtype)
                cases = [(f"randomized_svd k={k}", lambda lib, k=k: lib.randomized_svd(A, k, random_state=0))
                         for k in (10, 50)]
                cases.append(("scw m=20 k=10", lambda lib: lib.scw(A, lib.CountSketch(20, n, seed=1), 10)))
                for name, call in cases:
                    times = {fastlr_old: [], fastlr: []}
                    for r in range(args.rounds + 1):  # the first round warms up (and calibrates)
                        for lib in (fastlr_old, fastlr) if r % 2 else (fastlr, fastlr_old):
                            times[lib].append(wall(lib, call))
                    old, new = min(times[fastlr_old][1:]), min(times[fastlr][1:])
                    print(f"{name} {n}x{d} {np.dtype(dtype).name}: {old * 1e3:.1f} -> {new * 1e3:.1f} ms "
                          f"({new / old:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
