"""The NumPy reference backend: the plainest correct code for every kernel.

Tests compare the compiled and Numba kernels against these functions.
"""

from . import countsketch, gd, products, row_norms
from .countsketch import *  # noqa: F401,F403
from .gd import *  # noqa: F401,F403
from .products import *  # noqa: F401,F403
from .row_norms import *  # noqa: F401,F403

__all__ = countsketch.__all__ + products.__all__ + gd.__all__ + row_norms.__all__
