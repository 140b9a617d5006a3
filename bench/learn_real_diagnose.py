#!/usr/bin/env python
"""Why training the values from inner-product positions does not lower held-out Err on real video.

Frames as for ``learn_real_frames.py`` (a folder with train/ and test/, split in time). For every
seed (m = 20, k = 10, BLAS and fastlr on one thread, CPU seconds by ``time.thread_time``):

* ``values-only``: ``learn_sketch`` defaults (random positions, values trained, 20% held out);
* ``IP``: ``inner_product_sketch(train, m, k, trials=8)`` alone;
* ``IP + values, lr``: ``learn_sketch(init=IP, lr=lr, patience=None)``: validation Err at the start
  and at the best step (the last 20% of the training frames), held-out Err;
* ``train-only``: the values trained from IP on the first 80% of the frames without validation, with
  their Err on those frames (in-sample), on the last 20% and on the test frames (over-fitting in time);
* ``interleaved``: positions and values from the even frames, validated on the odd ones (the same
  stretch of time): does training from IP help when there is no drift, and how far do values on
  random positions get there?
* ``oracle``: values trained on the *test* frames themselves (no hold-out), from IP and from random
  positions: what the values could reach on each set of positions.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_diagnose.py /tmp/real_video/bikes --seeds 0 1
"""

from __future__ import annotations

import argparse
import pathlib
import time
import warnings

from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets

M, K = 20, 10


def cpu(fn):
    start = time.thread_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        out = fn()
    return out, time.thread_time() - start


def diagnose(train, test, seed: int, steps: int, out=print):
    n = train[0].shape[0]
    err = lambda S, mats=test: fastlr.sketch_error(S, mats, K)
    rnd = err(fastlr.CountSketch(M, n, seed=seed))
    learn = lambda data, **kw: fastlr.learn_sketch(data, M, K, steps=steps, seed=seed, progress=False, **kw)
    out(f"seed {seed}: random CountSketch Err {rnd:.5f}; below: held-out Err / that")
    S, t = cpu(lambda: learn(train))
    out(f"  values-only                {err(S) / rnd:.3f}   {t:5.1f} s CPU")
    P, t = cpu(lambda: dd.inner_product_sketch(train, M, K, trials=8, seed=seed))
    out(f"  IP (8 trials, all frames)  {err(P) / rnd:.3f}   {t:5.1f} s CPU")
    for lr in (0.05, 0.01):
        S, t = cpu(lambda lr=lr: learn(train, init=P, lr=lr, patience=None))
        v = S.validation
        out(f"  IP + values, lr {lr:<5}     {err(S) / rnd:.3f}   {t:5.1f} s CPU   validation {v.random_err:.5f} -> "
            f"{v.best_err:.5f} (step {v.best_step}{', fallback' if S.fallback else ''})")
    cut = len(train) - max(1, round(0.2 * len(train)))
    first, last = train[:cut], train[cut:]
    for lr in (0.05, 0.01):
        S, _ = cpu(lambda lr=lr: learn(first, init=P, lr=lr, holdout=0, shrink=0))
        out(f"  train-only, lr {lr:<5}      {err(S) / rnd:.3f}   in-sample {err(P, first):.5f} -> {err(S, first):.5f}, "
            f"last 20% {err(P, last):.5f} -> {err(S, last):.5f}")
    even, odd = train[0::2], train[1::2]
    Q, _ = cpu(lambda: dd.inner_product_sketch(even, M, K, trials=8, seed=seed))
    S, _ = cpu(lambda: learn(even, init=Q, val=odd, patience=None))
    R, _ = cpu(lambda: learn(even, val=odd))
    out(f"  interleaved (even -> odd)  validation: IP {S.validation.random_err:.5f} -> IP + values "
        f"{S.validation.best_err:.5f}; random {R.validation.random_err:.5f} -> values-only {R.validation.best_err:.5f}")
    S, _ = cpu(lambda: learn(test, init=P, holdout=0, shrink=0))
    R, _ = cpu(lambda: learn(test, holdout=0, shrink=0))
    out(f"  oracle (trained on test)   IP positions {err(S) / rnd:.3f}, random positions {err(R) / rnd:.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=pathlib.Path, help="folder holding train/ and test/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args(argv)
    train = datasets.load_folder(args.folder / "train")
    test = datasets.load_folder(args.folder / "test")
    print(f"{args.folder.name}: {train[0].shape}, {len(train)} train / {len(test)} held-out frames, m={M} k={K}")
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        for seed in args.seeds:
            diagnose(train, test, seed, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
