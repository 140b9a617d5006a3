#!/usr/bin/env python
"""learn_sketch on bench/datadriven_err.py's text-topic family against random's own seed spread.

Per seed s (data seed s + 1, as datadriven_err.py; m = 20, k = 10, 400 steps, learn_sketch's defaults): held-out Err of
the plain learned sketch and of mixed="joint" over that of CountSketch(m, n, s) (the learned sketch's own start) and
over the mean of 8 other random CountSketches, and CountSketch(m, n, s)'s own ratio to that mean (its luck).

    OPENBLAS_NUM_THREADS=1 python bench/text_topic_spread.py --seeds 12
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from datadriven_err import K, M, families


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args(argv)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        for seed in range(args.seeds):
            data, cut = families(False, seed + 1)["text-topic"]
            train, test = data[:cut], data[cut:]
            n = train[0].shape[0]
            rnd = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)
            mean = np.mean([fastlr.sketch_error(fastlr.CountSketch(M, n, seed=1000 + 8 * seed + i), test, K)
                            for i in range(8)])
            learned = fastlr.learn_sketch(train, M, K, steps=args.steps, seed=seed, progress=False)
            joint = fastlr.learn_sketch(train, M, K, steps=args.steps, seed=seed, progress=False, mixed="joint")
            e, j = fastlr.sketch_error(learned, test, K), fastlr.sketch_error(joint, test, K)
            rows.append((e / rnd, j / rnd, rnd / mean, e / mean, j / mean))
            print(f"seed {seed:2d}: learned / its start {e / rnd:.3f}  joint / CountSketch(m, n, s) {j / rnd:.3f}  "
                  f"CountSketch(m, n, s) / mean random {rnd / mean:.3f}  learned / mean {e / mean:.3f}  "
                  f"joint / mean {j / mean:.3f}", flush=True)
    r = np.array(rows)
    names = ("learned / start", "joint / CountSketch(m, n, s)", "CountSketch(m, n, s) / mean", "learned / mean",
             "joint / mean")
    for i, name in enumerate(names):
        print(f"{name:30s} mean {r[:, i].mean():.3f}  min {r[:, i].min():.3f}  max {r[:, i].max():.3f}  "
              f"sd {r[:, i].std():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
