#!/usr/bin/env python
"""What ``fastlr.HeavyRowSketch`` adds to a sketch's cost (issue 15): one thread, CPU ms, min over interleaved rounds.

For each matrix: the operand's row-norm pass, ``adapted_to`` (the sketch for those norms), ``S @ A`` plain and
wrapped, ``fastlr.scw(A, S, k)`` plain and wrapped (m = 20, k = 10), and for dense A the memory floor of one read
(bench/read_floor.py: fastest of A.sum, A @ ones, ones @ A and two g++ loops).

    python bench/heavy_rows_cost.py                 # every case, x86-64-v3 (this CPU's level)
    python bench/heavy_rows_cost.py --isa v3        # the kernels capped at x86-64-v3 (AVX2) on an AVX-512 CPU
    python bench/heavy_rows_cost.py --isa baseline  # the kernels capped at the baseline (SSE2)
    python bench/heavy_rows_cost.py --cases dense64 --rounds 9
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from ab_kernels import interleaved_ms
from read_floor import cpp_reads, floor_calls, rotation
from sparse_products import random_sparse
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr import datasets
from fastlr._matrix import operand

M, K = 20, 10


def with_heavy_rows(A, rows=(10, 500_000, 999_999), scale=30.0):
    """A with a few of its nonempty rows near ``rows`` made heavy (each ~ 3-10x ||A||_F^2 / m)."""
    A = A.copy()
    lengths = np.diff(A.indptr)
    for i in rows:
        i = i + int(np.argmax(lengths[i:] > 0))
        A.data[A.indptr[i]:A.indptr[i + 1]] = scale * np.sqrt(A.nnz / M / max(lengths[i], 1))
    return A


def cases(names):
    rng = np.random.default_rng(0)
    make = {
        "csr1Mx500": lambda: random_sparse(1_000_000, 500, 500_000, np.float64, rng),
        "csr1Mx500-heavy": lambda: with_heavy_rows(random_sparse(1_000_000, 500, 500_000, np.float64, rng)),
        "dense64": lambda: rng.standard_normal((5760, 1080)),
        "dense32": lambda: rng.standard_normal((5760, 1080)).astype(np.float32),
        "text-topic": lambda: datasets.text(1, n_terms=20000, n_docs=1000, topics=range(10, 20), seed=3)[0],
        "video": lambda: datasets.video(1, height=120, width=320, seed=1)[0],
    }
    return {name: make[name]() for name in names}


def measure(name, A, rounds, reads):
    n = A.shape[0]
    S = fastlr.CountSketch(M, n, seed=0)
    H = fastlr.HeavyRowSketch(S)
    op = operand(A)
    energy = op.row_squared_norms()
    heavy = len(H.heavy(energy))
    calls = {
        "row norms": op.row_squared_norms,
        "adapted_to": lambda: H.adapted_to(energy),
        "S @ A": lambda: S @ A,
        "H @ A": lambda: H @ A,
        "scw plain": lambda: fastlr.scw(A, S, K),
        "scw heavy": lambda: fastlr.scw(A, H, K),
    }
    if not hasattr(A, "tocsr"):
        calls.update(floor_calls(rotation([A]), A.dtype, A.shape, reads))
    for call in calls.values():  # warm-up: caches, route choice
        call()
    times = interleaved_ms(calls, rounds, rotate=True)
    best = {key: min(v) for key, v in times.items()}
    floor = min((v for key, v in best.items() if key.startswith(("A.", "A @", "ones", "C++"))), default=None)
    kind = f"CSR nnz {A.nnz}" if hasattr(A, "tocsr") else f"dense {A.dtype}"
    print(f"{name}: {A.shape[0]} x {A.shape[1]} {kind}, heavy rows {heavy}")
    for key in ("row norms", "adapted_to", "S @ A", "H @ A", "scw plain", "scw heavy"):
        print(f"  {key:12s} {best[key]:9.3f} ms")
    print(f"  scw heavy / plain {best['scw heavy'] / best['scw plain']:.3f}   H@A / S@A "
          f"{best['H @ A'] / best['S @ A']:.3f}")
    if floor is not None:
        print(f"  read floor   {floor:9.3f} ms   row norms / floor {best['row norms'] / floor:.2f}")
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["csr1Mx500", "csr1Mx500-heavy", "dense64", "dense32", "text-topic", "video"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--isa", choices=["native", "v3", "baseline"], default="native")
    args = ap.parse_args(argv)
    if args.isa != "native":
        _core._cap_isa({"baseline": 0, "v3": 1}[args.isa])
    print(f"fastlr {fastlr.__file__}; isa {_core.build_info()['kernel_isa']}; load {os.getloadavg()}")
    reads = cpp_reads()
    with threadpool_limits(1), fastlr.thread_limit(1):
        for name, A in cases(args.cases).items():
            measure(name, A, args.rounds, reads)
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
