#!/usr/bin/env python
"""Held-out Err of learned, mixed and random CountSketches under distribution shift.

Data (m = 20, k = 10, as the demo):

* ``video``: ``fastlr.datasets.video`` frames, a random train/test split;
* ``video-time``: the same frames split in time (first 75% train, last 25% test);
* ``text-topic``: ``fastlr.datasets.text`` with disjoint topics for training
  (topics 0-9) and testing (topics 10-19);
* ``text``, ``hyperspectral``: the demo's families (random split), for reference.

For every sketch seed the script trains ``learn_sketch`` (defaults: validation
held out of the training matrices, best checkpoint, fallback to random) with
``mixed=None, "joint", "separate"`` and prints the Err on the test matrices
beside that of the random ``CountSketch(m, n, seed)``; ``--no-guard`` trains
without the hold-out (``holdout=0``, the behaviour before issue 15)::

    python bench/learn_shift.py --seeds 0 1 2 --steps 400
    python bench/learn_shift.py --seeds 0 1 2 --steps 400 --no-guard
    python bench/learn_shift.py --seeds 0 1 2 --steps 400 --shrink 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import fastlr
from fastlr import datasets

M, K = 20, 10


def families(names):
    out = {}
    if "video" in names or "video-time" in names:
        frames = datasets.video(80, height=60, width=200, seed=1)
        perm = np.random.default_rng(0).permutation(len(frames))
        out["video"] = ([frames[i] for i in perm[:60]], [frames[i] for i in perm[60:]])
        out["video-time"] = (frames[:60], frames[60:])
    if "text-topic" in names:
        kw = dict(n_terms=1500, n_docs=60, seed=1)
        out["text-topic"] = (datasets.text(30, topics=range(10), **kw), datasets.text(12, topics=range(10, 20), **kw))
    if "text" in names:
        data = datasets.text(42, n_terms=1500, n_docs=60, seed=1)
        out["text"] = (data[:30], data[30:])
    if "hyperspectral" in names:
        data = datasets.hyperspectral(40, height=192, width=64, bands=4, seed=1)
        out["hyperspectral"] = (data[:30], data[30:])
    return {name: out[name] for name in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["video", "video-time", "text-topic", "text", "hyperspectral"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--no-guard", action="store_true", help="holdout=0: no validation, checkpoint or fallback")
    ap.add_argument("--shrink", type=float, default=0.0, help="learn_sketch's shrink (default 0: off)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    fastlr.set_num_threads(args.threads)
    extra = {"holdout": 0} if args.no_guard else {}
    if args.shrink:
        extra["shrink"] = args.shrink
    print(f"m={M} k={K} steps={args.steps} seeds={args.seeds} {'no guard' if args.no_guard else 'defaults'}"
          f"{f' shrink={args.shrink}' if args.shrink else ''}")
    print(f"{'family':14}{'seed':>5}{'random':>9}{'learned':>9}{'mixed J':>9}{'mixed S':>9}   fallbacks   seconds")
    for name, (train, test) in families(args.families).items():
        rows = []
        for seed in args.seeds:
            n = train[0].shape[0]
            errs, notes, start = [fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)], [], time.time()
            for mixed in (None, "joint", "separate"):
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    S = fastlr.learn_sketch(train, M, K, steps=args.steps, mixed=mixed, seed=seed, progress=False,
                                            **extra)
                errs.append(fastlr.sketch_error(S, test, K))
                notes.append("F" if getattr(S, "fallback", False) else ".")
            rows.append(errs)
            print(f"{name:14}{seed:>5}" + "".join(f"{e:9.4f}" for e in errs) + f"   {''.join(notes):>9}"
                  f"   {time.time() - start:7.1f}", flush=True)
        mean = np.mean(rows, axis=0)
        print(f"{name:14}{'mean':>5}" + "".join(f"{e:9.4f}" for e in mean)
              + "   ratio to random: " + " ".join(f"{e / mean[0]:.2f}" for e in mean[1:]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
