"""Workarounds kept in one place, each with its reason and when it can go."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["canonical_dtype"]


def _is_canonical(x) -> bool:
    return not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf" or not x.dtype.isnative \
        or x.dtype is np.dtype(x.dtype.type)


def _view(x):
    return x if _is_canonical(x) else x.view(x.dtype.type)


def canonical_dtype(X):
    """X (ndarray or CSR/CSC matrix) with NumPy's canonical dtype objects; a view, never a copy.

    Arrays that were pickled (on dask.distributed workers, joblib memmaps)
    carry a dtype object equal to, but not the same object as,
    ``np.dtype(np.float64)``; the compiled kernels' dtype check compares
    identity (``dtype().is``) and rejects them. Remove this once
    ``has_dtype`` in csrc/bindings/common.hpp compares with ``dtype().equal``.
    """
    if sp.issparse(X) and X.format in ("csr", "csc"):
        if all(_is_canonical(a) for a in (X.data, X.indices, X.indptr)):
            return X
        out = X.copy()
        out.data, out.indices, out.indptr = _view(X.data), _view(X.indices), _view(X.indptr)
        return out
    return _view(X)
