"""Which base under the heavy-row rule on counts? Held-out Err over the plain random CountSketch(m, n, seed)'s.

bench/guard_audit.py's text and text-topic families (seed s: data seed s + 1, sketch seed s), each candidate plain and
wrapped as ``heavy_rows="auto"`` wraps (threshold 0.5, at most m // 2 rows): the random CountSketch (what every
data-driven sketch returns there), 1Shot1Vec's paper values and its tempered values from one matrix, the paper values
from all training matrices, and learn_sketch's values (40 steps). Twenty-first session (HW, issue 15).

    OPENBLAS_NUM_THREADS=1 python bench/heavy_row_bases.py --seeds 100 --m 10 --k 5
"""

import argparse
import warnings

import numpy as np
from guard_audit import families

import fastlr
import fastlr.datadriven as dd
from fastlr.datadriven.fewshot import _tempered


def wrap(S):
    return fastlr.HeavyRowSketch(S, threshold=0.5, max_rows=min(S.m // 2, S.m - len(S.parts())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--m", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    m, k = args.m, args.k
    warnings.simplefilter("ignore")
    out = {}
    for s in range(args.first, args.first + args.seeds):
        fams = families(s + 1)
        for fam in ("text", "text-topic"):
            data, cut, _, _ = fams[fam]
            train, test = data[:cut], data[cut:]
            n = train[0].shape[0]
            rnd = fastlr.sketch_error(fastlr.CountSketch(m, n, seed=s), test, k)
            paper = dd.one_shot_sketch(train[0], m, k=k, values="paper", seed=s, heavy_rows=False)
            cands = {"random": fastlr.CountSketch(m, n, seed=s), "paper (1)": paper,
                     "tempered (1)": fastlr.CountSketch.from_arrays(paper.rows, _tempered(paper.values), m),
                     "paper (all)": dd.one_shot_sketch(train, m, k=k, values="paper", seed=s, heavy_rows=False),
                     "learned": fastlr.learn_sketch(train, m, k, steps=40, seed=s, progress=False, heavy_rows=False)}
            for name, S in cands.items():
                out.setdefault((fam, name, "plain"), []).append(fastlr.sketch_error(S, test, k) / rnd)
                out.setdefault((fam, name, "wrapped"), []).append(fastlr.sketch_error(wrap(S), test, k) / rnd)
    print(f"seeds {args.first}-{args.first + args.seeds - 1}, m = {m}, k = {k}: mean [worst]")
    for (fam, name, how), v in out.items():
        v = np.array(v)
        print(f"{fam:10s} {name:13s} {how:8s} {v.mean():.3f} [{v.max():.3f}] above random in "
              f"{int(np.sum(v > 1.001)):3d}/{len(v)}")


if __name__ == "__main__":
    main()
