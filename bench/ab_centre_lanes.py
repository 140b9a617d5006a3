"""Does summing each bucket in 4 interleaved partial sums (positions.py's former ``_LANES``) still pay?

Refined inner-product positions put runs of consecutive rows in one bucket; the CountSketch kernel's
adds of a run into one output row used to wait on each other, which ``_centre_products`` avoided by
spreading row i over partial bucket ``h_i * 4 + i % 4`` (``_lanes4`` below, the code up to fabe220).
This times ``_centre_products`` and its ``S @ A`` alone both ways (interleaved rounds, CPU time of each
call, one thread) on the refined positions of F frames of a video, next to ``S @ A`` for random
positions, and checks that ``inner_product_sketch`` picks the same rows both ways for every seed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_centre_lanes.py /tmp/real_video/bikes --frames 16
"""

import argparse
import glob
import os
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datadriven as dd
from fastlr.datadriven import positions
from fastlr.datadriven._common import _Rows

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import new_user_figures  # noqa: E402 (bench/ is the script's folder)


def _best(calls, rounds):
    """{name: min CPU ms} over interleaved rounds (new_user_figures._best in ms)."""
    return {name: 1e3 * t for name, t in new_user_figures._best(calls, rounds).items()}


def _lanes4(rows, h, v, m):
    """positions._centre_products as it was (fabe220): each bucket in 4 interleaved partial sums."""
    lanes = 4
    S = fastlr.CountSketch.from_arrays(h * lanes + np.arange(rows.n) % lanes, v, m * lanes)
    X = np.zeros((rows.n, m))
    norms = np.zeros(m)
    for w, A in zip(rows.weights, rows.mats):
        Ct = (S @ A).reshape(m, lanes, -1).sum(axis=1)
        Ct *= w
        norms += np.einsum("ij,ij->i", Ct, Ct, dtype=np.float64)
        X += w * np.asarray(A @ Ct.T)
    norms = np.sqrt(norms)
    return X / np.where(norms > 0, norms, 1.0)


def _with(fn, centre_products):
    def call():
        saved, positions._centre_products = positions._centre_products, centre_products
        try:
            return fn()
        finally:
            positions._centre_products = saved
    return call


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--m", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    train = [np.load(f) for f in sorted(glob.glob(f"{args.folder}/train/*.npy"))]
    idx = np.unique(np.linspace(0, len(train) - 1, min(args.frames, len(train))).round().astype(int))
    few = [train[i] for i in idx]
    print(f"{len(few)} frames {few[0].shape} {few[0].dtype}, F order: {few[0].flags.f_contiguous}")
    with fastlr.thread_limit(1), threadpool_limits(1):
        for seed in args.seeds:
            now = positions._centre_products
            S4 = _with(lambda: dd.inner_product_sketch(few, args.m, args.k, seed=seed), _lanes4)()
            S1 = dd.inner_product_sketch(few, args.m, args.k, seed=seed)
            same = np.array_equal(S4.rows, S1.rows)
            dv = np.abs(S4.values - S1.values).max() / np.abs(S4.values).max()
            rows = _Rows(few)
            h, v, m = S4.rows, S4.values, args.m
            runs = len(h) / (1 + np.count_nonzero(np.diff(h)))
            X4 = _lanes4(rows, h, v, m)
            X1 = now(rows, h, v, m)
            dx = np.abs(X4 - X1).max() / np.abs(X4).max()
            n = len(h)
            lane = np.arange(n) % 4
            S_l4 = fastlr.CountSketch.from_arrays(h * 4 + lane, v, m * 4)
            S_l1 = fastlr.CountSketch.from_arrays(h, v, m)
            S_rand = fastlr.CountSketch.from_arrays(np.random.default_rng(seed).integers(0, m, n), v, m)
            t = _best({"cp4": lambda: _lanes4(rows, h, v, m),
                       "cp1": lambda: now(rows, h, v, m),
                       "sa4": lambda: [(S_l4 @ A).reshape(m, 4, -1).sum(axis=1) for A in few],
                       "sa1": lambda: [S_l1 @ A for A in few],
                       "rand": lambda: [S_rand @ A for A in few]}, args.rounds)
            print(f"seed {seed}: mean run {runs:.1f} rows; same rows {same}, values rel diff {dv:.1e}, "
                  f"X rel diff {dx:.1e}; _centre_products lanes 4 {t['cp4']:.2f} ms, 1 {t['cp1']:.2f} ms; "
                  f"S @ A (all frames) lanes 4 {t['sa4']:.2f} ms, 1 {t['sa1']:.2f} ms, random positions "
                  f"{t['rand']:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
