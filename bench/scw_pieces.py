#!/usr/bin/env python
"""Where one ``fastlr.scw`` call spends its time, next to the NumPy/SciPy SCW of bench_svd._numpy_scw.

The issue-13 scw row of new_user_figures.py (5760 x 1080, ``CountSketch(20, n, seed=1)``, k = 10), one
thread, CPU time of the calling thread (``time.thread_time``), min over interleaved rounds per piece. The
fastlr pieces are timed by wrapping the operand's methods (``sketch``, ``times``, ``thin_svd``,
``truncate``) and ``scw.sketch_svd`` (the wrappers cost a few microseconds each); "other" is the total less
the pieces. Usage:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/scw_pieces.py [--isa v3|baseline] [--rounds 30]
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import choice, memory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_svd import _make, _numpy_scw  # noqa: E402

scw_module = importlib.import_module("fastlr.scw")  # the module (fastlr.scw is the function)


_depth = [0]  # wrapped calls in progress: a piece's time counts once, for the outermost one


def wrap(owner, name, label, spent):
    """Replace owner.name by a wrapper adding its CPU time to spent[label] (outermost calls only: thin_svd's
    own products with B are thin_svd's)."""
    f = getattr(owner, name)
    depth = _depth

    @functools.wraps(f)
    def timed(*args, **kwargs):
        depth[0] += 1
        t0 = time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[label] += time.thread_time() - t0

    setattr(owner, name, timed)


def numpy_pieces(A, S_csr, k):
    """bench_svd._numpy_scw's steps, each timed."""
    t = {}
    t0 = time.thread_time()
    M = np.asarray(S_csr @ A)
    t["S @ A"] = time.thread_time() - t0
    t0 = time.thread_time()
    _, sm, Vtm = np.linalg.svd(M, full_matrices=False)
    t["SVD of S A"] = time.thread_time() - t0
    V = Vtm[:int(np.count_nonzero(sm > max(M.shape) * np.finfo(M.dtype).eps * sm[0]))].T
    t0 = time.thread_time()
    B = np.asarray(A @ V)
    t["A @ V"] = time.thread_time() - t0
    t0 = time.thread_time()
    Ub, sb, Zt = np.linalg.svd(B, full_matrices=False)
    Ub[:, :k], sb[:k], (V @ Zt.T[:, :k]).T
    t["SVD of B, Vt"] = time.thread_time() - t0
    return t


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--isa", choices=["v3", "baseline"], default=None, help="cap fastlr's kernels (default: none)")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    if args.isa is not None:
        _core._cap_isa({"v3": 1, "baseline": 0}[args.isa])
    fastlr.set_num_threads(1)
    threadpool_limits(1)
    spent = collections.defaultdict(float)
    for owner, name, label in [(memory.InMemory, "sketch", "S @ A (seeded CountSketch)"),
                               (scw_module, "sketch_svd", "SVD of S A"), (memory.InMemory, "times", "A @ V"),
                               (memory.InMemory, "thin_svd", "thin SVD of B"),
                               (memory.InMemory, "truncate", "truncate (rank cut, signs, casts)")]:
        wrap(owner, name, label, spent)
    A64, _ = _make("dense5760x1080")
    for dtype in (np.float64, np.float32):
        A = A64.astype(dtype)
        S = fastlr.CountSketch(20, A.shape[0], seed=1)
        S_csr = sp.csr_matrix((S.values.astype(dtype), (S.rows, np.arange(A.shape[0]))), shape=(20, A.shape[0]))
        best = collections.defaultdict(lambda: float("inf"))
        for _ in range(args.rounds):
            spent.clear()
            t0 = time.thread_time()
            fastlr.scw(A, fastlr.CountSketch(20, A.shape[0], seed=1), 10)
            total = time.thread_time() - t0
            for label, t in list(spent.items()) + [("other", total - sum(spent.values())), ("total", total)]:
                best["fastlr", label] = min(best["fastlr", label], t)
            t0 = time.thread_time()
            _numpy_scw(A, S_csr, 10)
            best["numpy", "total"] = min(best["numpy", "total"], time.thread_time() - t0)
            for label, t in numpy_pieces(A, S_csr, 10).items():
                best["numpy", label] = min(best["numpy", label], t)
        print(f"{np.dtype(dtype).name}, kernels at {choice.isa_level()}, min over {args.rounds} rounds (ms)")
        for (who, label), t in best.items():
            print(f"  {who:6s} {label:36s} {t * 1e3:8.3f}")
        print(f"  NumPy / fastlr: {best['numpy', 'total'] / best['fastlr', 'total']:.2f}x")


if __name__ == "__main__":
    main()
