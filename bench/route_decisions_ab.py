"""The calibration's route decisions (fastlr/_matrix/calibration.py ``DECISIONS``) against A/Bs of the calls they
route, at each ISA level (``_core._cap_isa``): the decision this machine's calibration took (fresh cache directory),
then each call with the decision forced either way in the same process, interleaved, one thread, CPU time of this
thread, min over rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTLR_CACHE_DIR=$(mktemp -d) \
        python bench/route_decisions_ab.py [--isa 2,1,0] [--only vector narrow] [--rounds 7] [--repeat 5]

* vector (one-column products on one thread: fastlr's column passes or BLAS's GEMVs): ``InMemory``'s
  ``times``, ``rtimes``, ``gram_product``, ``power_pass`` and ``gd_products`` with one column (as
  bench/products_vs_numpy.py calls them), C- and F-order A of 5760 x 1080, 2000 x 1000 and 100000 x 200, float32
  and float64. BLAS / passes per row; the decision is right where the geometric mean over the rows is on its side.
* narrow (randomized_svd's Krylov finder in tile-wide blocks on the fused kernel, or its other route):
  ``fastlr.randomized_svd(A, k)`` on bench_svd's 5760 x 1080 and 100000 x 500, float32 and float64, k = 10 and 50.
  Forced on, the fused kernel also runs ``A^T A V`` below 21 columns (``C gram`` threshold; at baseline the
  calibration's thresholds give it to BLAS, where the narrow rules would not apply at all). Rows where both
  routes are the same (``_krylov.krylov_block`` and ``krylov_applies`` agree) are marked and not timed.

``--repeat N``: N more calibrations, each in a fresh cache directory, their decisions and probe ratios (other /
fastlr's best time), and the whole calibration's and the decisions' seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, calibration, choice

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import cpu_ms  # noqa: E402
from bench_svd import _make  # noqa: E402

krylov = sys.modules["fastlr._krylov"]
VECTOR_SHAPES = ((5760, 1080), (2000, 1000), (100000, 200))
SVD_SHAPES = ("dense5760x1080", "dense100000x500")


def _set(tab, name: str, value: bool, gram: int | None = None) -> None:
    """Forces the decision (and, with ``gram``, the "C gram" thresholds to at least that) in this level's table;
    the route memo starts over (``calibration.generation``)."""
    tab.decisions[name] = value
    if gram is not None:
        for t in ("float32", "float64"):
            tab.thresholds["C", "gram", t] = max(tab.thresholds["C", "gram", t], gram)
    calibration._bump()


def ab(tab, name: str, call, rounds: int, gram_on: int | None = None) -> tuple[float, float]:
    """(best ms with the decision on, off): each round both, in alternating order, each side warmed once after the
    switch (its routes computed outside the timing)."""
    kept = dict(tab.decisions), dict(tab.thresholds)
    best = {True: math.inf, False: math.inf}
    try:
        for r in range(rounds):
            for side in ((True, False) if r % 2 == 0 else (False, True)):
                tab.thresholds.update(kept[1])
                _set(tab, name, side, gram_on if side else None)
                call()
                best[side] = min(best[side], cpu_ms(call))
    finally:
        tab.decisions.clear()
        tab.decisions.update(kept[0])
        tab.thresholds.update(kept[1])
        calibration._bump()
    return best[True], best[False]


def vector_rows(tab, rounds: int) -> bool:
    rng = np.random.default_rng(0)
    logs = []
    print("| A | dtype | order | times | rtimes | gram_product | power_pass | gd_products |\n" + "|---" * 8 + "|")
    for shape in VECTOR_SHAPES:
        A64 = rng.standard_normal(shape)
        for dtype in (np.float32, np.float64):
            for order in "CF":
                A = np.asarray(A64.astype(dtype), order=order)
                op = InMemory(A)
                v = rng.standard_normal((shape[1], 1)).astype(dtype)
                w = rng.standard_normal((shape[0], 1)).astype(dtype)
                cells = []
                for call in (lambda: op.times(v), lambda: op.rtimes(w), lambda: op.gram_product(v),
                             lambda: op.power_pass(v), lambda: op.gd_products(w, v)):
                    on, off = ab(tab, "vector", call, rounds)
                    logs.append(math.log(off / on))
                    cells.append(f"{off / on:.2f} ({on:.2f} / {off:.2f})")
                print(f"| {shape[0]}x{shape[1]} | {np.dtype(dtype).name} | {order} | " + " | ".join(cells) + " |",
                      flush=True)
        del A64
    mean = math.exp(sum(logs) / len(logs))
    print(f"\nBLAS / passes (passes ms / BLAS ms): geometric mean {mean:.3f} over {len(logs)} rows; passes faster in "
          f"{sum(x > 0 for x in logs)}, by 5% or more in {sum(x > math.log(1.05) for x in logs)}, BLAS by 5% or more "
          f"in {sum(x < -math.log(1.05) for x in logs)}")
    return mean > 1


def _route(op, k: int) -> tuple:
    l = k + 10
    return krylov.krylov_block(op, k, l, 7), krylov.krylov_applies(op, l, 7)


def narrow_rows(tab, rounds: int) -> list:
    print("| A | dtype | k | narrow ms | other ms | other / narrow | routes (on; off) |\n|---|---|---|---|---|---|---|")
    out = []
    for name in SVD_SHAPES:
        A64, _ = _make(name)
        for dtype in (np.float32, np.float64):
            A = A64.astype(dtype)
            op = InMemory(A)
            for k in (10, 50):
                routes, kept = [], (dict(tab.decisions), dict(tab.thresholds))
                for side in (True, False):
                    _set(tab, "narrow", side, 21 if side else None)
                    routes.append(_route(op, k))
                    tab.thresholds.update(kept[1])
                tab.decisions.clear()
                tab.decisions.update(kept[0])
                calibration._bump()
                if routes[0] == routes[1]:
                    print(f"| {name[5:]} | {np.dtype(dtype).name} | {k} | - | - | same route | {routes[0]} |",
                          flush=True)
                    continue
                on, off = ab(tab, "narrow", lambda: fastlr.randomized_svd(A, k, random_state=0), rounds, 21)
                out.append(off / on)
                print(f"| {name[5:]} | {np.dtype(dtype).name} | {k} | {on:.1f} | {off:.1f} | {off / on:.2f} | "
                      f"{routes[0]}; {routes[1]} |", flush=True)
        del A64
    return out


def calibrations(level: str, repeat: int) -> None:
    """``repeat`` fresh calibrations at ``level``: decisions, probe ratios, seconds (all, and the decisions')."""
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            os.environ["FASTLR_CACHE_DIR"] = d
            calibration.reset()
            start = time.perf_counter()
            tab = choice._calibrated()
            took = time.perf_counter() - start
        said, spent = [], 0.0
        for name in calibration.DECISIONS:
            cell = tab.cells.get(name, {})
            ratio = calibration.best_times(cell["times"]) if cell.get("times") else None
            spent += cell.get("seconds", 0.0)
            if not ratio:
                said.append(f"{name} {cell.get('status')}")
                continue
            rounds = f"; rounds {cell['times']}" if name not in tab.decisions else ""  # why it was not decisive
            said.append(f"{name} {tab.decisions.get(name, 'rule')} ({ratio[1] / ratio[0]:.2f}, "
                        f"{cell['seconds'] * 1e3:.0f} ms{rounds})")
        print(f"  {level}: {', '.join(said)}; calibration {took:.2f} s, the decisions {spent:.3f} s of it", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default="2,1,0")
    parser.add_argument("--only", nargs="*", choices=["vector", "narrow"], default=["vector", "narrow"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=0)
    args = parser.parse_args(argv)
    with fastlr.thread_limit(1), threadpool_limits(1):
        for cap in map(int, args.isa.split(",")):
            _core._cap_isa(cap)
            level = choice.isa_level()
            choice.thresholds()  # calibrated (or read from the cache) before anything is timed
            tab = choice._calibrated()
            os.system("uptime")
            print(f"\n## {level}: {calibration.cpu_model()}, BLAS {', '.join(calibration._blas())}\n"
                  f"calibrated decisions {tab.decisions} (probe cells: "
                  f"{ {n: tab.cells.get(n, {}).get('verdict') for n in calibration.DECISIONS} })\n", flush=True)
            if "vector" in args.only:
                faster = vector_rows(tab, args.rounds)
                print(f"vector: calibrated {tab.decisions.get('vector', 'rule')}, faster: "
                      f"{'passes' if faster else 'BLAS'}\n", flush=True)
            if "narrow" in args.only:
                ratios = narrow_rows(tab, args.rounds)
                print(f"\nnarrow: calibrated {tab.decisions.get('narrow', 'rule')}, other / narrow "
                      f"{', '.join(f'{r:.2f}' for r in ratios)}\n", flush=True)
            if args.repeat:
                cache = os.environ.get("FASTLR_CACHE_DIR")
                calibrations(level, args.repeat)
                if cache is not None:
                    os.environ["FASTLR_CACHE_DIR"] = cache
                calibration.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
