"""The ``fastlr`` command line (also ``python -m fastlr``).

Subcommands: ``info``, ``calibrate``, ``demo``, ``train``, ``eval`` and ``approx``. User
mistakes (missing file, bad shape, unreadable format, sketch/data mismatch,
bad option) print one line on stderr and exit with status 2, never a
traceback; set ``FASTLR_DEBUG=1`` to see the traceback anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zipfile
from contextlib import ExitStack

import numpy as np

from . import __version__
from ._backend import (BACKENDS, available_backends, backend_errors, current_backend, get_backend, omp_wait,
                       set_backend)
from ._cli_io import (VIDEO_SUFFIXES, UserError, atomic_output, npz_path, plot_path, progress, read_matrix,
                      read_video, save_plot)
from ._cli_pca import add_pca_parser, run_pca
from ._kernels._threads_state import BUSY_CHECK_ENV
from ._matrix import RowBlocks, on_each_block, row_blocks
from ._matrix import calibration
from ._matrix.choice import describe as describe_product_choice
from ._matrix.choice import isa_level, static_thresholds
from ._threads import get_num_threads, set_num_threads
from .learned_sketch import load_sketch
from .randomized import auto_n_iter
from .sketch import CountSketch

METHODS = ("randomized", "countsketch", "learned", "gd")
#: fastlr train --heavy-rows: learn_sketch's heavy_rows.
HEAVY_ROWS_OPTION = {"auto": "auto", "on": True, "off": False}


# --------------------------------------------------------------------------- info


def _info(args) -> dict:
    info = {
        "fastlr": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "default_backend": current_backend(),
        "available_backends": available_backends(),
        "unavailable_backends": backend_errors(),
        "threads": get_num_threads(),
        "product_choice": describe_product_choice(),
    }
    try:  # an optional dependency: report its version; nothing is compiled (kernels compile on first use)
        import numba

        info["numba"] = numba.__version__
    except Exception:  # the reason is in unavailable_backends["numba"]
        info["numba"] = None
    try:
        info["build"] = get_backend("cpp").build_info()
    except ImportError as exc:
        info["build"] = f"unavailable ({exc})"
    info["omp_wait"] = omp_wait()  # settled once the compiled core has loaded
    info["busy_check"] = _busy_check_state(info["build"])
    return info


def _busy_check_state(build) -> str:
    """The compiled core's busy-thread check, as ``fastlr info`` reports it."""
    if not isinstance(build, dict) or "busy_check" not in build:
        return "unavailable (no compiled core)"
    if not build["busy_check_supported"]:
        return "unavailable (Linux with OpenMP only)"
    if build["busy_check"]:
        kernels = ", ".join(build.get("busy_check_kernels", []))
        cold = build.get("busy_check_cold_after_ms")
        cold = f"; one thread for those up to {build['busy_check_max_call_ms']:.0f} ms after {cold:.0f} ms without a " \
               "call from the calling thread" if cold is not None else ""
        return (f"on for {kernels} calls estimated at {build['busy_check_min_call_ms']:.1f}-"
                f"{build['busy_check_max_call_ms']:.0f} ms{cold} ({BUSY_CHECK_ENV}=0 turns it off)")
    return f"off ({BUSY_CHECK_ENV}={os.environ.get(BUSY_CHECK_ENV, '')!r} or turned off in-process)"


def cmd_info(args) -> int:
    info = _info(args)
    if args.json:
        _print_json(info)
        return 0
    print(f"fastlr {info['fastlr']} (Python {info['python']}, NumPy {info['numpy']})")
    for name in BACKENDS:
        if name in info["available_backends"]:
            mark = " (default)" if name == info["default_backend"] else ""
            if name == "numba":
                mark += f" (Numba {info['numba']}; kernels compile on first use and are cached)"
            print(f"  backend {name:6s} available{mark}")
        else:
            print(f"  backend {name:6s} unavailable: {info['unavailable_backends'].get(name, '?')}")
    build = info["build"]
    if isinstance(build, dict):
        isa = build.get("isa", "?")
        kernel_isa = build.get("kernel_isa", isa)  # below isa when _core._cap_isa capped the kernels
        capped = f" (kernels capped at {kernel_isa})" if kernel_isa != isa else ""
        print(f"  build: {build['compiler']}, flags '{build['flags']}', OpenMP {'on' if build['openmp'] else 'off'}, "
              f"vector ISA {isa}{capped}")
    else:
        print(f"  build: {build}")
    print(f"  threads: {info['threads']}; idle OpenMP threads: {info['omp_wait']}")
    print(f"  busy-thread check (fewer threads beside running threads of this process): {info['busy_check']}")
    print(f"  dense products: {info['product_choice']}")
    return 0


def _time_ratio(kernel: float, blas: float) -> str:
    return f"{blas / kernel:.2f}" if kernel > 0 else "-"


def cmd_calibrate(args) -> int:
    """Measure kernel vs BLAS for dense products at this CPU's ISA level (``_matrix/calibration.py``)."""
    level = isa_level()
    tab = calibration.calibrate(static_thresholds(level), level, force=args.force)
    if args.json:
        _print_json(tab.as_dict())
        return 0
    took = f" in {tab.seconds:.1f} s" if tab.seconds else ""
    print(f"dense products at {level}: {tab.source}{took}" + (f" ({tab.note})" if tab.note else "")
          + (f"; cache {tab.path}" if tab.path else ""))
    print("  A's order, product, dtype: the kernel below (static table -> this machine) columns")
    for cell, columns in tab.thresholds.items():
        info = tab.cells.get(" ".join(cell), {})
        widths = ", ".join(f"{w}: {_time_ratio(*calibration.best_times(r))}" for w, r in info.get("times", {}).items())
        print(f"  {' '.join(cell):16s} {info.get('static', '?'):>3} -> {columns:3d}"
              + (f"   BLAS / kernel time at {widths}" if widths else f"   {info.get('status', '')}"))
    for dtype, swapped in tab.layouts.items():  # BLAS's A^T W layout (calibration.measure_layouts)
        info = tab.cells.get(f"layout {dtype}", {})
        widths = ", ".join(f"{w}: {_time_ratio(*calibration.best_times(r))}" for w, r in info.get("times", {}).items())
        print(f"  BLAS A^T W {dtype}: (W^T A)^T at widths {', '.join(map(str, sorted(swapped))) or 'none'} "
              f"mod {calibration.LAYOUT_PERIOD}   NumPy's / swapped time at {widths}")
    for name, what in calibration.DECISIONS.items():  # the route decisions (calibration.decide)
        info = tab.cells.get(name, {})
        said = {True: "yes", False: "no"}.get(tab.decisions.get(name), "the rule")
        ratio = (f"   other / fastlr's time {_time_ratio(*calibration.best_times(info['times']))} "
                 f"({info.get('seconds', 0) * 1e3:.0f} ms)" if info.get("times") else f"   {info.get('status', '')}")
        print(f"  {name}: {what}: {said}{ratio}")
    print(f"  now: {describe_product_choice()}")
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    """Learned vs random sketches on built-in generated data (see fastlr/demo.py)."""
    from .demo import run

    run(quick=args.quick, plot=args.plot, quiet=args.quiet)
    return 0


# --------------------------------------------------------------------------- approx


def _load_sketch(path):
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a fastlr sketch file (an .npz written by 'fastlr train')")
    try:
        return load_sketch(path)
    except ValueError as exc:
        raise UserError(str(exc).removeprefix("path: ")) from None


def _check_rank(k: int, shape, what: str) -> int:
    if k > min(shape):
        raise UserError(f"-k {k}: larger than the smaller side of {what} (shape {shape[0]} x {shape[1]})")
    return k


def _relative_error(A, U, s, Vt) -> float:
    """||A - U diag(s) Vt||_F / ||A||_F, a block of rows at a time (A may be a memmap larger than memory)."""
    sums = np.zeros(2)  # ||A||^2, ||A - U diag(s) Vt||^2

    def add(start, stop, block):
        block = np.array(getattr(block, "A", block), dtype=np.float64)  # a copy: memory-mapped blocks are read-only
        sums[0] += np.sum(block * block)
        block -= (U[start:stop] * s) @ Vt
        sums[1] += np.sum(block * block)

    if hasattr(A, "tocsr"):
        A = A.tocsr()
        for start, stop in row_blocks(A.shape[0], 4096):
            add(start, stop, A[start:stop].toarray())
    else:
        RowBlocks(A).for_each_block(add)
    return float(np.sqrt(sums[1] / sums[0])) if sums[0] > 0 else 0.0


def _resolve_n_iter(A, k: int, n_iter) -> int:
    """randomized_svd's power iterations for ``n_iter`` ("auto": its rule, from k and A's shape)."""
    return auto_n_iter(k, A.shape) if n_iter == "auto" else n_iter


def _sketch_size(args, k: int) -> int:
    m = k + 10 if args.m is None else args.m
    if m < k:
        raise UserError(f"-m: the sketch size must be >= k = {k}, got {m}")
    return m


def _sketched_svd(A, S, k: int, n_iter: int, quiet: bool):
    """scw(A, S, k, n_iter): a memory-mapped .npy in row blocks (never loaded whole), with a progress bar."""
    import fastlr

    if not isinstance(A, np.memmap):
        return tuple(fastlr.scw(A, S, k, n_iter=n_iter))
    passes = len(S.parts()) + n_iter + 1  # one per part of S, one per power step, one for B = A V
    total = passes * RowBlocks(A).n_blocks
    with progress(total=total, desc="approx (row blocks)", quiet=quiet) as bar, on_each_block(bar.update):
        return tuple(fastlr.scw(A, S, k, n_iter=n_iter))


def cmd_approx(args) -> int:
    import fastlr

    output = npz_path(args.output)  # what np.savez writes: ".npz" is appended when missing
    _check_output(output)
    _check_plot(args.plot)
    A = read_matrix(args.matrix)
    if args.k is None and args.tol is None:
        raise UserError("give the rank (-k) or a tolerance (--tol)")
    if args.tol is not None and args.method != "randomized":
        raise UserError(f"--tol: chooses the rank for --method randomized only, not {args.method}")
    k = min(A.shape) if args.k is None else _check_rank(args.k, A.shape, args.matrix)
    n_iter = None
    start = time.perf_counter()
    if args.tol is not None:  # the smallest rank (at most -k) with ||A - A_k||_F <= tol ||A||_F
        try:
            U, s, Vt = fastlr.svd_to_tolerance(A, args.tol, max_rank=args.k, random_state=args.seed)
        except ValueError as exc:
            raise UserError(f"--tol: {exc}") from None
        k, sketch = len(s), None
    elif args.method == "gd":
        U, s, Vt = fastlr.gd_svd(A, k, random_state=args.seed, progress=not args.quiet)
        sketch = None
    elif args.method == "learned":
        if args.sketch is None:
            raise UserError("--method learned needs --sketch FILE (a sketch saved by 'fastlr train')")
        S = _load_sketch(args.sketch)
        if S.n != A.shape[0]:
            raise UserError(
                f"{args.sketch}: the sketch is for matrices with {S.n} rows, "
                f"but {args.matrix} has {A.shape[0]} rows"
            )
        sketch = args.sketch
        n_iter = 0 if args.n_iter == "auto" else args.n_iter  # a learned sketch is trained for one pass
        U, s, Vt = _sketched_svd(A, S, k, n_iter, args.quiet)
    elif args.method == "countsketch":  # SCW with a random CountSketch of m rows (--n-iter 0: one pass)
        m = _sketch_size(args, k)
        n_iter = _resolve_n_iter(A, k, args.n_iter)
        sketch = f"CountSketch(m={m}, seed={args.seed})"
        U, s, Vt = _sketched_svd(A, CountSketch(m, A.shape[0], seed=args.seed), k, n_iter, args.quiet)
    else:  # what fastlr.randomized_svd(A, k) gives (a .npy file: in row blocks, never loaded whole)
        m = _sketch_size(args, k)
        n_iter = _resolve_n_iter(A, k, args.n_iter)
        sketch = None
        options = dict(n_oversamples=m - k, n_iter=n_iter, random_state=args.seed)
        if isinstance(A, np.memmap):
            # Passes over the blocks: about n_iter + 2 (the first pass, the power steps, B = A V).
            total = (n_iter + 2) * RowBlocks(A).n_blocks
            with progress(total=total, desc="approx (row blocks)", quiet=args.quiet) as bar, on_each_block(bar.update):
                U, s, Vt = fastlr.randomized_svd(A, k, **options)
        else:
            U, s, Vt = fastlr.randomized_svd(A, k, **options)
    seconds = time.perf_counter() - start
    with atomic_output(output) as f:  # never a truncated file, and a previous output stays until replaced
        np.savez(f, U=U, s=s, Vt=Vt)
    result = {
        "matrix": args.matrix,
        "shape": list(A.shape),
        "k": k,
        "method": args.method,
        "sketch": sketch,
        "tol": args.tol,
        "n_iter": n_iter,
        "seconds": seconds,
        "relative_error": _relative_error(A, U, s, Vt),
        "singular_values": [float(x) for x in s],
        "output": output,
    }
    if args.plot:
        result["plot"] = save_plot(args.plot, lambda ax: _plot_singular_values(ax, s, args))
    if args.json:
        _print_json(result)
    elif not args.quiet:
        print(
            f"rank-{k} approximation of {args.matrix} ({A.shape[0]} x {A.shape[1]}) by {args.method}: "
            f"relative error {result['relative_error']:.4g}, {seconds:.2f} s -> {output}"
        )
    return 0


def cmd_pca(args) -> int:
    import fastlr

    try:
        PCA = fastlr.PCA  # loads scikit-learn, an optional dependency
    except ImportError as exc:
        raise UserError(f"fastlr pca needs scikit-learn: pip install \"fastlr[sklearn]\" ({exc})") from None
    return run_pca(args, PCA)


def _plot_singular_values(ax, s, args) -> None:
    ax.semilogy(np.arange(1, len(s) + 1), s, "o-")
    ax.set_xlabel("i")
    ax.set_ylabel("singular value")
    ax.set_title(f"{os.path.basename(args.matrix)}: top {len(s)} singular values ({args.method})")


# --------------------------------------------------------------------------- train / eval


def _check_output(path) -> None:
    """Fail before a long computation, not after it, when the output cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, expected a file name")


def _check_plot(path) -> None:
    if path:
        try:
            _check_output(plot_path(path)[0])
        except UserError as exc:
            raise UserError(f"--plot {exc}") from None


def _load_data(path) -> list:
    """Training or test matrices: a folder (see fastlr.datasets.load_folder), a video or one matrix file."""
    from . import datasets

    if os.path.isdir(path):
        try:
            return datasets.load_folder(path)
        except ValueError as exc:
            raise UserError(str(exc).removeprefix("path: ")) from None
    if os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES:
        return read_video(path)
    return [read_matrix(path, mmap=False)]


def _matching(S, data, sketch_path: str, data_path: str) -> None:
    if S.n != data[0].shape[0]:
        raise UserError(
            f"{sketch_path}: the sketch is for matrices with {S.n} rows, "
            f"but the matrices in {data_path} have {data[0].shape[0]} rows"
        )


def cmd_train(args) -> int:
    import fastlr

    _check_output(args.output)
    _check_plot(args.plot)
    train = _load_data(args.data)
    val = _load_data(args.val) if args.val else None
    k = _check_rank(args.k, train[0].shape, args.data)
    if args.m < k:
        raise UserError(f"-m: the sketch size must be >= k = {k}, got {args.m}")
    if val is not None and val[0].shape != train[0].shape:
        raise UserError(f"{args.val}: matrices of shape {val[0].shape}, but the training matrices are {train[0].shape}")
    start = time.perf_counter()
    S = fastlr.learn_sketch(
        train, args.m, k, steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        gradient=args.gradient, mixed=args.mixed, seed=args.seed, val=val, init=args.init, progress=not args.quiet,
        heavy_rows=HEAVY_ROWS_OPTION[args.heavy_rows],
    )
    seconds = time.perf_counter() - start
    with atomic_output(args.output) as f:  # written as named (no suffix added), never truncated
        S.save(f)
    history = S.history
    loss = history["train_loss"][~np.isnan(history["train_loss"])]  # step 0 (the start) has no loss
    val_err = history["val_err"][~np.isnan(history["val_err"])]
    result = {
        "data": args.data,
        "matrices": len(train),
        "shape": list(train[0].shape),
        "m": args.m,
        "k": k,
        "steps": int(history["step"][-1]) if len(history) else 0,
        "seconds": seconds,
        "train_loss_first": float(loss[0]) if len(loss) else None,
        "train_loss_last": float(loss[-1]) if len(loss) else None,
        "val_err_first": float(val_err[0]) if len(val_err) else None,
        "val_err_last": float(val_err[-1]) if len(val_err) else None,
        "init": args.init,
        "fallback": bool(S.fallback),  # learning did not beat the start on validation: the start was kept
        "heavy_rows": getattr(S, "reason", None),  # why each matrix's heaviest rows get buckets at apply time
        "output": args.output,
    }
    if args.plot:
        result["plot"] = save_plot(args.plot, lambda ax: _plot_history(ax, history))
    if args.json:
        _print_json(result)
    elif not args.quiet:
        line = (f"trained a {args.m} x {train[0].shape[0]} sketch for rank {k} on {len(train)} matrices "
                f"({result['steps']} steps, {seconds:.1f} s): training loss "
                f"{result['train_loss_first']:.4g} -> {result['train_loss_last']:.4g}")
        if len(val_err):
            line += f", validation Err {val_err[0]:.4g} -> {val_err[-1]:.4g}"
        if result["heavy_rows"]:
            line += f"; heavy rows get buckets of their own at apply time ({result['heavy_rows']})"
        print(f"{line}; saved to {args.output}")
    return 0


def _plot_history(ax, history) -> None:
    ax.plot(history["step"], history["train_loss"], label="training loss (batch mean)")
    has_val = ~np.isnan(history["val_err"])
    if has_val.any():
        ax.plot(history["step"][has_val], history["val_err"][has_val], "o-", label="validation Err")
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("learned sketch training")


def cmd_eval(args) -> int:
    import fastlr

    _check_plot(args.plot)
    S = _load_sketch(args.sketch)
    data = _load_data(args.data)
    _matching(S, data, args.sketch, args.data)
    k = args.k if args.k is not None else getattr(S, "k", None)
    if k is None:
        raise UserError(f"{args.sketch}: holds a random sketch with no training rank; give -k")
    k = _check_rank(k, data[0].shape, args.data)
    sketches = [(f"sketch ({os.path.basename(args.sketch)})", S),
                ("random CountSketch", fastlr.CountSketch(S.m, S.n, seed=args.seed))]
    errors = {name: [] for name, _ in sketches}
    # Err is a difference of means, so it is the mean of the per-matrix Errs: one bar step per matrix.
    for A in progress(data, desc="evaluating", quiet=args.quiet):
        for name, sketch in sketches:
            errors[name].append(fastlr.sketch_error(sketch, [A], k))
    rows = [{"sketch": name, "m": sketch.m, "err": float(np.mean(errors[name]))} for name, sketch in sketches]
    rows.append({"sketch": "optimum (truncated SVD)", "m": None, "err": 0.0})
    result = {"data": args.data, "matrices": len(data), "shape": list(data[0].shape), "k": k, "rows": rows}
    if args.plot:
        result["plot"] = save_plot(args.plot, lambda ax: _plot_errors(ax, rows, k))
    if args.json:
        _print_json(result)
    else:
        print(f"Err = mean ||A - SCW(S, A)||_F - mean ||A - A_k||_F over {len(data)} matrices "
              f"{data[0].shape[0]} x {data[0].shape[1]} scaled to sigma_1 = 1, k = {k}")
        print(f"{'sketch':32} {'m':>5} {'Err':>12}")
        for row in rows:
            m = "" if row["m"] is None else row["m"]
            print(f"{row['sketch']:32} {m:>5} {row['err']:12.5g}")
    return 0


def _plot_errors(ax, rows, k) -> None:
    ax.bar([r["sketch"] for r in rows], [r["err"] for r in rows])
    ax.set_ylabel("Err")
    ax.set_title(f"rank-{k} approximation error above the optimum")
    ax.tick_params(axis="x", labelrotation=15)


# --------------------------------------------------------------------------- plumbing


def _json_safe(x):
    """NaN and infinity as null: they are not JSON."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _print_json(data) -> None:
    print(json.dumps(_json_safe(data), indent=2, default=str, allow_nan=False))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _n_iter(text: str):
    if text.strip() == "auto":
        return "auto"
    try:
        return _count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line (argparse would print the usage too).
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _options(suppress: bool) -> argparse.ArgumentParser:
    """--threads, --backend, --quiet: accepted before and after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", type=_positive_int, default=default, metavar="N", help="threads for fastlr's kernels and BLAS")
    p.add_argument("--backend", choices=BACKENDS, default=default, help="kernel backend")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="no progress bars or messages (errors and --json output only)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastlr", description="Fast low-rank matrix approximation.", parents=[_options(False)])
    parser.add_argument("--version", action="version", version=f"fastlr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_options(True)]

    def json_option(p):
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = sub.add_parser("info", help="version, backends, build and threads", parents=common)
    json_option(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("calibrate", help="measure kernel vs BLAS for dense products on this machine (cached)",
                       parents=common)
    p.add_argument("--force", action="store_true", help="measure again even when the cache holds this machine's")
    json_option(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("demo", help="run the demonstration on built-in generated data", parents=common)
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (under 30 s)")
    p.add_argument("--plot", metavar="FILE", help="save the training curves and the comparison (needs matplotlib)")
    p.set_defaults(func=cmd_demo)

    data_help = "a folder of .npy/.npz/.mtx matrices or image frames, a video file (with imageio), or one matrix file"
    p = sub.add_parser("train", help="learn a sketch from sample matrices", parents=common)
    p.add_argument("data", metavar="DATA", help=data_help)
    p.add_argument("-m", type=_positive_int, required=True, help="sketch size (rows of the sketch)")
    p.add_argument("-k", type=_positive_int, required=True, help="rank the sketch is trained for")
    p.add_argument("-o", "--output", required=True, metavar="SKETCH.npz", help="where to save the sketch")
    p.add_argument("--steps", type=_positive_int, default=500, help="optimizer steps (default 500)")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="matrices per step (default 1)")
    p.add_argument("--optimizer", choices=("adam", "sgd", "momentum"), default="adam")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    p.add_argument("--gradient", choices=("exact", "power"), default="exact")
    p.add_argument("--mixed", choices=("joint", "separate"), default=None,
                   help="half learned and half random rows, trained jointly or separately")
    p.add_argument("--init", choices=("random", "inner_product", "one_shot"), default="random",
                   help="the start: a random CountSketch, learned positions (inner products with sampled rows), "
                        "or 1Shot1Vec from the first matrix (default random)")
    p.add_argument("--val", metavar="DATA", help="held-out matrices: validation Err during training")
    p.add_argument("--heavy-rows", choices=tuple(HEAVY_ROWS_OPTION), default="auto",
                   help="give each matrix's heaviest rows buckets of their own at apply time: on text-like data "
                        "(energy on few rows; auto, the default), always (on) or never (off)")
    p.add_argument("--seed", type=_count, default=0, help="seed of the sketch's positions and the batches")
    p.add_argument("--plot", metavar="FILE", help="plot the training curves to FILE")
    json_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="Err of a sketch against a random one and the optimum", parents=common)
    p.add_argument("sketch", metavar="SKETCH", help="a sketch saved by 'fastlr train'")
    p.add_argument("data", metavar="DATA", help=data_help)
    p.add_argument("-k", type=_positive_int, default=None, help="rank (default: the rank the sketch was trained for)")
    p.add_argument("--seed", type=_count, default=0, help="seed of the random CountSketch to compare with")
    p.add_argument("--plot", metavar="FILE", help="plot the errors to FILE")
    json_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("approx", help="rank-k approximation U, s, Vt of one matrix", parents=common)
    p.add_argument("matrix", metavar="MATRIX", help="a .npy (read memory-mapped), .npz, .mtx or .csv file")
    p.add_argument("-k", type=_positive_int, default=None,
                   help="rank (with --tol: the largest rank allowed; default min(shape))")
    p.add_argument("--tol", type=float, default=None, metavar="T",
                   help="choose the rank: the smallest with ||A - A_k||_F <= T ||A||_F (fastlr.svd_to_tolerance)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="where to write U, s, Vt (.npz is appended when missing)")
    p.add_argument("--method", choices=METHODS, default="randomized",
                   help="randomized (default): what fastlr.randomized_svd(A, k) gives, a near-optimal "
                        "approximation; countsketch: the sketched SVD (SCW) with a random CountSketch "
                        "('--method countsketch --n-iter 0' is the fastest, one pass, less accurate); "
                        "learned: SCW with a learned sketch (--sketch); gd: gradient descent")
    p.add_argument("-m", type=_positive_int, default=None,
                   help="sketch size for countsketch, subspace size (n_components + n_oversamples) for "
                        "randomized (default k + 10)")
    p.add_argument("--sketch", metavar="FILE", help="a sketch saved by 'fastlr train' (--method learned)")
    p.add_argument("--n-iter", type=_n_iter, default="auto", metavar="N",
                   help="power iterations: 'auto' (default) is randomized_svd's (7 if k < 0.1 * min(shape), "
                        "else 4) for randomized and countsketch, 0 for learned")
    p.add_argument("--seed", type=_count, default=0, help="seed of the random sketch or starting point")
    p.add_argument("--plot", metavar="FILE", help="plot the singular values to FILE (.png, .pdf, .svg)")
    json_option(p)
    p.set_defaults(func=cmd_approx)
    add_pca_parser(sub, common, json_option, cmd_pca)
    return parser


def _configure(args, stack: ExitStack) -> None:
    if args.threads is not None:
        set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(limits=args.threads))
    if args.backend is not None:
        set_backend(args.backend)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with ExitStack() as stack:
            _configure(args, stack)
            return args.func(args)
    except (UserError, ValueError, TypeError, ImportError, OSError) as exc:
        if os.environ.get("FASTLR_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"fastlr: error: {message}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. a matrix or sketch too large for this machine: one line, no traceback
        if os.environ.get("FASTLR_DEBUG"):
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "a buffer is too large"
        print(f"fastlr: error: out of memory ({detail})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastlr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
