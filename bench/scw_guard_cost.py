#!/usr/bin/env python
"""What scw's guard costs: ``fastlr.scw(A, S, k)`` for a sketch with a ``reference`` (learned and data-driven
sketches: the random ``CountSketch(m, n, seed)`` they start from) against ``guard=False`` (S alone) and the random
seeded CountSketch alone, one process, rounds interleaved (min of the rounds), at 1 and 2 threads.

The guard runs a second sketch pass (R A), one product ``A [V W]`` twice as wide as S's ``A V`` and a small Gram
matrix to compare the two bases' top-k energies; only the chosen ``B`` gets its thin SVD. S here is a CountSketch
with the reference's positions and values scaled by U(0.5, 2) (a learned sketch's shape; its values do not change
the cost).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/scw_guard_cost.py [--isa v4|v3|baseline] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import calibration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import blas_description  # noqa: E402

ISA_LEVELS = {"baseline": 0, "v3": 1, "v4": 2}
#: (n, d, m, k): 5760 x 1080 and 100000 x 200 are issue 13's shapes; 3840 x 720 a real video frame stack's
CASES = ((5760, 1080, 20, 10), (3840, 720, 20, 10), (100_000, 200, 50, 10), (2000, 300, 20, 10))


def rows(rounds: int, threads: int):
    rng = np.random.default_rng(0)
    for n, d, m, k in CASES:
        for dtype in (np.float64, np.float32):
            A = rng.standard_normal((n, d)).astype(dtype)
            R = fastlr.CountSketch(m, n, seed=1)
            S = fastlr.CountSketch.from_arrays(R.rows, R.values * rng.uniform(0.5, 2, n), m)
            S.reference = fastlr.CountSketch(m, n, seed=1)  # seeded, never materialized: as the builders attach it
            calls = {"alone": lambda: fastlr.scw(A, S, k, guard=False), "guarded": lambda: fastlr.scw(A, S, k),
                     "random": lambda: fastlr.scw(A, S.reference, k)}
            times = {name: [] for name in calls}
            with fastlr.thread_limit(threads), threadpool_limits(threads):
                for call in calls.values():
                    call()  # warm-up
                for _ in range(rounds):
                    for name, call in calls.items():
                        start = time.perf_counter()
                        call()
                        times[name].append(time.perf_counter() - start)
            t = {name: 1e3 * min(v) for name, v in times.items()}
            print(f"| {n}x{d} {np.dtype(dtype).name} m={m} k={k} | {threads} | {t['alone']:.2f} | {t['guarded']:.2f} "
                  f"| {t['guarded'] / t['alone']:.2f}x | {t['random']:.2f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=list(ISA_LEVELS), default="v4")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    _core._cap_isa(ISA_LEVELS[args.isa])
    print(f"fastlr {fastlr.__version__}, kernels capped at {args.isa} (they run {_core.build_info()['kernel_isa']}); "
          f"{blas_description()}; CPU: {calibration.cpu_model()}")
    print("\n| matrix | threads | S alone ms | guarded ms | guarded / alone | random alone ms |\n|---|---|---|---|---|---|")
    for threads in (1, 2):
        rows(args.rounds, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
