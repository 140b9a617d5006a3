#!/usr/bin/env python
"""Apply-time heavy rows: adapt a CountSketch's positions/values to the matrix it sketches (issue 15, prototype).

Topic-shifted text lacks one piece of information no training set carries: which words the *new* topics make heavy
(8th session: oracle magnitudes from the test matrices' own row energies reach 0.41-0.48 of random). The row norms
of A cost one O(nnz) pass, so a sketch can use them at apply time. For each CountSketch leaf (rows r, values v, m
buckets) and each matrix A (row energies e_i = ||A_i||^2), with H the h rows of largest e:

* ``spread``: the heavy rows go to distinct buckets (greedy, heaviest first: own bucket if still free, else the free
  bucket with the least light energy sum v_i^2 e_i); every other row keeps its bucket and value;
* ``avoid``: the heavy rows go to the h buckets with the least light energy (heaviest row -> emptiest bucket);
* ``isolate``: each heavy row alone in one of h buckets (the emptiest), the light rows of those buckets rehashed
  (seeded) into the other m - h: S A holds the h heaviest rows of A exactly;
* ``lss``: as isolate, but the h rows drawn by length-squared sampling (p_i ~ e_i, without replacement);
* ``scale p``: values times (e_i / mean e)^p (the oracle magnitudes' rule, from A itself), positions kept;
* suffix ``+``: the moved rows' values made positive (count data).

Same m everywhere (fair at equal sketch size). Ratios: held-out Err / Err of ``CountSketch(m, n, seed)`` (the
per-matrix adapted sketch's Err averaged over the test matrices exactly as ``sketch_error`` averages).

    python bench/heavy_rows.py --suite shift --seeds 0 1 2 3 4 5 6 7          # learn_shift's text-topic / text
    python bench/heavy_rows.py --suite audit --first 0 --seeds 100             # guard_audit's families
    python bench/heavy_rows.py --suite time                                    # cost of the row-norm pass
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from functools import partial

import numpy as np
import scipy.sparse as sp
from learn_shift import families as shift_families  # the same train / held-out splits
from sparse_products import random_sparse
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import datasets
from fastlr._matrix import operand
from fastlr.heavy_rows import HeavyRowSketch
from fastlr.sketch import CountSketch, StackedSketch


def row_energy(A) -> np.ndarray:
    """||A_i||^2 per row: one O(nnz) pass (sparse) or O(n d) (dense)."""
    if sp.issparse(A):
        A = sp.csr_array(A)
        return np.add.reduceat(np.r_[A.data ** 2, 0.0], A.indptr[:-1]) * (np.diff(A.indptr) > 0)
    return np.einsum("ij,ij->i", A, A)


def _light_load(rows, values, e, m, heavy):
    light = np.ones(len(rows), bool)
    light[heavy] = False
    return np.bincount(rows[light], weights=values[light] ** 2 * e[light], minlength=m)


def adapt_leaf(rows, values, m, e, rule, h, seed):
    """New (rows, values) of one CountSketch leaf for a matrix with row energies e."""
    rows, values = rows.copy(), values.copy()
    positive = rule.endswith("+")
    rule = rule.rstrip("+")
    if rule.startswith("scale"):
        p = float(rule.split()[1])
        mean = e.mean() if e.mean() > 0 else 1.0
        return rows, values * (e / mean) ** p
    h = min(h, m, int(np.count_nonzero(e)))
    if h == 0:
        return rows, values
    tau, fixed = None, rule.startswith("isof")
    if fixed:  # isolate into the last h buckets (independent of the hash: the light part stays a CountSketch)
        rule = "isot" + rule[4:]
    if rule.startswith("isot"):  # isolate only rows above tau x the mean bucket energy (none on flat data)
        tau = float(rule.split()[1])
        rule = "isolate"
    if rule == "lss":
        rng = np.random.default_rng(seed)
        heavy = rng.choice(len(e), size=h, replace=False, p=e / e.sum())
        heavy = heavy[np.argsort(-e[heavy], kind="stable")]
    else:
        heavy = np.argsort(-e, kind="stable")[:h]
        if tau is not None:
            heavy = heavy[e[heavy] >= tau * e.sum() / m]
            h = len(heavy)
            if h == 0:
                return rows, values
    load = _light_load(rows, values, e, m, heavy)
    if rule == "spread":
        free = np.ones(m, bool)
        for i in heavy:
            if free[rows[i]]:
                free[rows[i]] = False
                continue
            cand = np.flatnonzero(free)
            b = cand[np.argmin(load[cand])]
            rows[i] = b
            free[b] = False
    elif rule in ("avoid", "isolate", "lss"):
        buckets = np.arange(m - h, m) if fixed else np.argsort(load, kind="stable")[:h]
        rows[heavy] = buckets
        if rule != "avoid" and h < m:
            others = np.setdiff1d(np.arange(m), buckets)
            mask = np.isin(rows, buckets)
            mask[heavy] = False
            rng = np.random.default_rng(seed + 7919)
            rows[mask] = others[rng.integers(0, len(others), size=int(mask.sum()))]
        if rule != "avoid":
            values[heavy] = 1.0  # alone in its bucket: the value is only a scale (Err is scale-invariant per row)
    else:
        raise ValueError(rule)
    if positive:
        values[heavy] = np.abs(values[heavy])
    return rows, values


def adapted(S, A, rule, h, seed):
    """The sketch S adapted to matrix A (each CountSketch leaf; h split over leaves by their m)."""
    if rule == "none":
        return S
    e = row_energy(A)
    if rule.startswith("lib"):  # the library's HeavyRowSketch (fixed reserved buckets, stacks leaf by leaf)
        return HeavyRowSketch(S, threshold=float(rule.split()[1]), max_rows=h, seed=seed).adapted_to(e)
    leaves = S.parts()
    out = []
    for j, leaf in enumerate(leaves):
        hl = max(1, round(h * leaf.m / S.m))
        r, v = adapt_leaf(np.asarray(leaf.rows), np.asarray(leaf.values, dtype=float), leaf.m, e, rule, hl,
                          seed + 101 * j)
        out.append(CountSketch.from_arrays(r, v, leaf.m))
    return out[0] if len(out) == 1 else StackedSketch(out)


def adaptive_error(S, test, k, rule, h, seed):
    """Err with the sketch adapted per matrix; equals sketch_error(S, test, k) for rule 'none'."""
    if rule == "none":
        return fastlr.sketch_error(S, test, k)
    return float(np.mean([fastlr.sketch_error(adapted(S, A, rule, h, seed), [A], k) for A in test]))


RULES = None  # --rules: keep only the rules whose name starts with one of these


def rules(m):
    out = _all_rules(m)
    return out if RULES is None else [r for r in out if r[0] == "none" or r[0].startswith(tuple(RULES))]


def _all_rules(m):
    out = [("none", 0)]
    for h in sorted({max(1, m // 4), m // 2, m}):
        out += [("spread", h), ("spread+", h), ("avoid+", h)]
        if h < m:
            out += [("isolate", h), ("lss", h)]
    for tau in (0.5, 1.0, 1.5, 2.0):
        out += [(f"isot {tau}", m // 2), (f"isot {tau}", m - 1), (f"isof {tau}", m // 2)]
        out += [(f"lib {tau}", m // 2)]
    out += [("scale 0.25", 0), ("scale 0.5", 0), ("scale 1", 0)]
    return out


def audit_families(seed, names):
    text = {"n_terms": 600, "n_docs": 30, "seed": seed}
    lr = {"seed": seed, "noise": 0.05}
    fams = {
        "text-topic": lambda: (datasets.text(18, topics=range(10), **text)
                               + datasets.text(6, topics=range(10, 20), **text), 10, 5),
        "text": lambda: (datasets.text(24, **text), 10, 5),
        "video": lambda: (datasets.video(24, height=30, width=80, seed=seed), 10, 5),
        "hyperspectral": lambda: (datasets.hyperspectral(24, height=96, width=32, bands=4, seed=seed), 10, 5),
        "lowrank": lambda: (datasets.lowrank(24, shape=(200, 30), rank=8, **lr), 10, 5),
        "tiny 12 x 6": lambda: (datasets.lowrank(24, shape=(12, 6), rank=3, **lr), 4, 2),
    }
    return {name: fams[name]() for name in names}


def bases(train, m, k, seed, steps, which):
    n = train[0].shape[0]
    out = {"random": CountSketch(m, n, seed=seed)}
    # the plain learned sketches (learn_sketch's heavy_rows="auto" would already wrap them on text): the rules here
    # are applied to them
    learn = partial(fastlr.learn_sketch, train, m, k, steps=steps, seed=seed, progress=False, heavy_rows=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "learned" in which:
            out["learned"] = learn()
        if "joint" in which:
            out["joint"] = learn(mixed="joint")
    return out


def evaluate(table, fam, train, test, m, k, seed, steps, which, out=print):
    n = train[0].shape[0]
    rnd = fastlr.sketch_error(CountSketch(m, n, seed=seed), test, k)
    floor = 1e-9
    # random's own luck (guard_audit's "random spread"): CountSketch(m, n, seed) over the mean of 8 other seeds
    others = [fastlr.sketch_error(CountSketch(m, n, seed=10_000 + 8 * seed + i), test, k) for i in range(8)]
    table.setdefault(fam, {}).setdefault("_spread", []).append((rnd + floor) / (float(np.mean(others)) + floor))
    for bname, S in bases(train, m, k, seed, steps, which).items():
        for rule, h in rules(m):
            err = adaptive_error(S, test, k, rule, h, seed)
            key = f"{bname} | {rule} h={h}" if h else f"{bname} | {rule}"
            table.setdefault(fam, {}).setdefault(key, []).append((err + floor) / (rnd + floor))
    out(f"{fam:14s} seed {seed:3d} done", flush=True)


def summary(table, out=print):
    for fam, row in table.items():
        out(f"\n{fam}   (held-out Err / CountSketch(m, n, seed) Err: mean [worst] n, above = ratio > 1.001)")
        spread = np.array(row["_spread"]) if "_spread" in row else None
        if spread is not None:
            out(f"  random spread (CountSketch(m, n, seed) / mean of 8 others) {spread.mean():.3f} "
                f"[{spread.min():.3f}, {spread.max():.3f}]")
        for key, v in row.items():
            if key == "_spread":
                continue
            v = np.array(v)
            line = f"  {key:28s} {v.mean():.3f} [{v.max():.3f}] n={len(v)} above {int((v > 1.001).sum())}"
            if spread is not None and len(spread) == len(v):
                line += f"   vs mean random {np.mean(v * spread):.3f} [{np.max(v * spread):.3f}]"
            base, rule = key.split(" | ")
            if base != "random" and rule != "none":  # the learned part: vs the same rule on the random sketch
                w = v / np.array(row["random | " + rule])
                line += f"   vs adaptive random {w.mean():.3f} [{w.max():.3f}]"
            out(line)


def timing(out=print):
    """CPU ms of the row-energy pass vs scw with CountSketch(20, n) at k = 10 (1 thread, min of rounds)."""
    cases = {
        "text 20000 x 1000 (datasets)": datasets.text(1, n_terms=20000, n_docs=1000, seed=1)[0],
        "sparse 100000 x 2000, 1M nnz": random_sparse(100000, 2000, 10**6, np.float64, np.random.default_rng(0)),
        "sparse 20000 x 500, 200k nnz": random_sparse(20000, 500, 200000, np.float64, np.random.default_rng(1)),
        "dense 20000 x 500": np.random.default_rng(2).standard_normal((20000, 500)),
        "dense 5000 x 1000": np.random.default_rng(3).standard_normal((5000, 1000)),
    }
    for name, A in cases.items():
        S = CountSketch(20, A.shape[0], seed=0)
        H = HeavyRowSketch(S)
        op = operand(A)
        t = {"scw": [], "scw heavy": [], "S A": [], "row norms": []}
        for _ in range(7):  # interleaved rounds, min of each
            for key, fn in (("scw", lambda: fastlr.scw(A, S, 10)), ("scw heavy", lambda: fastlr.scw(A, H, 10)),
                            ("S A", lambda: S.apply(A)), ("row norms", op.row_squared_norms)):
                t0 = time.thread_time()
                fn()
                t[key].append(time.thread_time() - t0)
        best = {key: 1e3 * min(v) for key, v in t.items()}
        out(f"{name:28s} " + "  ".join(f"{key} {v:8.2f} ms" for key, v in best.items())
            + f"   heavy/plain scw {best['scw heavy'] / best['scw']:.2f}  row norms/scw {best['row norms'] / best['scw']:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["shift", "audit", "time"], default="shift")
    ap.add_argument("--families", nargs="+", default=None)
    ap.add_argument("--bases", nargs="+", default=["learned", "joint"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--json")
    ap.add_argument("--merge", nargs="+")
    ap.add_argument("--rules", nargs="+", help="only the rules starting with these (e.g. lib isof)")
    args = ap.parse_args(argv)
    global RULES
    RULES = args.rules
    if args.merge:
        merged = {}
        for path in args.merge:
            with open(path) as f:
                for fam, row in json.load(f).items():
                    for key, v in row.items():
                        merged.setdefault(fam, {}).setdefault(key, []).extend(v)
        summary(merged)
        return 0
    table = {}
    with threadpool_limits(limits=1, user_api="blas"), fastlr.thread_limit(1):
        if args.suite == "time":
            timing()
            return 0
        if args.suite == "shift":
            fams = shift_families(args.families or ["text-topic", "text"])
            for fam, (train, test) in fams.items():
                for seed in args.seeds:
                    evaluate(table, fam, train, test, 20, 10, seed, args.steps or 400, args.bases)
        else:
            names = args.families or ["text-topic", "text", "video", "hyperspectral", "lowrank", "tiny 12 x 6"]
            seeds = range(args.first, args.first + args.seeds[0])
            for s in seeds:
                for fam, (data, m, k) in audit_families(s + 1, names).items():
                    evaluate(table, fam, data[:18], data[18:], m, k, s, args.steps or 40, args.bases)
    summary(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
