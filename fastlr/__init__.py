"""fastlr: fast low-rank matrix approximation.

CountSketch in one pass over dense or sparse matrices, the
Sarlos-Clarkson-Woodruff sketched SVD, learned sketches (Indyk, Vakilian,
Yuan, NeurIPS 2019) and gradient-descent SVD, on C++/OpenMP, Numba or NumPy
kernels.
"""

from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING

from ._backend import (
    BackendFallbackWarning,
    available_backends,
    backend_errors,
    current_backend,
    get_backend,
    set_backend,
    use_backend,
)
from ._threads import get_num_threads, set_num_threads, thread_limit
from .sketch import CountSketch, GaussianSketch, Sketch, StackedSketch, stack
from . import datasets
from .learn import LearnedSketch, LearnedSketchWarning, learn_sketch, load_sketch, sketch_error
from .gd import gd_svd
from .lowrank import ErrorEstimate, LowRank
from .randomized import randomized_svd
from .scw import scw
from .streaming import StreamingSVD
from . import datadriven
from .sketch import DenseSketch
from .heavy_rows import HeavyRowSketch
from .tolerance import svd_to_tolerance


if TYPE_CHECKING:
    from .estimators import TruncatedSVD
    from .estimators import PCA


def __getattr__(name):
    # fastlr.TruncatedSVD imports scikit-learn on first use only, so `import fastlr` stays light.
    if name == "TruncatedSVD":
        from .estimators import TruncatedSVD

        return TruncatedSVD
    if name == "PCA":  # fastlr.PCA, like TruncatedSVD: scikit-learn loads on first use
        from .estimators import PCA

        return PCA
    raise AttributeError(f"module 'fastlr' has no attribute {name!r}")


try:
    __version__ = _version("fastlr")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BackendFallbackWarning",
    "CountSketch",
    "DenseSketch",
    "ErrorEstimate",
    "GaussianSketch",
    "HeavyRowSketch",
    "LearnedSketch",
    "LearnedSketchWarning",
    "LowRank",
    "PCA",
    "Sketch",
    "StackedSketch",
    "StreamingSVD",
    "TruncatedSVD",
    "available_backends",
    "backend_errors",
    "current_backend",
    "datadriven",
    "datasets",
    "gd_svd",
    "get_backend",
    "get_num_threads",
    "learn_sketch",
    "load_sketch",
    "randomized_svd",
    "scw",
    "set_backend",
    "set_num_threads",
    "sketch_error",
    "stack",
    "svd_to_tolerance",
    "thread_limit",
    "use_backend",
    "__version__",
]
