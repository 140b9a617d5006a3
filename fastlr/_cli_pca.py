"""``fastlr pca``: principal components of one matrix (``fastlr.PCA``; sparse input stays sparse)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ._cli_io import UserError, atomic_output, npz_path, read_matrix

__all__ = ["add_pca_parser", "run_pca"]


def _components(text: str):
    """-n: an integer >= 1 (components) or a float in (0, 1) (fraction of the variance to keep)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or a fraction in (0, 1), got {text!r}") from None
    if value.is_integer() and value >= 1 and "." not in text:
        return int(value)
    if 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"expected a count >= 1 or a fraction in (0, 1), got {text!r}")


def run_pca(args, PCA) -> int:
    """The command, given ``fastlr.PCA`` (loaded by the caller: it loads scikit-learn)."""
    output = npz_path(args.output)
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UserError(f"{args.output}: the folder {folder} does not exist")
    X = read_matrix(args.matrix, mmap=False)
    if hasattr(X, "tocsr"):
        X = X.tocsr()
    if isinstance(args.n, int) and args.n > min(X.shape):
        raise UserError(f"-n {args.n}: larger than the smaller side of {args.matrix} (shape {X.shape[0]} x {X.shape[1]})")
    start = time.perf_counter()
    # fastlr's fast paths, not scikit-learn's "auto" (exact, slower on large X)
    pca = PCA(n_components=args.n, whiten=args.whiten, svd_solver=PCA.fast_solver(X, args.n), random_state=args.seed)
    try:
        pca.fit(X)
    except ValueError as exc:
        raise UserError(f"{args.matrix}: {exc}") from None
    seconds = time.perf_counter() - start
    with atomic_output(output) as f:
        np.savez(f, components=pca.components_, explained_variance=pca.explained_variance_,
                 explained_variance_ratio=pca.explained_variance_ratio_, singular_values=pca.singular_values_,
                 mean=pca.mean_)
    result = {
        "matrix": args.matrix,
        "shape": list(X.shape),
        "sparse": bool(hasattr(X, "tocsr")),
        "n_components": int(pca.n_components_),
        "explained_variance_ratio": float(np.sum(pca.explained_variance_ratio_)),
        "seconds": seconds,
        "output": output,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    elif not args.quiet:
        print(f"{result['n_components']} principal components of {args.matrix} ({X.shape[0]} x {X.shape[1]}"
              f"{', sparse: centred implicitly' if result['sparse'] else ''}) explain "
              f"{result['explained_variance_ratio']:.4g} of the variance, {seconds:.2f} s -> {output}")
    return 0


def add_pca_parser(sub, common, json_option, command) -> None:
    p = sub.add_parser("pca", help="principal components of one matrix (sparse input stays sparse)", parents=common)
    p.add_argument("matrix", metavar="MATRIX", help="a .npy, .npz, .mtx or .csv file (rows are samples)")
    p.add_argument("-n", type=_components, required=True, metavar="N",
                   help="components: a count (e.g. 10) or the fraction of the variance to keep (e.g. 0.9)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="where to write components, explained_variance(_ratio), singular_values, mean")
    p.add_argument("--whiten", action="store_true", help="scale the components to unit variance")
    p.add_argument("--seed", type=int, default=0, help="seed of the randomized solver")
    json_option(p)
    p.set_defaults(func=command)
