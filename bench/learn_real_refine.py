#!/usr/bin/env python
"""Inner-product positions refined by Lloyd iterations, against values-only learning, on real video (issue 15).

Frames as for ``learn_real_frames.py`` (a folder with train/ and test/, split in time); Err is on the held-out
(later) test frames only, over the Err of ``CountSketch(m, n, seed)``. m = 20, k = 10, BLAS and fastlr on one
thread, CPU seconds by ``time.thread_time``. For every seed:

* ``values-only``: ``learn_sketch`` defaults (random positions, values trained, 20% held out, 1000 steps);
* ``IP``: ``inner_product_sketch(train, m, k, trials=8)`` (Li et al., ICLR 2023, Alg. 3);
* ``IP + refine``: the same with ``refine=R`` (Lloyd iterations on the buckets);
* ``IP + refine + values``: ``learn_sketch(init=<IP + refine>)`` (its time includes the positions');
* ``fast``: ``inner_product_sketch(F frames evenly spread over train, m, k, refine=R)`` (1 trial): how soon
  refined positions reach values-only's Err.

``--sweep``: instead, only the fast column for every F in ``--sweep-frames`` and T in ``--sweep-trials``
(``inner_product_sketch(F frames, m, k, trials=T, refine=R)``), mean [worst] over the seeds, then per seed.

The main table ends with the time target of issue 15 per seed: the fast column's Err at most values-only's, in at
most 1/10 of values-only's CPU time.

``--generated``: instead, ``bench/learn_shift.py``'s generated families (train / test split as there), refine 0 vs R
(8 trials), from all training matrices and from the first one alone (the one-matrix held-out guard applies).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_refine.py /tmp/real_video/bikes --seeds 0 1 2 3 4 5 6 7
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_refine.py /tmp/real_video/bigbuckbunny --seeds 0 1
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_refine.py /tmp/real_video/bikes --sweep --seeds 0 1 2 3 4 5 6 7
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_refine.py --generated --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from learn_real_diagnose import cpu  # noqa: E402  (CPU seconds of one call, learned-sketch warnings off)

M, K = 20, 10
COLUMNS = ("values-only", "IP", "IP + refine", "IP + refine + values", "fast")




def run_seed(train, test, seed: int, steps: int, trials: int, refine: int, frames: int) -> dict:
    n = train[0].shape[0]
    rnd = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)
    err = lambda S: fastlr.sketch_error(S, test, K) / rnd
    learn = lambda **kw: fastlr.learn_sketch(train, M, K, steps=steps, seed=seed, progress=False, **kw)
    out = {}
    S, t = cpu(lambda: learn())
    out["values-only"] = (err(S), t)
    S, t = cpu(lambda: dd.inner_product_sketch(train, M, K, trials=trials, seed=seed))
    out["IP"] = (err(S), t)
    R, t_r = cpu(lambda: dd.inner_product_sketch(train, M, K, trials=trials, refine=refine, seed=seed))
    out["IP + refine"] = (err(R), t_r)
    S, t = cpu(lambda: learn(init=R))
    out["IP + refine + values"] = (err(S), t_r + t)
    few = spread(train, frames)
    S, t = cpu(lambda: dd.inner_product_sketch(few, M, K, refine=refine, seed=seed))
    out["fast"] = (err(S), t)
    return out


def spread(train, count: int) -> list:
    return [train[i] for i in np.unique(np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(int))]


def sweep(train, test, seeds, frames, trials, refine: int) -> None:
    n = train[0].shape[0]
    rnd = {seed: fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K) for seed in seeds}
    print(f"fast positions (refine={refine}): held-out Err / random's, mean [worst] over seeds {seeds}; mean CPU s")
    print("| frames | trials | Err / random | CPU s | per seed: Err (CPU s) |")
    print("|---|---|---|---|---|")
    for f in frames:
        few = spread(train, f)
        for t in trials:
            ratios, secs = [], []
            for seed in seeds:
                S, c = cpu(lambda: dd.inner_product_sketch(few, M, K, trials=t, refine=refine, seed=seed))
                ratios.append(fastlr.sketch_error(S, test, K) / rnd[seed])
                secs.append(c)
            print(f"| {f} | {t} | {np.mean(ratios):.3f} [{max(ratios):.3f}] | {np.mean(secs):.2f} | "
                  + " ".join(f"{r:.3f} ({c:.2f})" for r, c in zip(ratios, secs)) + " |", flush=True)


def generated(seeds, trials: int, refine: int) -> None:
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import learn_shift

    print(f"generated families (learn_shift.py), m={M} k={K}, trials={trials}: held-out Err / random's, "
          f"mean [worst] over seeds {seeds}; CPU s per build")
    print(f"| family | all, refine 0 | all, refine {refine} | 1 matrix, refine 0 | 1 matrix, refine {refine} |")
    print("|---|---|---|---|---|")
    for name, (train, test) in learn_shift.families(["video", "video-time", "hyperspectral", "text-topic",
                                                     "text"]).items():
        n = train[0].shape[0]
        cells = {}
        for label, mats in (("all", train), ("1 matrix", train[:1])):
            for r in (0, refine):
                ratios, secs = [], []
                for seed in seeds:
                    rnd = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)
                    S, t = cpu(lambda: dd.inner_product_sketch(mats, M, K, trials=trials, refine=r, seed=seed))
                    ratios.append(fastlr.sketch_error(S, test, K) / rnd)
                    secs.append(t)
                cells[label, r] = f"{np.mean(ratios):.3f} [{max(ratios):.3f}] ({np.mean(secs):.2f} s)"
        print(f"| {name} | " + " | ".join(cells[c] for c in (("all", 0), ("all", refine), ("1 matrix", 0),
                                                             ("1 matrix", refine))) + " |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=pathlib.Path, nargs="?", help="folder holding train/ and test/")
    ap.add_argument("--sweep", action="store_true", help="only the fast column, for several frames and trials")
    ap.add_argument("--sweep-frames", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--sweep-trials", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--generated", action="store_true", help="the generated families instead of a folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--refine", type=int, default=10)
    ap.add_argument("--frames", type=int, default=8, help="training frames for the fast column")
    args = ap.parse_args(argv)
    if args.generated:
        with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
            generated(args.seeds, args.trials, args.refine)
        return 0
    train = datasets.load_folder(args.folder / "train")
    test = datasets.load_folder(args.folder / "test")
    if args.sweep:
        with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
            sweep(train, test, args.seeds, args.sweep_frames, args.sweep_trials, args.refine)
        return 0
    print(f"{args.folder.name}: {train[0].shape}, {len(train)} train / {len(test)} held-out frames, m={M} k={K}, "
          f"trials={args.trials} refine={args.refine} fast: {args.frames} frames, 1 trial")
    print("held-out Err / random's (CPU s)")
    print("| seed | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    rows = []
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        for seed in args.seeds:
            r = run_seed(train, test, seed, args.steps, args.trials, args.refine, args.frames)
            rows.append(r)
            print(f"| {seed} | " + " | ".join(f"{r[c][0]:.3f} ({r[c][1]:.1f} s)" for c in COLUMNS) + " |", flush=True)
    base = np.array([r["values-only"][0] for r in rows])
    print("| mean | " + " | ".join(f"{np.mean([r[c][0] for r in rows]):.3f} ({np.mean([r[c][1] for r in rows]):.1f} s)"
                                   for c in COLUMNS) + " |")
    print("| worst | " + " | ".join(f"{np.max([r[c][0] for r in rows]):.3f}" for c in COLUMNS) + " |")
    print("| vs values-only: mean ratio [worst seed] | " + " | ".join(
        f"{np.mean(np.array([r[c][0] for r in rows]) / base):.2f} [{np.max(np.array([r[c][0] for r in rows]) / base):.2f}]"
        for c in COLUMNS) + " |")
    met = [r["fast"][0] <= r["values-only"][0] and r["fast"][1] <= r["values-only"][1] / 10 for r in rows]
    print(f"time target (fast reaches values-only's Err in <= 1/10 of its CPU time): met on {sum(met)} of "
          f"{len(met)} seeds: " + " ".join(f"{seed}:{'yes' if ok else 'no'}" for seed, ok in zip(args.seeds, met)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
