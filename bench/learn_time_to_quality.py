#!/usr/bin/env python
"""Time to quality: held-out Err against training wall-clock seconds, fastlr vs PyTorch.

Trains a 20 x n sketch for rank 10 on ``fastlr.datasets.video`` frames with

* fastlr's defaults (``learn_sketch``: exact gradient, Adam, lr 0.05),
* PyTorch SGD as in the paper (lr 10, x0.3 every 1000 steps), autograd through
  ``torch.linalg.svd`` (the step of bench_learn.py),
* PyTorch Adam (lr 0.05, the same optimizer as fastlr's default),

all with batch 1 and the same thread count, and records the paper's Err on
held-out frames as training proceeds (evaluation time is not counted).
Held out (``--split``): every 4th frame by default (frames of the same video
that training never sees), or the last quarter (``time``: later frames, where
the moving objects reach positions no training frame shows; a harder,
extrapolating test). The
PyTorch runs see the frames scaled to sigma_1 = 1, as fastlr scales them
internally, so the paper's learning rate applies.

Short default run (about 3.5 minutes on 2 cores):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_time_to_quality.py

The issue's long version (PyTorch 10 minutes each, fastlr 1 minute):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_time_to_quality.py \\
        --torch-seconds 600 --fastlr-seconds 60 --json ttq.json --plot ttq.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datasets

M, K = 20, 10


def fastlr_run(train, val, seconds: float, eval_every: int):
    """learn_sketch with its defaults, stopped after ``seconds`` of training time."""
    S = fastlr.learn_sketch(train, M, K, steps=10**9, val=val, eval_every=eval_every, progress=False,
                            callback=lambda record: record["seconds"] >= seconds)
    h = S.history
    ok = ~np.isnan(h["val_err"])
    return list(zip(h["seconds"][ok].tolist(), h["val_err"][ok].tolist())), int(h["step"][-1])


def torch_run(train, val, seconds: float, eval_every: int, optimizer: str):
    import torch

    n, d = train[0].shape
    start = fastlr.CountSketch(M, n, seed=0)
    mats = [torch.from_numpy(np.asarray(datasets.normalize(A))) for A in train]
    rows, cols = torch.from_numpy(start.rows), torch.arange(n)
    values = torch.nn.Parameter(torch.from_numpy(start.values.astype(train[0].dtype)))
    if optimizer == "sgd":
        opt = torch.optim.SGD([values], lr=10.0)
        schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.3)
    else:
        opt = torch.optim.Adam([values], lr=0.05)
        schedule = None
    order = np.random.default_rng(0)

    def err():
        S = fastlr.CountSketch.from_arrays(start.rows, values.detach().numpy().astype(np.float64), M)
        return fastlr.sketch_error(S, val, K)

    curve = [(0.0, err())]
    clock, step, perm, pos = 0.0, 0, order.permutation(len(mats)), 0
    while clock < seconds:
        t0 = time.perf_counter()
        for _ in range(eval_every):
            if pos == len(perm):
                perm, pos = order.permutation(len(mats)), 0
            A = mats[perm[pos]]
            pos += 1
            opt.zero_grad()
            S = torch.zeros(M, n, dtype=A.dtype).index_put((rows, cols), values)
            _, _, Vh = torch.linalg.svd(S @ A, full_matrices=False)
            U2, s2, V2h = torch.linalg.svd(A @ Vh.T, full_matrices=False)
            loss = torch.linalg.norm(A - (U2[:, :K] * s2[:K]) @ V2h[:K] @ Vh)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            step += 1
        clock += time.perf_counter() - t0
        value = err()
        if not np.isfinite(value):
            break
        curve.append((clock, value))
    return curve, step


def first_time_below(curve, target):
    for seconds, value in curve:
        if value <= target:
            return seconds
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=64, help="frames generated (3/4 train, 1/4 held out)")
    ap.add_argument("--split", choices=("interleaved", "time"), default="interleaved",
                    help="held-out frames: every 4th frame (unseen frames of the same video), or the last "
                         "quarter (later in time: objects move to positions no training frame shows)")
    ap.add_argument("--height", type=int, default=400)
    ap.add_argument("--width", type=int, default=400, help="frame width: matrices are (3 width) x height")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--threads", type=int, default=1, help="threads for fastlr, BLAS and PyTorch (each run)")
    ap.add_argument("--fastlr-seconds", type=float, default=30.0)
    ap.add_argument("--torch-seconds", type=float, default=60.0, help="per PyTorch optimizer")
    ap.add_argument("--eval-every", type=int, default=200, help="steps between held-out evaluations")
    ap.add_argument("--json", help="write the curves here")
    ap.add_argument("--plot", help="save Err against seconds here (matplotlib)")
    args = ap.parse_args(argv)

    frames = datasets.video(args.frames, height=args.height, width=args.width, seed=0, dtype=args.dtype)
    if args.split == "interleaved":
        train, val = [A for i, A in enumerate(frames) if i % 4 != 3], frames[3::4]
    else:
        cut = 3 * len(frames) // 4
        train, val = frames[:cut], frames[cut:]
    n = train[0].shape[0]
    print(f"video frames {train[0].shape[0]} x {train[0].shape[1]} {args.dtype}: {len(train)} train, {len(val)} "
          f"held out ({args.split} split); m = {M}, k = {K}; {args.threads} thread(s) each", flush=True)
    random_err = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=0), val, K)
    results = {"random_countsketch_err": random_err, "runs": {}}
    runs = [("fastlr (defaults)", lambda: fastlr_run(train, val, args.fastlr_seconds, args.eval_every))]
    try:
        import torch

        torch.set_num_threads(args.threads)
        runs += [
            ("torch SGD (paper)", lambda: torch_run(train, val, args.torch_seconds, args.eval_every, "sgd")),
            ("torch Adam", lambda: torch_run(train, val, args.torch_seconds, args.eval_every, "adam")),
        ]
    except ImportError:
        print("torch is not installed: fastlr only", file=sys.stderr)
    fastlr.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        for name, run in runs:
            curve, steps = run()
            results["runs"][name] = {"curve": curve, "steps": steps}
            best = min(v for _, v in curve)
            print(f"{name:20} {steps:8d} steps in {curve[-1][0]:6.1f} s, best held-out Err {best:.5f}", flush=True)

    torch_best = [min(v for _, v in r["curve"]) for name, r in results["runs"].items() if name.startswith("torch")]
    fast = results["runs"]["fastlr (defaults)"]["curve"]
    print(f"\nrandom CountSketch Err {random_err:.5f}; fastlr best {min(v for _, v in fast):.5f} "
          f"({min(v for _, v in fast) / random_err:.3f} of random)")
    if torch_best:
        target = min(torch_best)
        reached = first_time_below(fast, target)
        results["torch_best_err"] = target
        results["fastlr_seconds_to_torch_best"] = reached
        print(f"best PyTorch Err {target:.5f}; fastlr reaches it after "
              + (f"{reached:.1f} s of training" if reached is not None else "- (not within its budget)"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        for name, r in results["runs"].items():
            seconds, values = zip(*r["curve"])
            ax.plot(np.maximum(seconds, 1e-2), values, label=name)
        ax.axhline(random_err, color="gray", ls=":", label="random CountSketch")
        ax.set(xscale="log", yscale="log", xlabel="training seconds", ylabel="held-out Err",
               title=f"time to quality, video {train[0].shape[0]} x {train[0].shape[1]}, m={M}, k={K}")
        ax.legend()
        fig.savefig(args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
