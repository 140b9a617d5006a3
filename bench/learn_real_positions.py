#!/usr/bin/env python
"""Positions for learned CountSketch values on real video: clustering in the training rows' whitened top-r subspace,
greedy moves (Li et al., ICLR 2023, Alg. 2), against values-only learning (issue 15, bigbuckbunny).

Frames as for ``learn_real_refine.py`` (a folder with train/ and test/, split in time); Err is on the held-out
(later) test frames only, over the Err of ``CountSketch(m, n, seed)``. m = 20, k = 10, BLAS and fastlr on one
thread, CPU seconds by ``time.thread_time``. For every seed:

* ``values-only``: ``learn_sketch`` defaults (random positions, values trained, 20% held out, 1000 steps);
* ``subspace``: ``inner_product_sketch(train, m, k, subspace=r, refine=iters, trials=trials)``: signed spherical
  Lloyd clustering of the rows of ``U_r``, the top-r left singular vectors of the training frames side by side (each
  scaled to sigma_1 = 1), i.e. the rows *whitened* in the top-r subspace (row norms^2 = rank-r leverage scores);
  centres drawn by those norms, best of ``trials`` by training loss; bucket values 1Shot1Vec on the full rows;
* ``subspace + values``: ``learn_sketch(init=<subspace>)`` (its time includes the positions');
* ``--greedy C``: also ``greedy_positions(8 frames spread over train, <sketch>, k, max_columns=C)`` from the
  values-only and the subspace + values sketches (the paper's Alg. 2, fitted to the training loss);
* ``--ip``: also ``learn_sketch(init=inner_product_sketch(train, m, k, trials=8))`` (full-row buckets, refine=10:
  the library's ``init="inner_product"`` before the thirteenth session, from all of train);
* ``--select R1 R2 ...``: also a validated choice: for every r and ``--draws`` draws of centres (seeds seed + 1000 j),
  the subspace positions with their values learned; kept: the lowest Err on learn_sketch's own validation frames
  (the last 20% of the *training* frames), never the test frames (``--verbose`` prints every candidate);
* ``--inits R1 R2 ...``: instead of the subspace columns, ``learn_sketch(init="inner_product")``'s start built as
  learn_sketch builds it (from the training frames without its held-out 20%, ``trials=8``) with ``subspace=r``
  (0: None, the full-row buckets), alone and with its values learned (``--no-values-only`` skips that column).

``--generated``: the ``--inits`` comparison on bench/learn_shift.py's and bench/datadriven_err.py's video and
hyperspectral families instead (8 trials, 400 steps; text families do not build the start).

``--frames``: positions from only these training frames (``lastN``, ``firstN``, ``spreadN`` or ``all``); values are
always trained on all of train.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bigbuckbunny --seeds 0 1 2 3 --r 20
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bigbuckbunny --seeds 4 5 6 7 --r 15
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bikes --seeds 0 1 2 3 --r 20 --frames spread12
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bigbuckbunny --seeds 0 --greedy 300
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bigbuckbunny --seeds 0 1 2 3 --r 15 --select 10 15 20 --draws 2 --verbose
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py /tmp/real_video/bikes --seeds 0 1 2 3 4 5 6 7 --inits 0 20
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/learn_real_positions.py --generated --seeds 0 1 2 3 4 5 6 7
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


def spread(train, count: int) -> list:
    return [train[i] for i in np.unique(np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(int))]


def subset(train, spec: str) -> list:
    if spec == "all":
        return train
    for prefix, pick in (("last", lambda c: train[-c:]), ("first", lambda c: train[:c]),
                         ("spread", lambda c: spread(train, c))):
        if spec.startswith(prefix):
            return pick(int(spec[len(prefix):]))
    raise ValueError(f"--frames: expected all, lastN, firstN or spreadN, got {spec!r}")


def plain(S) -> fastlr.CountSketch:
    return fastlr.CountSketch.from_arrays(S.rows, S.values, S.m)


def run_seed(train, test, seed: int, args) -> dict:
    n = train[0].shape[0]
    rnd = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)
    err = lambda S: fastlr.sketch_error(S, test, K) / rnd
    learn = lambda **kw: fastlr.learn_sketch(train, M, K, steps=args.steps, seed=seed, progress=False, **kw)
    out = {}
    if not args.no_values_only:
        V, t_v = cpu(lambda: learn())
        out["values-only"] = (err(V), t_v)
    if args.inits:
        out.update(inits(train, err, learn, seed, args))
        return out
    if args.ip:
        S, t = cpu(lambda: learn(init=dd.inner_product_sketch(train, M, K, trials=8, seed=seed)))
        out["IP + refine + values"] = (err(S), t)
    P, t_p = cpu(lambda: dd.inner_product_sketch(subset(train, args.frames), M, K, subspace=args.r,
                                                 refine=args.iters, trials=args.trials, seed=seed))
    out["subspace"] = (err(P), t_p)
    L, t_l = cpu(lambda: learn(init=P))
    out["subspace + values"] = (err(L), t_p + t_l)
    if args.select:
        out.update(select(train, err, learn, seed, args, known={(args.r, 0): (P, L, t_p + t_l)}))
    if args.greedy:
        few = spread(train, 8)
        for name, S, t0 in (("values-only + greedy", V, t_v), ("subspace + values + greedy", L, t_p + t_l)):
            G, t = cpu(lambda: dd.greedy_positions(few, plain(S), K, max_time=None, max_columns=args.greedy))
            out[name] = (err(G), t0 + t)
    return out


def inits(train, err, learn, seed: int, args) -> dict:
    """``learn_sketch(init="inner_product")``'s start, built as learn_sketch builds it (from the training frames
    without its held-out 20%, 8 trials), with full-row buckets (``subspace=None``) and with each r of ``--inits``
    (0: None), then its values learned; time: positions + values."""
    from fastlr._safeguards import holdout_split

    fit = train[:holdout_split(len(train), 0.2)]
    out = {}
    for r in args.inits:
        P, t_p = cpu(lambda: dd.inner_product_sketch(fit, M, K, trials=8, subspace=r or None, seed=seed))
        out[f"init IP, subspace={r or None}"] = (err(P), t_p)
        L, t_l = cpu(lambda: learn(init=P))
        out[f"init IP, subspace={r or None} + values"] = (err(L), t_p + t_l)
    return out


def select(train, err, learn, seed: int, args, known) -> dict:
    """The validated choice: for every r in ``--select`` and ``--draws`` draws of centres, the subspace positions
    (``inner_product_sketch(train, m, k, subspace=r, refine=iters, seed=seed + 1000 j)``) with their values learned
    (``learn_sketch(init=...)``); kept: the lowest Err on learn_sketch's own validation frames (the last 20% of the
    *training* frames; ``S.validation.best_err``), never the test frames. Time: every candidate's."""
    cands, total = [], 0.0
    for r in args.select:
        for j in range(args.draws):
            if (r, j) in known:  # the subspace column's sketch (same r, seed, iterations and frames)
                P, L, t = known[r, j]
            else:
                P, t_p = cpu(lambda: dd.inner_product_sketch(subset(train, args.frames), M, K, subspace=r,
                                                             refine=args.iters, seed=seed + 1000 * j))
                L, t_l = cpu(lambda: learn(init=P))
                t = t_p + t_l
            total += t
            cands.append((L.validation.best_err, r, j, err(P), err(L)))
    best = min(cands)
    if args.verbose:
        print(f"  seed {seed}: (val Err, r, draw, positions, + values) " +
              " ".join(f"({v:.5f} r{r} d{j} {p:.4f} {e:.4f})" for v, r, j, p, e in cands), flush=True)
    return {f"validated r in {args.select} x {args.draws}": (best[4], total)}


def generated(seeds, subspaces, steps: int) -> None:
    """learn_sketch(init="inner_product")'s start on bench/learn_shift.py's and bench/datadriven_err.py's video and
    hyperspectral families (text families: the start is not built, sporadic rows), built as learn_sketch builds it
    (without its held-out 20%, 8 trials) for each subspace (0: None), with its values learned for ``steps`` steps:
    held-out Err / random's, mean [worst] over the seeds."""
    import datadriven_err
    import learn_shift
    from fastlr._safeguards import holdout_split

    def cases():
        for fam in ("video", "video-time", "hyperspectral"):
            train, test = learn_shift.families([fam])[fam]
            for seed in seeds:
                yield f"learn_shift {fam}", seed, train, test
        for seed in seeds:
            for fam, (data, n_train) in datadriven_err.families(False, seed + 1).items():
                if fam in ("video", "hyperspectral"):
                    yield f"datadriven_err {fam}", seed, data[:n_train], data[n_train:]

    res = {}
    for fam, seed, train, test in cases():
        n = train[0].shape[0]
        rnd = fastlr.sketch_error(fastlr.CountSketch(M, n, seed=seed), test, K)
        fit = train[:holdout_split(len(train), 0.2)]
        for r in subspaces:
            P, _ = cpu(lambda: dd.inner_product_sketch(fit, M, K, trials=8, subspace=r or None, seed=seed))
            L, _ = cpu(lambda: fastlr.learn_sketch(train, M, K, steps=steps, seed=seed, progress=False, init=P))
            res.setdefault(fam, {}).setdefault(r, []).append(fastlr.sketch_error(L, test, K) / rnd)
    print(f"init IP + values ({steps} steps), held-out Err / random's, mean [worst] over seeds {seeds}")
    print("| family | " + " | ".join(f"subspace={r or None}" for r in subspaces) + " |")
    print("|---" * (len(subspaces) + 1) + "|")
    for fam, cells in res.items():
        print(f"| {fam} | " + " | ".join(f"{np.mean(v):.3f} [{max(v):.3f}]" for v in cells.values()) + " |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=pathlib.Path, nargs="?", help="folder holding train/ and test/")
    ap.add_argument("--generated", action="store_true",
                    help="instead: --inits (default 0 20) on the generated families, 400 steps unless --steps")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--r", type=int, default=20, help="subspace dimension (inner_product_sketch's subspace=)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--frames", default="all", help="positions from: all, lastN, firstN, spreadN")
    ap.add_argument("--greedy", type=int, default=0, help="columns for greedy_positions (0: skip)")
    ap.add_argument("--select", type=int, nargs="*", default=[],
                    help="also the validated choice among these r (and --draws draws each)")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print every --select candidate")
    ap.add_argument("--inits", type=int, nargs="*", default=[],
                    help="instead: learn_sketch(init=inner_product_sketch(..., trials=8, subspace=r)) for these r (0: None)")
    ap.add_argument("--no-values-only", action="store_true", help="skip the values-only column")
    ap.add_argument("--ip", action="store_true", help="also learn_sketch(init=inner_product_sketch(...))")
    args = ap.parse_args(argv)
    if args.generated:
        with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
            generated(args.seeds, args.inits or [0, 20], 400 if args.steps == 1000 else args.steps)
        return 0
    train = datasets.load_folder(args.folder / "train")
    test = datasets.load_folder(args.folder / "test")
    print(f"{args.folder.name}: {train[0].shape}, {len(train)} train / {len(test)} held-out frames, m={M} k={K}; "
          f"subspace: r={args.r} iters={args.iters} trials={args.trials} frames={args.frames}")
    print("held-out Err / random's (CPU s)")
    rows = []
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        for seed in args.seeds:
            r = run_seed(train, test, seed, args)
            if not rows:
                columns = list(r)
                print("| seed | " + " | ".join(columns) + " |")
                print("|---" * (len(columns) + 1) + "|")
            rows.append(r)
            print(f"| {seed} | " + " | ".join(f"{r[c][0]:.4f} ({r[c][1]:.1f} s)" for c in columns) + " |", flush=True)
    base = np.array([r.get("values-only", r[columns[0]])[0] for r in rows])
    col = lambda c: np.array([r[c][0] for r in rows])
    print("| mean | " + " | ".join(f"{col(c).mean():.4f} ({np.mean([r[c][1] for r in rows]):.1f} s)"
                                   for c in columns) + " |")
    print("| worst | " + " | ".join(f"{col(c).max():.4f}" for c in columns) + " |")
    print(f"| vs {'values-only' if 'values-only' in columns else columns[0]}: mean ratio [worst seed] | " + " | ".join(
        f"{np.mean(col(c) / base):.2f} [{np.max(col(c) / base):.2f}]" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
