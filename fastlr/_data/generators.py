"""Seeded generators of matrix distributions (no network): video, hyperspectral, text, low rank.

Public through :mod:`fastlr.datasets`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_int

__all__ = ["frame_to_matrix", "hyperspectral", "lowrank", "text", "video"]


def _check_real(value, name, *, low=None, high=None):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}") from None
    if not np.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: must be finite and {bounds}, got {value}")
    return value


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: must be float32 or float64, got {dtype}")
    return dtype


def _smooth_field(rng, shape, beta: float) -> np.ndarray:
    """A random field with a 1/f^beta power spectrum (natural-image-like), scaled to [0, 1]."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.min()
    top = field.max()
    return field / top if top > 0 else field


def frame_to_matrix(frame) -> np.ndarray:
    """An H x W x C image as the (C W) x H matrix ``[X_1^T; ...; X_C^T]`` (the paper's layout).

    A grayscale H x W image becomes its W x H transpose.
    """
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return np.ascontiguousarray(frame.T)
    if frame.ndim != 3:
        raise ValueError(f"frame: expected an H x W or H x W x C image, got shape {frame.shape}")
    return np.ascontiguousarray(np.concatenate([frame[..., c].T for c in range(frame.shape[2])], axis=0))


def video(n_frames: int = 40, *, height: int = 90, width: int = 160, n_objects: int = 2, noise: float = 0.01,
          seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
    """Frames of a moving scene with a static background, as 3W x H matrices.

    The background is a fixed natural-image-like texture (1/f^2 spectrum) with
    a colour gradient and a few flat blocks; ``n_objects`` textured ellipses
    move across it at constant speeds (bouncing off the edges); the lighting
    flickers slowly; pixel noise of standard deviation ``noise`` is added and
    values are clipped to [0, 1].

    Parameters
    ----------
    n_frames : int, default 40
        Number of frames (matrices).
    height, width : int
        Frame size H x W; each matrix is (3 W) x H.
    n_objects : int, default 2
    noise : float, default 0.01
    seed : int, default 0
    dtype : float32 or float64

    Returns
    -------
    list of ndarray, each of shape (3 * width, height)

    Examples
    --------
    >>> frames = video(4, height=18, width=32)
    >>> frames[0].shape
    (96, 18)
    """
    n_frames = check_int(n_frames, "n_frames", minimum=1)
    height = check_int(height, "height", minimum=2)
    width = check_int(width, "width", minimum=2)
    n_objects = check_int(n_objects, "n_objects", minimum=0)
    noise = _check_real(noise, "noise", low=0.0)
    seed = check_int(seed, "seed", minimum=0)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]

    texture = _smooth_field(rng, (height, width), beta=1.5)
    palette = rng.uniform(0.2, 0.8, size=(2, 3))
    background = (1 - yy[..., None]) * palette[0] + yy[..., None] * palette[1]  # vertical gradient
    background = 0.6 * background + 0.4 * texture[..., None] * rng.uniform(0.5, 1.0, 3)
    for _ in range(4):  # flat blocks: buildings, furniture
        y0, x0 = rng.uniform(0.3, 0.9), rng.uniform(0, 0.8)
        h, w = rng.uniform(0.1, 0.4), rng.uniform(0.05, 0.2)
        block = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        background[block] = rng.uniform(0.1, 0.9, 3)

    objects = []
    for _ in range(n_objects):
        objects.append(dict(
            pos=rng.uniform(0.2, 0.8, 2), vel=rng.uniform(-0.01, 0.01, 2), radius=rng.uniform(0.03, 0.1, 2),
            color=rng.uniform(0, 1, 3), texture=_smooth_field(rng, (height, width), beta=3.0),
        ))
    frames = []
    for t in range(n_frames):
        frame = background * (1.0 + 0.05 * np.sin(2 * np.pi * t / max(8, n_frames)))
        for obj in objects:
            pos = obj["pos"] + t * obj["vel"]
            pos = 1 - np.abs(1 - np.mod(pos, 2))  # bounce inside [0, 1]
            inside = ((yy - pos[0]) / obj["radius"][0]) ** 2 + ((xx - pos[1]) / obj["radius"][1]) ** 2 <= 1
            frame[inside] = obj["color"] * (0.6 + 0.4 * obj["texture"][inside, None])
        if noise:
            frame = frame + noise * rng.standard_normal(frame.shape)
        frames.append(frame_to_matrix(np.clip(frame, 0.0, 1.0)).astype(dtype))
    return frames


def hyperspectral(n: int = 48, *, height: int = 256, width: int = 96, bands: int = 8, n_materials: int = 6,
                  noise: float = 0.01, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
    """Band images of hyperspectral scenes, as height x width matrices.

    Every scene mixes ``n_materials`` materials with smooth reflectance
    spectra (shared by all scenes) over a common backdrop layout plus a few
    scene-specific objects; a band image is the abundance-weighted sum of the
    materials' reflectances at that band, plus noise. Matrix i is band
    ``i % bands`` of scene ``i // bands``.

    Parameters
    ----------
    n : int, default 48
        Number of matrices.
    height, width : int
        Image size; each matrix is height x width.
    bands : int, default 8
        Bands per scene.
    n_materials : int, default 6
    noise : float, default 0.01
    seed : int, default 0
    dtype : float32 or float64

    Returns
    -------
    list of ndarray, each of shape (height, width)
    """
    n = check_int(n, "n", minimum=1)
    height = check_int(height, "height", minimum=2)
    width = check_int(width, "width", minimum=2)
    bands = check_int(bands, "bands", minimum=1)
    n_materials = check_int(n_materials, "n_materials", minimum=1)
    noise = _check_real(noise, "noise", low=0.0)
    seed = check_int(seed, "seed", minimum=0)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    wavelength = np.linspace(0, 1, bands)
    centers = rng.uniform(0, 1, (n_materials, 3))
    spectra = np.stack([
        sum(np.exp(-((wavelength - c) ** 2) / (2 * rng.uniform(0.05, 0.3) ** 2)) for c in cs) for cs in centers
    ])  # n_materials x bands, smooth and positive
    spectra /= spectra.max(axis=1, keepdims=True)
    backdrop = np.stack([_smooth_field(rng, (height, width), beta=2.5) for _ in range(n_materials)])
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]

    out = []
    for scene in range((n + bands - 1) // bands):
        abundance = backdrop + 0.1 * np.stack(
            [_smooth_field(rng, (height, width), beta=2.0) for _ in range(n_materials)]
        )
        for _ in range(3):  # salient objects of one material, near the centre
            cy, cx = rng.uniform(0.25, 0.75, 2)
            ry, rx = rng.uniform(0.03, 0.1, 2)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            material = rng.integers(n_materials)
            abundance[:, inside] *= 0.1
            abundance[material, inside] += 2.0
        abundance = abundance ** 2
        abundance /= abundance.sum(axis=0, keepdims=True)
        for band in range(bands):
            if len(out) == n:
                break
            image = np.tensordot(spectra[:, band], abundance, axes=1)
            if noise:
                image = image + noise * rng.standard_normal(image.shape)
            out.append(image.astype(dtype))
    return out


def text(n: int = 40, *, n_terms: int = 2000, n_docs: int = 100, n_topics: int = 20, topics_per_matrix: int = 2,
         topics=None, doc_length: int = 150, zipf: float = 1.1, seed: int = 0,
         dtype=np.float64) -> list[sp.csr_array]:
    """Sparse term-document count matrices (terms x documents) with Zipfian word frequencies.

    Word frequencies follow a Zipf law of exponent ``zipf`` over the
    vocabulary; each of ``n_topics`` topics boosts its own Zipf-distributed
    word list. Every matrix draws ``topics_per_matrix`` topics (like one
    TechTC-300 category pair in the paper), and each document mixes the
    background vocabulary with one of them.

    Parameters
    ----------
    n : int, default 40
        Number of matrices.
    n_terms, n_docs : int
        Matrix shape (n_terms rows, n_docs columns).
    n_topics, topics_per_matrix : int
    topics : sequence of int, optional
        The topics (indices in ``[0, n_topics)``, distinct, at least
        ``topics_per_matrix`` of them) the matrices draw theirs from; default
        all. The vocabulary, background and topic word lists depend on
        ``seed``, ``n_terms``, ``n_topics`` and ``zipf`` only, so two calls that
        differ only in ``topics`` share them: disjoint ``topics`` give a
        *topic-shifted* pair of sets (train on one, test on the other), the
        distribution shift of new categories in the paper's TechTC-300 data.
        With ``topics`` given, the matrices come from a generator seeded by
        ``(seed, sorted topics)``, so such a pair never repeats documents;
        without it the output is that of earlier fastlr versions.
    doc_length : int
        Mean words per document (Poisson).
    zipf : float, default 1.1
    seed : int, default 0
    dtype : float32 or float64

    Returns
    -------
    list of scipy.sparse.csr_array, each of shape (n_terms, n_docs)

    Examples
    --------
    Training and test sets about different topics (same vocabulary):

    >>> train = text(6, n_terms=300, n_docs=20, topics=range(0, 10), seed=1)
    >>> test = text(2, n_terms=300, n_docs=20, topics=range(10, 20), seed=1)
    >>> train[0].shape == test[0].shape
    True
    """
    n = check_int(n, "n", minimum=1)
    n_terms = check_int(n_terms, "n_terms", minimum=2)
    n_docs = check_int(n_docs, "n_docs", minimum=1)
    n_topics = check_int(n_topics, "n_topics", minimum=1)
    topics_per_matrix = check_int(topics_per_matrix, "topics_per_matrix", minimum=1)
    if topics_per_matrix > n_topics:
        raise ValueError(f"topics_per_matrix: must be <= n_topics={n_topics}, got {topics_per_matrix}")
    pool = None if topics is None else _topic_pool(topics, n_topics, topics_per_matrix)
    doc_length = check_int(doc_length, "doc_length", minimum=1)
    zipf = _check_real(zipf, "zipf", low=0.0)
    seed = check_int(seed, "seed", minimum=0)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_terms + 1, dtype=np.float64)
    background = ranks**-zipf
    background /= background.sum()
    topic_words = []
    for _ in range(n_topics):
        words = rng.permutation(n_terms)[: max(2, n_terms // 10)]  # the topic's vocabulary, in its own order
        weights = np.arange(1, len(words) + 1, dtype=np.float64) ** -zipf
        p = np.zeros(n_terms)
        p[words] = weights / weights.sum()
        topic_words.append(p)
    if pool is not None:  # a stream of its own: sets with other topics share no document draws
        rng = np.random.default_rng([seed, *pool.tolist()])
    out = []
    for _ in range(n):
        chosen = rng.choice(n_topics, size=topics_per_matrix, replace=False) if pool is None else \
            rng.choice(pool, size=topics_per_matrix, replace=False)
        counts = np.zeros((n_terms, n_docs))
        for j in range(n_docs):
            share = rng.uniform(0.3, 0.7)
            p = (1 - share) * background + share * topic_words[chosen[rng.integers(topics_per_matrix)]]
            counts[:, j] = rng.multinomial(max(1, rng.poisson(doc_length)), p / p.sum())
        out.append(sp.csr_array(counts.astype(dtype)))
    return out


def _topic_pool(topics, n_topics: int, per_matrix: int) -> np.ndarray:
    """``topics`` checked: distinct integers in [0, n_topics), at least ``per_matrix`` of them, sorted."""
    if isinstance(topics, (str, bytes)) or np.ndim(topics) != 1:
        raise TypeError(f"topics: expected a sequence of topic indices, got {topics!r}")
    pool = [check_int(t, "topics", minimum=0, maximum=n_topics - 1) for t in topics]
    if len(set(pool)) != len(pool):
        raise ValueError(f"topics: has repeated topics: {list(topics)!r}")
    if len(pool) < per_matrix:
        raise ValueError(f"topics: needs at least topics_per_matrix={per_matrix} topics, got {len(pool)}")
    return np.array(sorted(pool), dtype=np.int64)


def lowrank(n: int = 40, *, shape=(500, 60), rank: int = 10, spectrum=None, noise: float = 0.05,
            drift: float = 0.1, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
    """Low-rank-plus-noise matrices whose column spaces are close to one shared subspace.

    ``A_j = U_j diag(spectrum) V_j^T + noise * G_j / sqrt(max(shape))`` with
    ``U_j`` an orthonormal basis of ``U_0 + drift * E_j`` (U_0 shared), V_j a
    random orthonormal basis per matrix and G_j, E_j standard Gaussian.

    Parameters
    ----------
    n : int, default 40
        Number of matrices.
    shape : (int, int), default (500, 60)
    rank : int, default 10
    spectrum : array_like of ``rank`` positive floats, optional
        Singular values of the low-rank part (default ``0.8 ** arange(rank)``).
    noise : float, default 0.05
        Noise level relative to sigma_1 of the low-rank part.
    drift : float, default 0.1
        How far each matrix's column space strays from the shared one.
    seed : int, default 0
    dtype : float32 or float64

    Returns
    -------
    list of ndarray
    """
    n = check_int(n, "n", minimum=1)
    try:
        rows, cols = (check_int(x, "shape", minimum=1) for x in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape: expected two positive integers, got {shape!r}") from None
    rank = check_int(rank, "rank", minimum=1)
    if rank > min(rows, cols):
        raise ValueError(f"rank: must be <= min(shape) = {min(rows, cols)}, got {rank}")
    if spectrum is None:
        spectrum = 0.8 ** np.arange(rank)
    spectrum = np.asarray(spectrum, dtype=np.float64)
    if spectrum.shape != (rank,) or not np.isfinite(spectrum).all() or (spectrum < 0).any():
        raise ValueError(f"spectrum: expected {rank} finite non-negative values, got {spectrum!r}")
    noise = _check_real(noise, "noise", low=0.0)
    drift = _check_real(drift, "drift", low=0.0)
    seed = check_int(seed, "seed", minimum=0)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    U0 = rng.standard_normal((rows, rank))
    scale = spectrum.max(initial=0.0) or 1.0
    out = []
    for _ in range(n):
        U = np.linalg.qr(U0 + drift * rng.standard_normal((rows, rank)))[0]
        V = np.linalg.qr(rng.standard_normal((cols, rank)))[0]
        A = (U * spectrum) @ V.T + noise * scale * rng.standard_normal((rows, cols)) / np.sqrt(max(rows, cols))
        out.append(A.astype(dtype))
    return out
