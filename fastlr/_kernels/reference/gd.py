"""NumPy reference gd kernels (see csrc/include/fastlr/gd.hpp for the contract)."""

import numpy as np

from .._errors import check_matching
from .countsketch import _expand

__all__ = ["gd_masked_grad", "optimizer_step"]

#: Optimizer kinds of ``optimizer_step`` and the state buffers each keeps.
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}


def _check_factors(U, V, dtype):
    if U.ndim != 2 or V.ndim != 2:
        raise ValueError("U, V: expected 2-D arrays")
    if V.shape[1] != U.shape[1]:
        raise ValueError(f"V: expected {U.shape[1]} columns, got {V.shape[1]}")
    for name, X in (("U", U), ("V", V)):
        if X.dtype != dtype:
            raise ValueError(f"{name}: expected dtype {dtype}, got {X.dtype}")


def gd_masked_grad(indptr, indices, data, U, V, l2):
    """Gradients and value of f = 1/2 sum_stored (u_i . v_j - a_ij)^2 + l2/2 (|U|^2 + |V|^2).

    A is CSR with ``len(U)`` rows and ``len(V)`` columns; every stored entry is
    one observation. Returns ``(grad_U, grad_V, f)`` with f a Python float.
    """
    _check_factors(U, V, data.dtype)
    check_matching("data", data, len(indices))
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2: must be finite and >= 0, got {l2}")
    m, n = U.shape[0], V.shape[0]
    rows = _expand(indptr, indices, m, n)
    r = np.einsum("pk,pk->p", U[rows], V[indices]) - data
    GU = l2 * U
    GV = l2 * V
    np.add.at(GU, rows, r[:, None] * V[indices])
    np.add.at(GV, indices, r[:, None] * U[rows])
    r64 = r.astype(np.float64)
    loss = 0.5 * float(r64 @ r64)
    if l2:
        loss += 0.5 * l2 * (float(np.sum(U.astype(np.float64) ** 2)) + float(np.sum(V.astype(np.float64) ** 2)))
    return GU.astype(data.dtype, copy=False), GV.astype(data.dtype, copy=False), loss


def _check_step(param, grad, state, kind, hyper):
    if kind not in OPTIMIZER_STATES:
        raise ValueError(f"kind: unknown optimizer {kind!r}; choose sgd, momentum, nesterov or adam")
    if len(hyper) != 5:
        raise ValueError("hyper: expected (lr, beta1, beta2, eps, step)")
    if grad.shape != param.shape or grad.dtype != param.dtype:
        raise ValueError("grad: expected the shape and dtype of param")
    expected = (OPTIMIZER_STATES[kind],) + param.shape
    if state.shape != expected or state.dtype != param.dtype:
        raise ValueError(f"state: expected shape {expected} and the dtype of param for optimizer {kind}")
    lr, beta1, beta2, eps, step = (float(h) for h in hyper)
    if not np.isfinite(lr) or lr < 0:
        raise ValueError("lr: must be finite and >= 0")
    if kind == "adam" and not (step >= 1 and 0 <= beta1 < 1 and 0 <= beta2 < 1 and eps > 0):
        raise ValueError("hyper: Adam needs step >= 1, 0 <= beta1, beta2 < 1 and eps > 0")
    return lr, beta1, beta2, eps, step


def optimizer_step(param, grad, state, kind, hyper):
    """One in-place update of ``param`` and ``state`` (shape ``(n_state, *param.shape)``).

    ``hyper = (lr, beta1, beta2, eps, step)``; beta1 is the momentum coefficient:

    - ``sgd``: p -= lr g
    - ``momentum``: b = beta1 b + g; p -= lr b (heavy ball, as PyTorch's SGD)
    - ``nesterov``: b = beta1 b + g; p -= lr (g + beta1 b) (PyTorch's nesterov=True)
    - ``adam``: m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
      p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps), t = step
    """
    lr, beta1, beta2, eps, step = _check_step(param, grad, state, kind, hyper)
    dtype = param.dtype.type
    if kind == "sgd":
        param -= dtype(lr) * grad
    elif kind in ("momentum", "nesterov"):
        buf = state[0]
        buf *= dtype(beta1)
        buf += grad
        param -= dtype(lr) * (buf if kind == "momentum" else grad + dtype(beta1) * buf)
    else:
        m1, m2 = state[0], state[1]
        m1 *= dtype(beta1)
        m1 += (dtype(1) - dtype(beta1)) * grad
        m2 *= dtype(beta2)
        m2 += (dtype(1) - dtype(beta2)) * grad * grad
        step_size = dtype(lr / (1 - beta1**step))
        inv_sqrt_c2 = dtype(1 / np.sqrt(1 - beta2**step))
        param -= step_size * m1 / (np.sqrt(m2) * inv_sqrt_c2 + dtype(eps))
