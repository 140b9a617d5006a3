"""The NumPy reference backend: the plainest correct code for every kernel.

Tests compare the compiled and Numba kernels against these functions.
"""

from .countsketch import *  # noqa: F401,F403
from .gd import *  # noqa: F401,F403
from .products import *  # noqa: F401,F403
