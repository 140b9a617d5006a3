"""Where randomized_svd's time goes: per-phase CPU time of one default call, single thread.

    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python bench/svd_phases.py --isa v3
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/svd_phases.py --isa v4 --dtype float64

Each phase is the CPU time (``time.thread_time``) spent inside one function of fastlr's pipeline,
summed over the call (phases nest: ``range_basis`` holds the SYRK and the power steps), the mean over
``--calls`` calls after two warm-up calls; the total line gives the min and the mean of whole calls.
``--v3-pass-columns N`` pins the x86-64-v3 kernel/BLAS threshold of ``A @ V`` and ``A.T @ W``
(``choice.KERNEL_COLUMNS``) in this process, to see what another rule would give.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice, memory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_svd import _make  # noqa: E402

scw = importlib.import_module("fastlr.scw")
randomized = importlib.import_module("fastlr.randomized")
ISA_LEVELS = {"v4": 2, "v3": 1, "baseline": 0}


def _timed(owner, name, label, spent, calls):
    """Replace owner.name by a wrapper adding its CPU time to spent[label]."""
    f = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - t
            calls[label] += 1

    setattr(owner, name, wrapper)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=list(ISA_LEVELS), default="v4")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--matrix", default="dense5760x1080", choices=["dense5760x1080", "dense100000x500"])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--v3-pass-columns", type=int, default=None)
    args = parser.parse_args(argv)
    _core._cap_isa(ISA_LEVELS[args.isa])
    level = _core.build_info()["kernel_isa"]
    choice._level = level if level in choice.LEVELS else None
    if args.v3_pass_columns is not None:
        for dtype in ("float32", "float64"):
            choice.KERNEL_COLUMNS["x86-64-v3", "C", "pass", dtype] = args.v3_pass_columns
    A = _make(args.matrix)[0].astype(args.dtype)

    spent, calls = collections.defaultdict(float), collections.Counter()
    for owner, name, label in (
            (memory, "_syrk", "SYRK (A^T A)"), (randomized, "range_basis", "range_basis (SYRK + power steps)"),
            (scw, "power_iterations", "power_iterations"), (InMemory, "_gram_last_step", "last step (tested)"),
            (InMemory, "_gram_ritz_tail", "Ritz tail: 2 products G V, Rayleigh-Ritz on [V, G V]"),
            (scw, "normalize", "LU between steps"), (scw, "ritz_pairs", "Ritz test (2nd step)"),
            (scw, "orthonormal", "QR of the last step"), (randomized, "basis_factors", "finish: B = A V, thin SVD"),
            (InMemory, "thin_svd", "thin SVD of B"), (InMemory, "truncate", "truncate, signs")):
        _timed(owner, name, label, spent, calls)
    power_steps = InMemory.power_steps

    def timed_power_steps(self, *a, **kw):  # the steps' products G V (or passes), not the last step
        steps = power_steps(self, *a, **kw)
        step = steps.step

        def timed_step(V):
            t = time.thread_time()
            try:
                return step(V)
            finally:
                spent["products G V (fused steps)"] += time.thread_time() - t
                calls["products G V (fused steps)"] += 1

        return steps._replace(step=timed_step)

    InMemory.power_steps = timed_power_steps
    with fastlr.thread_limit(1), threadpool_limits(1):
        for _ in range(2):
            fastlr.randomized_svd(A, args.k, random_state=0)
        spent.clear()
        calls.clear()
        totals = []
        for _ in range(args.calls):
            t = time.thread_time()
            fastlr.randomized_svd(A, args.k, random_state=0)
            totals.append(time.thread_time() - t)
    print(f"randomized_svd({args.matrix[5:]} {args.dtype}, k={args.k}), kernels at {level}, 1 thread: "
          f"min {min(totals) * 1e3:.1f} ms, mean {np.mean(totals) * 1e3:.1f} ms")
    print("\n| phase | ms per call | calls per call |\n|---|---|---|")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"| {label} | {seconds / args.calls * 1e3:.2f} | {calls[label] / args.calls:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
