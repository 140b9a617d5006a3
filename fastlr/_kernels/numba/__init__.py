"""The Numba backend: JIT-compiled kernels mirroring fastlr._core's names.

Importing this module compiles nothing: each kernel compiles one signature
(float32 or float64 values, int32 or int64 sparse indices, read-only inputs
that accept writeable arrays too) the first time it is called with it, and
caches it on disk (``cache=True``), so later processes load it instead.
"""

from . import countsketch, gd, products, row_norms
from .countsketch import *  # noqa: F401,F403
from .gd import *  # noqa: F401,F403
from .products import *  # noqa: F401,F403
from .row_norms import *  # noqa: F401,F403

__all__ = countsketch.__all__ + products.__all__ + gd.__all__ + row_norms.__all__
