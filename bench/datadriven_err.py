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
  top-m subspace, the hybrid (defaults: dense rows from the smoothed matrix; and unsmoothed, 10 dense rows
  on 10 inner-product rows); with the seconds each took;
- FewShotSGD (3 training matrices, 1Shot1Vec start, ``--steps`` // 5 steps);
- the dense subspace sketch of all training matrices, and mixed (half dense, half random);
- guarded inner-product sketches (half data-driven, half ridge-leverage sampler / random CountSketch);
- Err of every sketch on *foreign* matrices (``datasets.lowrank`` of the same shape, which
  share nothing with the training data): the worst-case side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/datadriven_err.py --seeds 3 --json dd.json
    python bench/datadriven_err.py --quick      # smaller matrices, 1 seed, ~1 min
    python bench/datadriven_err.py --seeds 5 --only 1Shot1Vec FewShotSGD   # the one-shot rows only
    python bench/datadriven_err.py --audit --seeds 8 --frames /tmp/real_video/bikes   # never worse than random?
    python bench/datadriven_err.py --audit --positions --seeds 8   # also inner-product and subspace from 1 matrix
"""

from __future__ import annotations

import argparse
import inspect
import json
import pathlib
import time
import warnings

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


def quiet(fn):
    """fn() without the LearnedSketchWarning of a fallback (recorded in the table instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
        return fn()


def run_family(train, test, seed: int, steps: int, greedy_seconds: float, only=None) -> dict:
    n, d = train[0].shape
    foreign = datasets.lowrank(8, shape=(n, d), rank=K, seed=100 + seed)
    sk, secs = {}, {}

    def add(name, fn, extra=0.0):
        if only and name != "random CountSketch" and not any(w in name for w in only):
            return
        sk[name], secs[name] = timed(lambda: quiet(fn))
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
    add("hybrid (1 matrix)", lambda: dd.hybrid_sketch(one[0], M, K, seed=seed))
    add("hybrid unsmoothed: 10 dense + 10 inner-product (1 matrix)",
        lambda: dd.hybrid_sketch(one[0], M, K, smooth=None, seed=seed))
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


def audit_cases(seeds: int, frames: list):
    """(family, seed, one training matrix, held-out matrices, m, k) for the one-shot audit: this script's families
    (seed s: data seed s + 1, matrix train[0]), bench/learn_shift.py's (data seed 1, train[0]), the 600-term
    text of tests/test_datadriven.py (topics 0-9 / 10-19, data seeds 0-2, matrix train[seed % 8], m = 10, k = 5),
    and the first and last training frame of each real-video folder."""
    for s in range(seeds):
        for fam, (data, n_train) in families(False, s + 1).items():
            yield fam, s, data[0], data[n_train:], M, K
    frames_ = datasets.video(80, height=60, width=200, seed=1)
    perm = np.random.default_rng(0).permutation(len(frames_))
    kw = {"n_terms": 1500, "n_docs": 60, "seed": 1}
    text = datasets.text(42, **kw)
    hyp = datasets.hyperspectral(40, height=192, width=64, bands=4, seed=1)
    shift = {"shift video": (frames_[perm[0]], [frames_[i] for i in perm[60:]]), "shift video-time": (frames_[0], frames_[60:]),
             "shift text-topic": (datasets.text(1, topics=range(10), **kw)[0], datasets.text(12, topics=range(10, 20), **kw)),
             "shift text": (text[0], text[30:]), "shift hyperspectral": (hyp[0], hyp[30:])}
    for fam, (A, test) in shift.items():
        for s in range(seeds):
            yield fam, s, A, test, M, K
    for ds in (0, 1, 2):
        kw = {"n_terms": 600, "n_docs": 30, "seed": ds}
        train, test = datasets.text(8, topics=range(10), **kw), datasets.text(6, topics=range(10, 20), **kw)
        for s in range(seeds):
            yield "text 600", s, train[s % 8], test, 10, 5
    for folder in frames:
        train = datasets.load_folder(f"{folder}/train")
        test = datasets.load_folder(f"{folder}/test")
        for pos, A in (("first", train[0]), ("last", train[-1])):
            for s in range(seeds):
                yield f"{pathlib.Path(folder).name} {pos}", s, A, test, M, K


def audit(seeds: int, frames: list, positions: bool = False) -> dict:
    """Held-out Err / random CountSketch(m, n, seed) Err of the one-shot sketches from one matrix, per case
    (``positions``: also inner_product_sketch, 8 trials, and subspace_sketch from that matrix, with and without
    their fallbacks). The guards' own sketches: heavy_rows=False (the twenty-first session's default wraps the
    text fallback in a HeavyRowSketch, bench/guard_audit.py measures that)."""
    from fastlr.datadriven._common import _Rows, _scaled_error
    from fastlr.datadriven.fewshot import _tempered
    from fastlr.datadriven.positions import _inner_product
    from fastlr.datadriven.subspace import _subspace
    out = {}
    for fam, s, A, test, m, k in audit_cases(seeds, frames):
        R = fastlr.CountSketch(m, A.shape[0], seed=s)
        rnd = fastlr.sketch_error(R, test, k)
        P = dd.one_shot_sketch(A, m, k=k, values="paper", seed=s, heavy_rows=False)
        T = fastlr.CountSketch.from_arrays(P.rows, _tempered(P.values), m)
        seventh = T if _scaled_error(T, [A], k) < _scaled_error(R, [A], k) else R  # the seventh session's guard
        start = time.thread_time()
        one = dd.one_shot_sketch(A, m, k=k, seed=s, heavy_rows=False)
        t_one = time.thread_time() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)  # text: the random CountSketch, 1.00
            start = time.thread_time()
            hybrid = dd.hybrid_sketch(A, m, k, seed=s, heavy_rows=False)
            t_hybrid = time.thread_time() - start
            plain = dd.hybrid_sketch(A, m, k, smooth=None, dense=m // 2, seed=s, heavy_rows=False)
        row = {"1Shot1Vec guarded": fastlr.sketch_error(one, test, k) / rnd,
               "1Shot1Vec, seventh-session guard": fastlr.sketch_error(seventh, test, k) / rnd,
               "hybrid": fastlr.sketch_error(hybrid, test, k) / rnd,
               "hybrid unsmoothed, m // 2 dense": fastlr.sketch_error(plain, test, k) / rnd,
               "fallback": bool(np.array_equal(one.values, R.values)), "cpu": (t_one, t_hybrid)}
        if positions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fastlr.LearnedSketchWarning)
                start = time.thread_time()
                ip = dd.inner_product_sketch([A], m, k, trials=8, seed=s, heavy_rows=False)
                t_ip = time.thread_time() - start
                sub = dd.subspace_sketch([A], m, k=k, seed=s, heavy_rows=False)
            rows = _Rows([A])  # the sketches without their fallbacks (before the eighth session's H5)
            ip_before = _inner_product([A], rows, m, k, trials=8, seed=s)
            row.update({"inner-product 8 trials": fastlr.sketch_error(ip, test, k) / rnd,
                        "inner-product, no fallback": fastlr.sketch_error(ip_before, test, k) / rnd,
                        "subspace": fastlr.sketch_error(sub, test, k) / rnd,
                        "subspace, no fallback": fastlr.sketch_error(_subspace(rows, m), test, k) / rnd,
                        "positions fallback": type(ip) is fastlr.CountSketch and np.array_equal(ip.values, R.values),
                        "subspace fallback": type(sub) is fastlr.CountSketch})
            row["cpu"] += (t_ip,)
        out.setdefault(fam, []).append(row)
        print(f"{fam:22s} {s}  " + "  ".join(f"{n} {v:.3f}" for n, v in row.items() if isinstance(v, float))
              + "".join(f"  {n}" for n, v in row.items() if v is True)
              + f"  CPU {' / '.join(f'{t:.2f}' for t in row['cpu'])} s", flush=True)
    names = [n for n, v in next(iter(out.values()))[0].items() if isinstance(v, float)]
    print("\nmean [worst] over seeds of held-out Err / random's; fallbacks (1Shot1Vec[, inner-product, subspace]); "
          "max CPU s (1Shot1Vec / hybrid[ / inner-product])")
    print(f"{'family':22s}" + "".join(f"{n[:32]:>34s}" for n in names))
    everything = {n: [] for n in names}
    for fam, rows in out.items():
        cells = []
        for n in names:
            v = [r[n] for r in rows]
            everything[n] += v
            cells.append(f"{np.mean(v):.3f} [{max(v):.3f}]")
        flags = [n for n, v in rows[0].items() if isinstance(v, bool)]
        print(f"{fam:22s}" + "".join(f"{c:>34s}" for c in cells)
              + "".join(f"   {sum(r[n] for r in rows)}/{len(rows)}" for n in flags)
              + "  " + " / ".join(f"{max(r['cpu'][i] for r in rows):.2f}" for i in range(len(rows[0]["cpu"]))))
    print(f"{'all':22s}" + "".join(f"{f'{np.mean(v):.3f} [{max(v):.3f}]':>34s}" for v in everything.values()))
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
    p.add_argument("--audit", action="store_true",
                   help="one-shot audit: 1Shot1Vec and hybrid from one matrix on every family (and --frames)")
    p.add_argument("--frames", nargs="*", default=[], help="real-video folders (train/, test/) for --audit")
    p.add_argument("--positions", action="store_true",
                   help="--audit: also inner_product_sketch (8 trials) and subspace_sketch from one matrix")
    args = p.parse_args(argv)
    if args.audit:
        with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
            out = audit(args.seeds, args.frames, args.positions)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "audit": out}, f, indent=1)
        return
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
