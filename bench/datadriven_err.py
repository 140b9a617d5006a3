"""Held-out Err of the data-driven sketches (``fastlr.datadriven``) against random and learned ones.

For each data family of ``fastlr.datasets`` at the demo's full size (video 960 x 120,
hyperspectral 256 x 96, text 2000 x 100 sparse; the first 3/4 of the matrices train, the
last 1/4 are held out), m = 20, k = 10, and several seeds (seed s: data generated with seed
s + 1, sketches with seed s), prints the paper's Err on the held-out matrices for:

- random CountSketch(m, n, s); learn_sketch defaults (Adam 0.05, batch 1) for ``--steps`` steps;
- inner_product_sketch (Li et al. 2023, Alg. 3) alone (1 and 8 trials), and the 8-trial one with
  its values trained for the same ``--steps`` steps by refine_values (learn_sketch's loop from
  the given values);
- greedy_positions (``--greedy-seconds`` budget, first 8 training matrices) from the
  inner-product sketch (all m rows tried per column; or the 4 most parallel rows, 3 passes) and
  from the random CountSketch (the paper's Alg. 2), each then with its values trained like the
  others;
- one-shot sketches from ONE training matrix: 1Shot1Vec (random positions; guarded values and the
  paper's), inner-product
  positions (1 and 8 trials; the 8-trial one also with 100 Adam steps on that matrix), the dense
  top-m subspace, the hybrid (10 dense rows on 10 inner-product rows); with the seconds each took;
- FewShotSGD (3 training matrices, 1Shot1Vec start, ``--steps`` // 5 steps);
- the dense subspace sketch of all training matrices, and mixed (half dense, half random);
- guarded inner-product sketches (half data-driven, half ridge-leverage sampler / random CountSketch);
- Err of every sketch on *foreign* matrices (``datasets.lowrank`` of the same shape, which
  share nothing with the training data): the worst-case side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/datadriven_err.py --seeds 3 --json dd.json
    python bench/datadriven_err.py --quick      # smaller matrices, 1 seed, ~1 min
    python bench/datadriven_err.py --seeds 5 --only 1Shot1Vec FewShotSGD   # the one-shot rows only
"""

from __future__ import annotations

import argparse
import inspect
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datadriven as dd
from fastlr import datasets

M, K = 20, 10
#: learn_sketch trains on every training matrix for all steps and returns the last values, as
#: refine_values does (newer learn_sketch versions hold out 20% and keep the best checkpoint by default).
LEARN_ALL = {"holdout": 0} if "holdout" in inspect.signature(fastlr.learn_sketch).parameters else {}


def families(quick: bool, seed: int):
    """name -> (matrices, how many of the first ones train); text-topic: topics 0-9 train, 10-19 test."""
    if quick:
        kw = {"n_terms": 1500, "n_docs": 60, "seed": seed}
        return {
            "video": (datasets.video(40, height=60, width=200, seed=seed), 30),
            "hyperspectral": (datasets.hyperspectral(40, height=192, width=64, bands=4, seed=seed), 30),
            "text": (datasets.text(32, **kw), 24),
            "text-topic": (datasets.text(24, topics=range(10), **kw) + datasets.text(8, topics=range(10, 20), **kw),
                           24),
        }
    kw = {"n_terms": 2000, "n_docs": 100, "seed": seed}
    return {
        "video": (datasets.video(80, height=120, width=320, seed=seed), 60),
        "hyperspectral": (datasets.hyperspectral(64, height=256, width=96, bands=8, seed=seed), 48),
        "text": (datasets.text(48, **kw), 36),
        "text-topic": (datasets.text(36, topics=range(10), **kw) + datasets.text(12, topics=range(10, 20), **kw), 36),
    }


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_family(train, test, seed: int, steps: int, greedy_seconds: float, only=None) -> dict:
    n, d = train[0].shape
    foreign = datasets.lowrank(8, shape=(n, d), rank=K, seed=100 + seed)
    sk, secs = {}, {}

    def add(name, fn, extra=0.0):
        if only and name != "random CountSketch" and not any(w in name for w in only):
            return
        sk[name], secs[name] = timed(fn)
        secs[name] += extra

    add("random CountSketch", lambda: fastlr.CountSketch(M, n, seed=seed))
    add("learned values (learn_sketch)", lambda: fastlr.learn_sketch(train, M, K, steps=steps, seed=seed,
                                                                    progress=False, **LEARN_ALL))
    add("inner-product positions", lambda: dd.inner_product_sketch(train, M, K, seed=seed))
    add("inner-product positions, 8 trials", lambda: dd.inner_product_sketch(train, M, K, trials=8, seed=seed))
    ip = sk.get("inner-product positions, 8 trials")
    if ip is not None:
        add("inner-product + learned values", lambda: dd.refine_values(train, ip, K, steps=steps, seed=seed))
        secs["inner-product + learned values"] += secs["inner-product positions, 8 trials"]
    if greedy_seconds > 0 and ip is not None:
        greedy = {
            "greedy from inner-product": (ip, {}),
            "greedy 4 cand x 3 passes from inner-product": (ip, {"candidates": 4, "passes": 3}),
            "greedy from random": (sk["random CountSketch"], {}),
        }
        for name, (start, options) in greedy.items():
            add(name, lambda start=start, options=options: dd.greedy_positions(train[:8], start, K,
                                                                              max_time=greedy_seconds, **options))
            add(name + " + learned values", lambda g=sk[name]: dd.refine_values(train, g, K, steps=steps, seed=seed))
            secs[name + " + learned values"] += secs[name]
    one = train[:1]
    add("1Shot1Vec (1 matrix)", lambda: dd.one_shot_sketch(one[0], M, seed=seed))
    add("1Shot1Vec, paper values (1 matrix)", lambda: dd.one_shot_sketch(one[0], M, values="paper", seed=seed))
    add("inner-product (1 matrix)", lambda: dd.inner_product_sketch(one, M, K, seed=seed))
    add("inner-product, 8 trials (1 matrix)", lambda: dd.inner_product_sketch(one, M, K, trials=8, seed=seed))
    add("subspace (1 matrix)", lambda: dd.subspace_sketch(one, M))
    add("hybrid: 10 dense + 10 inner-product (1 matrix)", lambda: dd.hybrid_sketch(one[0], M, K, seed=seed))
    if "inner-product, 8 trials (1 matrix)" in sk:
        add("inner-product (1 matrix) + 100 steps on it",
            lambda: dd.refine_values(one, sk["inner-product, 8 trials (1 matrix)"], K, steps=100, seed=seed),
            secs["inner-product, 8 trials (1 matrix)"])
    add("FewShotSGD (3 matrices)", lambda: dd.few_shot_sketch(train[:3], M, K, steps=max(1, steps // 5), seed=seed))
    add("FewShotSGD, paper values (3 matrices)",
        lambda: dd.few_shot_sketch(train[:3], M, K, steps=max(1, steps // 5), values="paper", seed=seed))
    add("subspace (all)", lambda: dd.subspace_sketch(train, M))
    add("subspace mixed (all)", lambda: dd.subspace_sketch(train, M, mixed=True, seed=seed))
    add("inner-product + sampler guard", lambda: dd.inner_product_sketch(train, M, K, guard="sampler", seed=seed))
    add("inner-product + random guard", lambda: dd.inner_product_sketch(train, M, K, guard="countsketch", seed=seed))
    out = {}
    for name, S in sk.items():
        out[name] = {"err": fastlr.sketch_error(S, test, K), "foreign": fastlr.sketch_error(S, foreign, K),
                         "seconds": secs[name]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--greedy-seconds", type=float, default=20.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json")
    p.add_argument("--families", nargs="+", default=None, help="default: all")
    p.add_argument("--only", nargs="+", default=None, help="only the sketches whose name contains one of these")
    args = p.parse_args(argv)
    results = {}
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        for seed in range(args.seeds):
            for fam, (data, n_train) in families(args.quick, seed + 1).items():
                if args.families and fam not in args.families:
                    continue
                train, test = data[:n_train], data[n_train:]
                res = run_family(train, test, seed, args.steps, args.greedy_seconds, args.only)
                results.setdefault(fam, []).append(res)
                rnd = res["random CountSketch"]["err"]
                print(f"\n{fam} seed {seed}: {train[0].shape}, {len(train)} train / {len(test)} held out")
                for name, r in res.items():
                    print(f"  {name:50s} Err {r['err']:.5f} ({r['err'] / rnd:6.3f} of random)  "
                          f"foreign {r['foreign']:.4f}  {r['seconds']:7.2f} s", flush=True)
    print("\nSummary: Err / random Err on held-out matrices, median [worst] over seeds; seconds (max)")
    names = list(next(iter(results.values()))[0])
    print(f"{'sketch':50s}" + "".join(f"{fam:>26s}" for fam in results))
    for name in names:
        cells = []
        for fam, runs in results.items():
            ratios = [r[name]["err"] / r["random CountSketch"]["err"] for r in runs]
            cells.append(f"{np.median(ratios):.3f} [{max(ratios):.3f}] {max(r[name]['seconds'] for r in runs):6.2f}s")
        print(f"{name:50s}" + "".join(f"{c:>26s}" for c in cells))
    print("\nvs learned values: Err / Err of learn_sketch, median [worst] over seeds")
    for fam, runs in results.items():
        if "learned values (learn_sketch)" not in runs[0]:
            continue
        for other in [x for x in runs[0] if x.endswith("learned values") and not x.startswith("learned")]:
            if other in runs[0]:
                q = [r[other]["err"] / r["learned values (learn_sketch)"]["err"] for r in runs]
                print(f"  {fam:14s} {other:50s} {np.median(q):.3f} [{max(q):.3f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
