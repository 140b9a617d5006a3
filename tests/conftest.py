"""Shared fixtures: backend x dtype x layout."""

import os

# The dense kernel/BLAS choice follows the static table in every test (and in the command-line tests'
# subprocesses): a calibration would make the routes depend on this machine and on its load.
# tests/test_calibration.py turns it on, with a temporary cache directory.
os.environ["FASTLR_CALIBRATION"] = "off"

import numpy as np
import pytest

import fastlr
from fastlr._matrix import choice
from helpers import ALL_BACKENDS, FAST_BACKENDS


@pytest.fixture(autouse=True)
def _fresh_routes():
    """Each test starts without the dense routes earlier tests remembered (``InMemory._route``'s memo): a test
    that changes what the choice reads outside ``choice.route_key`` (its tables, a replaced ``use_kernel``)
    must not meet a route of before."""
    choice.routes.clear()


def require_backend(name):
    if name not in fastlr.available_backends():
        pytest.skip(f"backend {name} unavailable: {fastlr.backend_errors().get(name)}")
    return name


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return require_backend(request.param)


@pytest.fixture(params=FAST_BACKENDS)
def fast_backend(request):
    """A backend that is tested *against* the reference."""
    return require_backend(request.param)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=["C", "F", "view"])
def layout(request):
    return request.param


@pytest.fixture(params=[0, 1, 2], ids=["baseline", "v3", "v4"])
def isa_level(request):
    """Caps every compiled kernel at ISA level 0 (baseline x86-64), 1 (x86-64-v3) or 2 (x86-64-v4) for the
    test (``_core._cap_isa``; a level above the CPU's runs its best) and yields the level of the
    CountSketch and gd kernels' variant that then runs (``_core._kernel_isa``; 0 in builds without
    dispatch, which compile one variant)."""
    require_backend("cpp")
    from fastlr import _core

    previous = _core._cap_isa(request.param)
    try:
        yield _core._kernel_isa()
    finally:
        _core._cap_isa(previous)
