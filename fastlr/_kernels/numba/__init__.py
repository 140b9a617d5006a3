"""The Numba backend: JIT-compiled kernels mirroring fastlr._core's names.

Kernels are compiled eagerly for float32/float64 (and int32/int64 sparse
indices) and cached on disk, so the first import after installation takes
a few seconds and later imports are fast.
"""

from . import countsketch, gd, products
from .countsketch import *  # noqa: F401,F403
from .gd import *  # noqa: F401,F403
from .products import *  # noqa: F401,F403

__all__ = countsketch.__all__ + products.__all__ + gd.__all__
