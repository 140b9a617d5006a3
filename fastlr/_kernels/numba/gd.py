"""Numba gd kernels (see csrc/include/fastlr/gd.hpp for the contract)."""

import numba as nb
import numpy as np
from numba import prange

from .._errors import BAD_INDEX, BAD_INDPTR, check_matching, raise_for
from ..reference.gd import OPTIMIZER_STATES, _check_step
from ._util import even_chunks, kernel, nnz_chunks, readonly as ro, threaded, useful_threads

__all__ = ["gd_masked_grad", "optimizer_step"]

_i8 = nb.int64
_f8 = nb.float64
_jit = dict(nogil=True, cache=True, parallel=True, fastmath=False)
_KINDS = {name: code for code, name in enumerate(OPTIMIZER_STATES)}  # sgd, momentum, nesterov, adam


@kernel(
    lambda T, I: _i8(
        ro(I[::1]), ro(I[::1]), ro(T[::1]), ro(T[:, ::1]), ro(T[:, ::1]), T, ro(_i8[::1]), T[:, ::1], T[:, :, ::1],
        _f8[::1],
    ),
    T="data",
    I="indices",
    **_jit,
)
def _masked_grad(indptr, indices, data, U, V, l2, bounds, GU, acc, partial):
    """Rows of chunk t write their rows of GU and accumulate GV into acc[t]."""
    n, k = V.shape
    nnz = indptr[len(indptr) - 1]
    parts = len(bounds) - 1
    err = np.zeros(parts, np.int64)
    for t in prange(parts):
        gv = acc[t]
        loss = 0.0
        for i in range(bounds[t], bounds[t + 1]):
            s, f = indptr[i], indptr[i + 1]
            if s > f or s < 0 or f > nnz:
                err[t] = BAD_INDPTR
                break
            for l in range(k):
                GU[i, l] = l2 * U[i, l]
            for p in range(s, f):
                j = indices[p]
                if j < 0 or j >= n:
                    err[t] = BAD_INDEX
                    break
                r = -data[p]
                for l in range(k):
                    r += U[i, l] * V[j, l]
                loss += np.float64(r) * np.float64(r)
                for l in range(k):
                    GU[i, l] += r * V[j, l]
                    gv[j, l] += r * U[i, l]
            if err[t]:
                break
        partial[t] = 0.5 * loss
    return err.max()


@kernel(
    lambda T, I: nb.void(T[::1], ro(T[::1]), T[:, ::1], _i8, T, T, T, T, T, T, T, T, ro(_i8[::1])),
    T="p",
    **_jit,
)
def _step(p, g, state, kind, lr, b1, b2, c1, c2, eps, step_size, inv_sqrt_c2, bounds):
    """c1 = 1 - b1 and c2 = 1 - b2, computed in the parameters' dtype by the caller."""
    for t in prange(len(bounds) - 1):
        b, e = bounds[t], bounds[t + 1]
        if kind == 0:
            for i in range(b, e):
                p[i] -= lr * g[i]
        elif kind == 1:
            for i in range(b, e):
                state[0, i] = b1 * state[0, i] + g[i]
                p[i] -= lr * state[0, i]
        elif kind == 2:
            for i in range(b, e):
                state[0, i] = b1 * state[0, i] + g[i]
                p[i] -= lr * (g[i] + b1 * state[0, i])
        else:
            for i in range(b, e):
                state[0, i] = b1 * state[0, i] + c1 * g[i]
                state[1, i] = b2 * state[1, i] + c2 * g[i] * g[i]
                p[i] -= step_size * state[0, i] / (np.sqrt(state[1, i]) * inv_sqrt_c2 + eps)


@threaded
def gd_masked_grad(indptr, indices, data, U, V, l2):
    """(grad_U, grad_V, loss) over the stored entries of CSR A (len(U) rows, len(V) columns)."""
    if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
        raise ValueError(f"U, V: expected 2-D arrays with equal column counts, got {U.shape} and {V.shape}")
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2: must be finite and >= 0, got {l2}")
    m, k = U.shape
    n = V.shape[0]
    check_matching("indptr", indptr, m + 1)
    check_matching("data", data, len(indices))
    if indptr[0] != 0 or indptr[-1] != len(indices):
        raise_for(BAD_INDPTR)
    # A chunk a thread: G_V depends on the thread count. Chunks fixed by the problem (sum_chunks) cost
    # 1.1-1.3% at one thread (1M x 500 at 500k nonzeros, k = 20; Zen 2), where the C++ kernel's cost
    # nothing measurable (gd.hpp).
    parts = useful_threads((len(data) + m) * max(k, 1) // 4)
    GU = np.empty((m, k), dtype=data.dtype)
    acc = np.zeros((parts, n, k), dtype=data.dtype)
    partial = np.zeros(parts, dtype=np.float64)
    err = _masked_grad(indptr, indices, data, U, V, data.dtype.type(l2), nnz_chunks(indptr, parts), GU, acc, partial)
    raise_for(err)
    GV = acc[0] if parts == 1 else acc.sum(axis=0)
    loss = float(partial.sum())
    if l2:
        GV += data.dtype.type(l2) * V
        loss += 0.5 * l2 * (float(np.sum(U.astype(np.float64) ** 2)) + float(np.sum(V.astype(np.float64) ** 2)))
    return GU, GV, loss


@threaded
def optimizer_step(param, grad, state, kind, hyper):
    """In-place fused update: kind 'sgd' | 'momentum' | 'nesterov' | 'adam', hyper = (lr, beta1, beta2, eps, step)."""
    lr, beta1, beta2, eps, step = _check_step(param, grad, state, kind, hyper)
    for name, a in (("param", param), ("grad", grad), ("state", state)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}: array must be C-contiguous")
    if not param.flags.writeable or not state.flags.writeable:
        raise ValueError("param, state: arrays must be writeable")
    size = param.size
    T = param.dtype.type
    step_size = inv_sqrt_c2 = 1.0
    if kind == "adam":
        step_size = lr / (1 - beta1**step)
        inv_sqrt_c2 = 1 / np.sqrt(1 - beta2**step)
    parts = useful_threads(size // 4)
    _step(
        param.reshape(-1),
        grad.reshape(-1),
        state.reshape(state.shape[0], size),
        _KINDS[kind],
        T(lr),
        T(beta1),
        T(beta2),
        T(1) - T(beta1),
        T(1) - T(beta2),
        T(eps),
        T(step_size),
        T(inv_sqrt_c2),
        even_chunks(size, parts),
    )
