"""Gradient-descent SVD: factor A ~ U V^T by first-order optimization, then polish into an SVD.

Useful where a direct SVD is awkward: matrices with missing entries (matrix
completion), sparse data fitted only on its nonzeros, or when a warm start is
at hand. Each full-batch iteration makes ONE pass over A (``A V`` and
``A^T U`` together, through ``fastlr._matrix.InMemory``) or over its observed
entries; every other step works on the small factors.

Modules: ``svd`` (the public :func:`gd_svd`), ``options`` (argument checks),
``problems`` (the data term: all entries or the observed ones), ``models``
(the UV and USV parametrizations, the start, the final SVD), ``optim`` (the
optimizer state around the ``optimizer_step`` kernel, step-size control) and
``loop`` (the iteration and its stopping rule).
"""

from .loop import DivergenceError, GDHistory
from .svd import OPTIMIZERS, gd_svd

__all__ = ["OPTIMIZERS", "DivergenceError", "GDHistory", "gd_svd"]
