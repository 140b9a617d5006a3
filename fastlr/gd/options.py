"""gd_svd's arguments: checked once, held in one ``Options`` record."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._validation import check_bool, check_choice, check_int

__all__ = ["INITS", "OPTIMIZERS", "PARAMETRIZATIONS", "Options", "check_options"]

#: The optimizers of :func:`fastlr.gd_svd`.
OPTIMIZERS = ("scaled", "gd", "momentum", "adam", "sgd")
PARAMETRIZATIONS = ("uv", "usv")
INITS = ("random", "sketch")


@dataclass
class Options:
    """gd_svd's checked arguments (``batch_size`` is filled in for "sgd" once A's size is known)."""

    k: int
    optimizer: str
    lr: float | None
    max_iter: int
    tol: float | None
    batch_size: int | None
    l2: float
    init: str
    parametrization: str
    ortho_penalty: float | None
    momentum: float
    nesterov: bool
    betas: tuple
    eps: float
    progress: bool
    callback: object


def check_float(value, name, *, minimum=0.0, strict=False, allow_none=False):
    """A finite real >= minimum (> minimum when ``strict``); None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value <= minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"{name}: must be finite and {bound}, got {value}")
    return value


def check_options(k, optimizer, lr, max_iter, tol, batch_size, l2, init, parametrization, ortho_penalty,
                  optimizer_options, progress, callback) -> Options:
    """Every argument of gd_svd except A, mask, random_state and backend, checked."""
    k = check_int(k, "k", minimum=1)
    parametrization = check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    if optimizer is None:
        optimizer = "scaled" if parametrization == "uv" else "adam"
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    if optimizer == "scaled" and parametrization == "usv":
        raise ValueError(
            "optimizer: 'scaled' (ScaledGD) works on the 'uv' parametrization; with parametrization='usv' "
            "choose 'gd', 'momentum', 'adam' or 'sgd'"
        )
    if ortho_penalty is not None and parametrization != "usv":
        raise ValueError("ortho_penalty: only used with parametrization='usv'")
    if optimizer_options is not None and not isinstance(optimizer_options, Mapping):
        raise TypeError(f"optimizer_options: expected a dict, got {type(optimizer_options).__name__}")
    options = dict(optimizer_options or {})
    unknown = set(options) - {"momentum", "nesterov", "betas", "eps"}
    if unknown:
        raise ValueError(f"optimizer_options: unknown keys {sorted(unknown)}; use momentum, nesterov, betas, eps")
    momentum = check_float(options.get("momentum", 0.9), "optimizer_options['momentum']")
    betas = tuple(options.get("betas", (0.9, 0.999)))
    if len(betas) != 2:
        raise ValueError(f"optimizer_options['betas']: expected (beta1, beta2), got {betas!r}")
    betas = tuple(check_float(b, "optimizer_options['betas']") for b in betas)
    if momentum >= 1 or max(betas) >= 1:
        raise ValueError("optimizer_options: momentum and betas must be < 1")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    return Options(
        k=k,
        optimizer=optimizer,
        lr=check_float(lr, "lr", strict=True, allow_none=True),
        max_iter=check_int(max_iter, "max_iter", minimum=1),
        tol=check_float(tol, "tol", allow_none=True),
        batch_size=None if batch_size is None else check_int(batch_size, "batch_size", minimum=1),
        l2=check_float(l2, "l2"),
        init=check_choice(init, "init", INITS),
        parametrization=parametrization,
        ortho_penalty=check_float(ortho_penalty, "ortho_penalty", allow_none=True),
        momentum=momentum,
        nesterov=bool(options.get("nesterov", True)),
        betas=betas,
        eps=check_float(options.get("eps", 1e-8), "optimizer_options['eps']", strict=True),
        progress=check_bool(progress, "progress"),
        callback=callback,
    )
