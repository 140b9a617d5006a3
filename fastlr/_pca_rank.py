"""Minka's choice of the PCA dimension (``PCA(n_components="mle")``).

T. P. Minka, "Automatic choice of dimensionality for PCA", NIPS 2000: the Laplace
approximation of the evidence p(X | k) of probabilistic PCA with k components,

    log p(X | k) ~ log p(U) - N/2 sum_(i <= k) log l_i - N (d - k) / 2 log v
                   + (m + k) / 2 log(2 pi) - 1/2 log |A_Z| - k / 2 log N,

l the covariance eigenvalues (descending), v the mean of the d - k discarded ones,
m = d k - k (k + 1) / 2 the dimension of the Stiefel manifold, p(U) its uniform prior
``2^-k prod_(i <= k) Gamma((d - i + 1) / 2) pi^(-(d - i + 1) / 2)``, and
``|A_Z| = prod_(i <= k, j > i) N (l_i - l_j) (1 / l^_j - 1 / l^_i)`` with l^_j = l_j for
j <= k and v beyond. The rank is the k in [1, d - 1] with the largest evidence.

The pair sum of |A_Z| is updated from rank k to k + 1 in O(d), so all ranks cost O(d^2)
(a direct sum is O(d^3)). The absolute constants of scikit-learn's version are kept
(eigenvalues below 1e-15 are not tested as the last kept one; v is at least 1e-15), so a
spectrum gives the same rank with either estimator.
"""

from __future__ import annotations

from math import lgamma, log, pi

import numpy as np

__all__ = ["minka_rank"]

_TINY = 1e-15  # scikit-learn's: an eigenvalue below it is never the last one kept


def minka_rank(spectrum, n_samples: int) -> int:
    """The number of components Minka's evidence picks for descending covariance eigenvalues
    ``spectrum`` (length d) from ``n_samples`` samples: in [1, d - 1], or 0 when d < 2 or no
    rank can be assessed."""
    scores = evidence(spectrum, n_samples)
    return int(np.argmax(scores)) if scores.size and np.isfinite(scores).any() else 0


def evidence(spectrum, n_samples: int) -> np.ndarray:
    """log p(X | k) for k = 0 .. d - 1 (entry 0 and untestable ranks: -inf)."""
    lam = np.asarray(spectrum, dtype=np.float64)
    d, N = lam.size, float(n_samples)
    out = np.full(d, -np.inf)
    if d < 2:
        return out
    tail_sums = np.cumsum(lam[::-1])[::-1]  # sum_(j >= k) l_j
    log_prior = log_kept = 0.0
    top_pairs = 0.0  # sum over kept pairs i < j < k of log((l_i - l_j)(1/l_j - 1/l_i))
    cross = 0.0  # sum over i < k <= j of log(l_i - l_j)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(1, d):
            new = lam[k - 1]  # the component added at rank k
            a = d - k + 1
            log_prior += -log(2.0) + lgamma(a / 2.0) - a / 2.0 * log(pi)
            log_kept += log(new) if new > 0 else -np.inf
            kept = lam[:k - 1]
            top_pairs += float(np.sum(np.log(kept - new) + np.log(1.0 / new - 1.0 / kept)))
            # pairs (i, k-1) leave the cross sum, pairs (k-1, j >= k) join it
            cross += float(np.sum(np.log(new - lam[k:]))) - float(np.sum(np.log(kept - new)))
            if new < _TINY:
                continue
            v = max(_TINY, tail_sums[k] / (d - k))
            kept_all = lam[:k]
            log_az = (top_pairs + cross + (d - k) * float(np.sum(np.log(1.0 / v - 1.0 / kept_all)))
                      + (k * (d - 1) - k * (k - 1) / 2.0) * log(N))  # one log N per pair i < k, j > i
            m = d * k - k * (k + 1) / 2.0
            score = (log_prior - N / 2.0 * log_kept - N * (d - k) / 2.0 * log(v)
                     + (m + k) / 2.0 * log(2.0 * pi) - log_az / 2.0 - k / 2.0 * log(N))
            out[k] = score if np.isfinite(score) else -np.inf  # ties make |A_Z| = 0: not a rank to pick
    return out
