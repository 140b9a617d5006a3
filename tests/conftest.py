"""Shared fixtures: backend x dtype x layout."""

import numpy as np
import pytest

import fastlr
from helpers import ALL_BACKENDS, FAST_BACKENDS


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
