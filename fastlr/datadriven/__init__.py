"""Data-driven sketches built from training matrices in seconds, with little or no gradient training.

Learned sketches (``fastlr.learn_sketch``) keep the random positions of a
CountSketch and train its values by gradient descent. This module chooses the
*positions* (and starting values) from the data, or builds a dense sketch from
it directly:

* :func:`inner_product_sketch` - Li, Lin, Liu, Vakilian and Woodruff (ICLR 2023),
  Algorithm 3: m rows sampled by ridge leverage scores become bucket centres,
  every other row goes to the centre it is most parallel to, and each bucket's
  values are the top left singular vector of its rows; the random CountSketch
  (with a warning) on text-like matrices, and from a single matrix unless,
  built from either half of its columns, it beats random ones on the other half
  by a margin and spreads the matrix over 2 or more buckets' worth of energy (it
  can still over-fit that one matrix);
* :func:`greedy_positions` - the same paper's Algorithm 2: move one column of a
  CountSketch at a time to the row (and sign) that lowers the training loss most,
  within a time or column budget;
* :func:`one_shot_sketch` (1Shot1Vec) and :func:`few_shot_sketch` (FewShotSGD) -
  Indyk, Wagner and Woodruff (NeurIPS 2021): random positions, values from the
  top left singular vectors of the buckets of one (or a few) training matrices,
  optionally refined by a few gradient steps; by default guarded (tempered
  magnitudes, kept only when they beat the random CountSketch, and the mean of
  16 others by twice their spread, on the given matrices; never on text-like matrices, where the
  random CountSketch itself is returned and no steps are taken),
  ``values="paper"`` for the paper's rule, which can be worse than random;
* :func:`subspace_sketch` - the dense data-driven sketch (the simple version of
  Liu et al., tensor-based sketching of data streams, 2022): the top-m left
  singular vectors of the training matrices side by side, a :class:`DenseSketch`
  (guarded as inner_product_sketch: the random CountSketch on text-like matrices);
  from one matrix, the smoothed matrix's top m - 2 on two random CountSketch rows;
* :func:`hybrid_sketch` - one-shot: the dense top singular vectors (of the
  matrix smoothed along its rows, when they are smooth: images, spectral bands)
  stacked on inner-product positions with +-1 values (the two parts generalize
  from a single training matrix better together than apart); the random
  CountSketch on text-like matrices;
* :func:`refine_values` - a few Adam steps on the values of a given CountSketch
  (learn_sketch's loss and exact gradient, starting from the given values).

Every function returns an ordinary fastlr sketch (``CountSketch``,
``StackedSketch`` or ``DenseSketch``), usable in ``fastlr.scw``,
``fastlr.sketch_error`` and everywhere else a sketch is. The builders set its
``reference`` to their random ``CountSketch(m, n, seed)`` (unless they return
that sketch itself), and ``fastlr.scw`` returns the better of the two results
on each matrix (``guard=True``): never worse than that random sketch;
``refine_values`` and ``greedy_positions`` keep the given sketch's reference. On term-document
counts the builders (``one_shot_sketch``, ``few_shot_sketch``,
``inner_product_sketch``, ``subspace_sketch``, ``hybrid_sketch``) wrap what
they return (there the random CountSketch) in ``fastlr.HeavyRowSketch``, each
matrix's heaviest rows in buckets of their own when it is applied:
``heavy_rows="auto"``, ``fastlr.learn_sketch``'s option and rule (0.18 of the
plain sketch's held-out Err on average on bench/guard_audit.py's text families;
``heavy_rows=False``: the plain sketch).

Conventions: each training matrix is scaled to sigma_1 = 1 first (as the Err
metric does), so no matrix dominates because of its scale; "the training
matrices side by side" is the n x (N d) matrix ``C = [A_1 ... A_N]``, whose row
Gram matrix ``C C^T = sum_t A_t A_t^T`` does not depend on the order of any
matrix's columns (text documents, for example, do not correspond across
matrices, while an average of the matrices would mix unrelated columns).
Small dense work is float64; float32 inputs stay float32 in the products.
"""

from ..sketch import DenseSketch
from .fewshot import few_shot_sketch, one_shot_sketch, refine_values
from .positions import (
    greedy_positions,
    inner_product_sketch,
    ridge_leverage_scores,
    sampling_sketch,
)
from .subspace import hybrid_sketch, subspace_sketch

__all__ = [
    "DenseSketch",
    "few_shot_sketch",
    "greedy_positions",
    "hybrid_sketch",
    "inner_product_sketch",
    "one_shot_sketch",
    "refine_values",
    "ridge_leverage_scores",
    "sampling_sketch",
    "subspace_sketch",
]
