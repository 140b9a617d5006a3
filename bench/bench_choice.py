#!/usr/bin/env python
"""Kernel vs BLAS for the dense one-pass products, at every ISA level the CPU runs.

For each dense A (C and F order, float32 and float64) and factor width l, times the
one-pass kernels ``matmul`` / ``rmatmul`` / ``gram_product`` / ``power_step`` (and, with
``--products gd_products``, the fused GD pass ``(A V, A.T W)``) of the
compiled core at each ISA level (x86-64-v4, x86-64-v3, baseline: ``_core._cap_isa``)
against the BLAS calls they replace (``A @ V``, ``A.T @ W``, ``A.T @ (A @ Q)``), all in one
process with the rounds interleaved. Single thread by default; times are each call's CPU
time in the calling thread (``time.thread_time``: a shared machine's waits for a core left
out) unless ``--wall``; min over the rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_choice.py --rounds 5

Prints the machine header and a markdown table: ms per call, and BLAS / kernel (> 1: the
kernel is faster). The last column checks fastlr's rule (``fastlr._matrix.choice.use_kernel``)
at each level: K or B for the path it picks, ``ok`` when that path is within ``--slack`` (5%)
of the faster one, else ``LOSES`` and by how much; a summary line counts the losing rows. The
column after it checks the same for the thresholds this machine's calibration gives at each level
(``fastlr._matrix.calibration``; read from the cache or measured first, ``--recalibrate`` measures
again), printed before the table; the summary also counts the cells where the two rules differ and
the calibrated pick is more than 5% faster (or slower) than the static one.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import fastlr
from fastlr._matrix import calibration
from fastlr._matrix.choice import LEVELS as LEVEL_NAMES
from fastlr._matrix.choice import BLAS_MIN_COLUMNS, factor_fits, static_thresholds, use_kernel

SHAPES = [(5760, 1080), (100000, 500)]
WIDTHS = [10, 20, 60, 128]
PRODUCTS = ("matmul", "rmatmul", "gram_product", "power_step")
LEVELS = {2: "v4", 1: "v3", 0: "base"}


def header(threads: int) -> str:
    core = fastlr.get_backend("cpp")
    blas = "; ".join(f"{p['internal_api']} {p['version']} {p.get('architecture', '?')}" for p in threadpool_info()
                     if p["user_api"] == "blas")
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return (f"CPU: {calibration.cpu_model()}; cores {os.cpu_count()}; fastlr ISA {core.build_info().get('isa')}; "
            f"BLAS {blas}; threads {threads}; env {env}")


def calls(core, A, factors, name):
    V, W = factors
    if name == "matmul":
        return (lambda: core.matmul(A, V)), (lambda: A @ V)
    if name == "rmatmul":
        return (lambda: core.rmatmul(A, W)), (lambda: A.T @ W)
    if name == "gram_product":
        return (lambda: core.gram_product(A, V)), (lambda: A.T @ (A @ V))
    if name == "gd_products":  # fastlr routes it by the factor's size at v4, below as A @ V and A.T @ W
        return (lambda: core.gd_products(A, W, V)), (lambda: (A @ V, A.T @ W))
    return (lambda: core.power_step(A, V)), (lambda: (lambda Y: (Y, A.T @ Y))(A @ V))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of the thread's CPU time")
    ap.add_argument("--shapes", default=",".join(f"{n}x{d}" for n, d in SHAPES))
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    ap.add_argument("--products", default=",".join(PRODUCTS))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--orders", default="C,F")
    ap.add_argument("--slack", type=float, default=0.05, help="the rule's pick may be this much slower (0.05: 5%%)")
    ap.add_argument("--levels", default="v4,v3,baseline", help="ISA levels to time (those the CPU runs)")
    ap.add_argument("--recalibrate", action="store_true", help="measure the calibration again (not the cache's)")
    args = ap.parse_args(argv)
    clock = time.perf_counter if args.wall else time.thread_time
    core = fastlr.get_backend("cpp")
    core.set_num_threads(args.threads)
    top = {"x86-64-v4": 2, "x86-64-v3": 1}.get(core.build_info().get("isa"), 0)
    wanted = {{"v4": 2, "v3": 1, "baseline": 0}[name] for name in args.levels.split(",")}
    levels = [lv for lv in LEVELS if lv <= top and lv in wanted]
    print(header(args.threads), flush=True)
    calibrated = {}
    for lv in levels:
        tab = calibration.calibrate(static_thresholds(LEVEL_NAMES[lv]), LEVEL_NAMES[lv], force=args.recalibrate)
        calibrated[lv] = tab.thresholds
        print(f"calibration {LEVELS[lv]}: {tab.source}" + (f" in {tab.seconds:.2f} s" if tab.seconds else "") + "; "
              + ", ".join(f"{' '.join(c)} < {t}" for c, t in tab.thresholds.items()), flush=True)
    core.set_num_threads(args.threads)
    cols = " | ".join(f"kernel {LEVELS[lv]}" for lv in levels) + " | BLAS | " + " | ".join(
        f"BLAS/{LEVELS[lv]}" for lv in levels) + " | rule's pick | calibrated pick"
    print(f"| A | dtype | order | l | product | {cols} |")
    print("|" + "---|" * (5 + 2 * len(levels) + 3))
    total = 0
    losing = {"static": [0, 0], "calibrated": [0, 0]}  # kernel picked and slower; BLAS picked, kernel faster
    cal_better = cal_worse = 0
    rng = np.random.default_rng(0)
    try:
        with threadpool_limits(limits=args.threads):
            for shape in args.shapes.split(","):
                n, d = map(int, shape.split("x"))
                for dtype in args.dtypes.split(","):
                    A0 = rng.standard_normal((n, d), dtype=np.float64).astype(dtype)
                    for order in args.orders.split(","):
                        A = A0 if order == "C" else np.asfortranarray(A0)
                        for l in map(int, args.widths.split(",")):
                            factors = (rng.standard_normal((d, l)).astype(dtype),
                                       rng.standard_normal((n, l)).astype(dtype))
                            for name in args.products.split(","):
                                kernel, blas = calls(core, A, factors, name)
                                t = {lv: [] for lv in levels}
                                t["blas"] = []
                                for _ in range(args.rounds + 1):  # the first round warms up
                                    for lv in levels:
                                        core._cap_isa(lv)
                                        s = clock()
                                        kernel()
                                        t[lv].append(clock() - s)
                                    s = clock()
                                    blas()
                                    t["blas"].append(clock() - s)
                                m = {key: min(v[1:]) * 1e3 for key, v in t.items()}
                                row = " | ".join(f"{m[lv]:.2f}" for lv in levels) + f" | {m['blas']:.2f} | "
                                row += " | ".join(("**%.2f**" if m["blas"] < m[lv] else "%.2f") % (m["blas"] / m[lv])
                                                  for lv in levels)
                                picks, cal_picks = [], []
                                for lv in levels:
                                    kind = {"matmul": "pass", "rmatmul": "pass", "gd_products": "gd"}.get(name, "gram")
                                    # the factor's size decides first in both rules
                                    fits = factor_fits(A.shape[1], l, dtype, LEVEL_NAMES[lv], args.threads)
                                    kernel_picked = use_kernel(kind, l, dtype, order, level=LEVEL_NAMES[lv],
                                                               factor_rows=A.shape[1], threads=args.threads)
                                    mine, other = (m[lv], m["blas"]) if kernel_picked else (m["blas"], m[lv])
                                    verdict = "ok" if mine <= (1 + args.slack) * other else f"LOSES {mine / other:.2f}x"
                                    losing["static"][not kernel_picked] += verdict != "ok"
                                    total += 1
                                    picks.append(f"{LEVELS[lv]} {'K' if kernel_picked else 'B'} {verdict}")
                                    if kind == "gd" and LEVEL_NAMES[lv] == "x86-64-v4":  # as use_kernel: size only
                                        cal_kernel = fits
                                    else:  # below v4 "gd" follows the "pass" threshold
                                        cal_kind = "pass" if kind == "gd" else kind
                                        cal_limit = calibrated[lv][order, cal_kind, np.dtype(dtype).name]
                                        if args.threads > 1:  # as use_kernel: the calibration timed one thread
                                            cal_limit = min(cal_limit, BLAS_MIN_COLUMNS)
                                        cal_kernel = fits and l < cal_limit
                                    cal = m[lv] if cal_kernel else m["blas"]
                                    faster = min(m[lv], m["blas"])
                                    cal_verdict = "ok" if cal <= (1 + args.slack) * faster else f"LOSES {cal / faster:.2f}x"
                                    losing["calibrated"][not cal_kernel] += cal_verdict != "ok"
                                    if cal_kernel != kernel_picked:
                                        cal_verdict += f" ({mine / cal:.2f}x static)"
                                        cal_better += mine > (1 + args.slack) * cal
                                        cal_worse += cal > (1 + args.slack) * mine
                                    cal_picks.append(f"{LEVELS[lv]} {'K' if cal_kernel else 'B'} {cal_verdict}")
                                print(f"| {shape} | {dtype} | {order} | {l} | {name} | {row} | {', '.join(picks)} | "
                                      f"{', '.join(cal_picks)} |", flush=True)
                        del A
    finally:
        core._cap_isa(2)
    print()
    for rule, (k, b) in losing.items():
        print(f"{rule} rule: the pick is more than {args.slack:.0%} slower than the other path on {k + b} of {total} "
              f"(row, level) cells: the kernel picked on {k}, BLAS on {b}")
    print(f"the calibrated pick differs from the static rule's and is more than {args.slack:.0%} faster on "
          f"{cal_better} cells, slower on {cal_worse}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
