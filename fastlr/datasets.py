"""Matrix data: deterministic generators of matrix distributions, and loaders.

Generators (seeded, no network) imitate the three data families of Indyk,
Vakilian and Yuan (NeurIPS 2019) plus a plain low-rank model:

* :func:`video` - frames of a moving scene over a static background, each
  H x W x 3 frame stacked as the 3W x H matrix ``[R^T; G^T; B^T]``;
* :func:`hyperspectral` - band images of hyperspectral scenes (a few
  materials with smooth spectra mixed over the image);
* :func:`text` - sparse term-document count matrices with Zipfian word
  frequencies and a few topics each;
* :func:`lowrank` - low rank plus noise with a chosen spectrum and a column
  space shared (up to a drift) across the matrices.

Matrices from one call share structure, which is what a learned sketch
exploits; train on some and test on the others.

Loaders: :func:`load_matrix` reads one .npy / .npz (dense or scipy.sparse) /
.mtx file, :func:`load_folder` a folder of them or of image frames. :func:`normalize` scales a
matrix to sigma_1 = 1 as the paper does.
"""

from __future__ import annotations

import os
import pathlib
import zipfile
import zlib

import numpy as np
import scipy.io
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from ._validation import as_matrix, check_int, check_sparse, is_sparse

__all__ = [
    "frame_to_matrix",
    "hyperspectral",
    "load_folder",
    "load_matrix",
    "lowrank",
    "normalize",
    "spectral_norm",
    "text",
    "video",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
MATRIX_SUFFIXES = (".npy", ".npz", ".mtx")


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
         doc_length: int = 150, zipf: float = 1.1, seed: int = 0, dtype=np.float64) -> list[sp.csr_array]:
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
    doc_length : int
        Mean words per document (Poisson).
    zipf : float, default 1.1
    seed : int, default 0
    dtype : float32 or float64

    Returns
    -------
    list of scipy.sparse.csr_array, each of shape (n_terms, n_docs)
    """
    n = check_int(n, "n", minimum=1)
    n_terms = check_int(n_terms, "n_terms", minimum=2)
    n_docs = check_int(n_docs, "n_docs", minimum=1)
    n_topics = check_int(n_topics, "n_topics", minimum=1)
    topics_per_matrix = check_int(topics_per_matrix, "topics_per_matrix", minimum=1)
    if topics_per_matrix > n_topics:
        raise ValueError(f"topics_per_matrix: must be <= n_topics={n_topics}, got {topics_per_matrix}")
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
    out = []
    for _ in range(n):
        topics = rng.choice(n_topics, size=topics_per_matrix, replace=False)
        counts = np.zeros((n_terms, n_docs))
        for j in range(n_docs):
            share = rng.uniform(0.3, 0.7)
            p = (1 - share) * background + share * topic_words[topics[rng.integers(topics_per_matrix)]]
            counts[:, j] = rng.multinomial(max(1, rng.poisson(doc_length)), p / p.sum())
        out.append(sp.csr_array(counts.astype(dtype)))
    return out


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


# --------------------------------------------------------------------------- scaling


def spectral_norm(A) -> float:
    """sigma_1(A), the largest singular value (dense or sparse), in float64.

    A dense SVD for small matrices, Lanczos (``scipy.sparse.linalg.svds``,
    deterministic start) otherwise; both accurate to machine precision.
    """
    A = as_matrix(A)
    finite = np.isfinite(A.data if is_sparse(A) else A).all()
    if not finite:
        raise ValueError("A: contains NaN or infinity")
    if A.size == 0:
        return 0.0
    if min(A.shape) < 3 or A.shape[0] * A.shape[1] <= 40_000:
        dense = A.toarray() if is_sparse(A) else A
        return float(scipy.linalg.svdvals(np.asarray(dense, dtype=np.float64))[0])
    if (abs(A).max() if is_sparse(A) else np.abs(A).max()) == 0:
        return 0.0
    v0 = np.ones(min(A.shape), dtype=A.dtype)
    return float(scipy.sparse.linalg.svds(A, k=1, v0=v0, return_singular_vectors=False)[0])


def normalize(A):
    """``A / sigma_1(A)``: the matrix scaled to spectral norm 1 (a new array; sparse stays sparse).

    Raises
    ------
    ValueError
        If A is all zeros or holds NaN/infinity.
    """
    A = as_matrix(A)
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    s1 = spectral_norm(A)
    if s1 == 0.0:
        raise ValueError("A: is all zeros; it cannot be scaled to sigma_1 = 1")
    return A / A.dtype.type(s1) if not is_sparse(A) else (A * (1.0 / s1)).astype(A.dtype)


# --------------------------------------------------------------------------- loading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: DEFLATE expands data at most ~1032 times: a zip member declaring more than this
#: many bytes per compressed byte is lying about its size.
_MAX_DEFLATE_RATIO = 1100


def _npy_header(fp) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data bytes) from the NPY header at the start of ``fp``, which is left
    at the first data byte. Nothing is allocated; ValueError when there is no valid header."""
    try:
        version = np.lib.format.read_magic(fp)
    except (ValueError, EOFError):
        raise ValueError("no NumPy (.npy) header") from None
    try:
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        elif version == (3, 0) and hasattr(np.lib.format, "_read_array_header"):
            shape, _, dtype = np.lib.format._read_array_header(fp, version)
        else:
            raise ValueError(f"unsupported NumPy format version {version[0]}.{version[1]}")
    except Exception as exc:  # the header is parsed by ast.literal_eval: any of its errors
        raise ValueError(f"a malformed NumPy header ({type(exc).__name__}: {_first_line(exc)})") from None
    if dtype.hasobject:
        raise ValueError("it holds Python objects (dtype object), not numbers")
    if any(not isinstance(x, int) or x < 0 for x in shape):
        raise ValueError(f"a malformed NumPy header (shape {shape})")
    count = 1
    for x in shape:
        count *= x
    return shape, dtype, count * dtype.itemsize


def _check_npy_size(fp, available: int) -> None:
    """The NPY header at ``fp`` declares no more data than the ``available`` bytes after it."""
    shape, dtype, nbytes = _npy_header(fp)
    have = available - fp.tell()
    if nbytes > have:
        raise ValueError(f"the header declares shape {shape} of {dtype} "
                         f"({nbytes} bytes) but only {max(have, 0)} bytes follow")


def read_npz_arrays(path) -> dict:
    """Every array of an ``.npz`` file, never unpickling, nothing allocated before it is checked.

    Each member's NPY header is read first and the size it declares is checked
    against the member's size in the archive, and that against the file's size
    on disk, so a hostile header (a member declaring 2**40 values) is a
    ValueError, not a huge allocation.

    Returns
    -------
    dict of name -> ndarray (names without the ``.npy`` suffix, as ``np.load``)

    Raises
    ------
    ValueError
        The reason (without the file name: callers add it).
    """
    with open(path, "rb") as f:
        disk_size = os.fstat(f.fileno()).st_size
        try:
            with zipfile.ZipFile(f) as zf:
                infos = zf.infolist()
                if sum(info.compress_size for info in infos) > disk_size:
                    raise ValueError("corrupt: its members are larger than the file")
                for info in infos:
                    if not info.filename.endswith(".npy"):
                        raise ValueError(f"member {info.filename!r} is not a NumPy array (.npy)")
                    stored = info.compress_type == zipfile.ZIP_STORED
                    most = info.compress_size if stored else _MAX_DEFLATE_RATIO * info.compress_size + 1024
                    if info.file_size > most:
                        raise ValueError(f"member {info.filename!r} is corrupt (it declares {info.file_size} bytes)")
                    with zf.open(info) as member:
                        try:
                            _check_npy_size(member, info.file_size)
                        except ValueError as exc:
                            raise ValueError(f"member {info.filename!r}: {exc}") from None
                arrays = {}
                for info in infos:
                    with zf.open(info) as member:
                        arrays[info.filename[: -len(".npy")]] = np.lib.format.read_array(member, allow_pickle=False)
                return arrays
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, NotImplementedError,
                RuntimeError) as exc:  # RuntimeError: an encrypted member
            raise ValueError(f"corrupted or truncated ({_first_line(exc)})") from None


def _load_npy(path: pathlib.Path, mmap: bool) -> np.ndarray:
    with open(path, "rb") as f:
        try:
            np.lib.format.read_magic(f)
        except ValueError:
            raise ValueError(f"path: {path}: not a .npy file (no NumPy header)") from None
        f.seek(0)
        try:  # before np.load allocates what the header declares
            _check_npy_size(f, os.fstat(f.fileno()).st_size)
        except ValueError as exc:
            if "objects" in str(exc):
                raise ValueError(f"path: {path}: cannot read this .npy file: {exc}") from None
            raise ValueError(f"path: {path}: cannot read this .npy file (truncated?): {exc}") from None
    try:
        # A memory map reads the file lazily: matrices larger than memory stay on disk.
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # fastlr never unpickles: say what the file holds instead
            raise ValueError(f"path: {path}: cannot read this .npy file: it holds Python objects "
                             "(dtype object), not numbers") from None
        raise ValueError(f"path: {path}: cannot read this .npy file (truncated?): {_first_line(exc)}") from None
    except EOFError as exc:
        raise ValueError(f"path: {path}: cannot read this .npy file (truncated?): {_first_line(exc)}") from None


def _sparse_from_arrays(arrays: dict):
    """The CSR/CSC/COO matrix of ``scipy.sparse.save_npz``'s arrays (None for other formats).

    scipy's constructors check the lengths of the arrays, not the indices (check_sparse does)."""
    fmt = arrays["format"].item()
    fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else str(fmt)
    shape = tuple(int(x) for x in np.asarray(arrays["shape"]).ravel())
    if len(shape) != 2:
        raise ValueError(f"a sparse matrix of shape {shape}")
    if fmt in ("csr", "csc"):
        kind = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
        return kind((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
    if fmt == "coo" and "row" in arrays and "col" in arrays:
        return sp.coo_matrix((arrays["data"], (arrays["row"], arrays["col"])), shape=shape)
    return None


def _load_npz(path: pathlib.Path):
    if not zipfile.is_zipfile(path):
        raise ValueError(f"path: {path}: not a .npz file")
    try:
        arrays = read_npz_arrays(path)
    except ValueError as exc:
        if "objects" in str(exc):
            raise ValueError(f"path: {path}: cannot read this .npz file: it holds Python objects "
                             "(dtype object), not numbers") from None
        raise ValueError(f"path: {path}: cannot read this .npz file: {exc}") from None
    keys = list(arrays)
    if "format" in keys and "shape" in keys:  # written by scipy.sparse.save_npz
        try:
            A = _sparse_from_arrays(arrays)
            if A is None:  # BSR, DIA: scipy reads them (their members were checked above)
                A = sp.load_npz(path)
        except (ValueError, KeyError, EOFError, IndexError, zipfile.BadZipFile) as exc:
            raise ValueError(f"path: {path}: cannot read this .npz file (corrupted?): {_first_line(exc)}") from None
        # Before any conversion: scipy's compiled routines trust the index arrays.
        return sp.csr_array(check_sparse(A, f"path: {path}"))
    if len(keys) == 1 or "A" in keys:
        return arrays[keys[0] if len(keys) == 1 else "A"]
    shown = ", ".join(keys) if keys else "none"
    raise ValueError(f"path: {path}: holds arrays {shown}; expected one array, one named 'A', "
                     "or a scipy.sparse matrix (scipy.sparse.save_npz)")


def _load_mtx(path: pathlib.Path):
    try:
        A = scipy.io.mmread(path)
    except (ValueError, UnicodeDecodeError, EOFError, IndexError, OverflowError) as exc:
        raise ValueError(f"path: {path}: cannot read this .mtx file ({_first_line(exc)})") from None
    return sp.csr_array(check_sparse(A, f"path: {path}")) if sp.issparse(A) else A


def load_matrix(path, *, mmap: bool = False):
    """One matrix from a ``.npy``, ``.npz`` or ``.mtx`` file (the format from the extension).

    * ``.npy``: a 2-D array (``np.save``), optionally memory-mapped;
    * ``.npz``: ``scipy.sparse.save_npz`` output (any sparse format, returned as
      CSR), or ``np.savez`` output with one array, or with several of which
      one is named ``A``;
    * ``.mtx``: Matrix Market, sparse (coordinate; returned as CSR) or dense
      (array).

    Nothing is ever unpickled: a file holding Python objects is an error.

    Parameters
    ----------
    path : str or os.PathLike
    mmap : bool, default False
        Memory-map a ``.npy`` file (read-only ``np.memmap``) instead of reading
        it: a matrix larger than memory stays on disk and is read as it is
        used. Other formats are always read into memory.

    Returns
    -------
    numpy.ndarray, numpy.memmap or scipy.sparse.csr_array
        The matrix with the file's dtype (any real dtype: bool, integer or float).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder (see :func:`load_folder`).
    ValueError
        If the extension is not one of .npy, .npz, .mtx, or the file is
        unreadable, truncated, of another format, holds Python objects or
        something else than one non-empty 2-D real matrix. The message names
        the file.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "A.npy"
    >>> np.save(path, np.eye(3))
    >>> load_matrix(path).shape
    (3, 3)
    >>> type(load_matrix(path, mmap=True)).__name__
    'memmap'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    path = pathlib.Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"path: {path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"path: {path}: is a folder, expected a matrix file (.npy, .npz, .mtx)")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        A = _load_npy(path, bool(mmap))
    elif suffix == ".npz":
        A = _load_npz(path)
    elif suffix == ".mtx":
        A = _load_mtx(path)
    else:
        raise ValueError(f"path: {path}: unknown matrix format {suffix or '(no extension)'!r}; "
                         "expected .npy, .npz or .mtx")
    if A.ndim != 2:
        raise ValueError(f"path: {path}: expected a 2-D matrix, got shape {A.shape}")
    if A.dtype.kind not in "biuf":
        raise ValueError(f"path: {path}: expected real numbers, got dtype {A.dtype}")
    if min(A.shape) == 0:
        raise ValueError(f"path: {path}: the matrix is empty (shape {A.shape})")
    return A


def _read_image(path: pathlib.Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("reading image frames needs Pillow: pip install pillow") from None
    try:
        with Image.open(path) as im:
            frame = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except OSError as exc:
        raise ValueError(f"path: cannot read image {path}: {exc}") from None
    return frame_to_matrix(frame)


def load_folder(path, *, dtype=None) -> list:
    """Every matrix in a folder, in file-name order.

    The folder holds either matrix files - ``.npy``, ``.npz``, ``.mtx``, each
    read by :func:`load_matrix` - or image frames (.png, .jpg, ...; Pillow),
    each frame becoming a 3W x H matrix with values in [0, 1] (see
    :func:`frame_to_matrix`).
    Other files are ignored. All matrices must have one shape.

    Parameters
    ----------
    path : str or os.PathLike
        The folder.
    dtype : float32 or float64, optional
        Convert every matrix to this dtype (default: keep float32/float64).

    Returns
    -------
    list of ndarray or scipy.sparse.csr_array

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If it holds no matrices, both matrices and images, an unreadable file,
        or matrices of different shapes (the message names the file).
    """
    folder = pathlib.Path(os.fspath(path))
    if not folder.is_dir():
        raise FileNotFoundError(f"path: {folder} is not a folder")
    dtype = None if dtype is None else _float_dtype(dtype)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    matrices = [p for p in files if p.suffix.lower() in MATRIX_SUFFIXES]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if matrices and images:
        raise ValueError(f"path: {folder} holds both matrix files and images; keep one kind per folder")
    if not matrices and not images:
        raise ValueError(f"path: {folder} holds no .npy/.npz/.mtx matrices or image frames")
    out = []
    shape = None
    for p in matrices or images:
        A = load_matrix(p) if matrices else _read_image(p)
        A = as_matrix(A, name=str(p))
        if dtype is not None and A.dtype != dtype:
            A = A.astype(dtype)
        if shape is None:
            shape = A.shape
        elif A.shape != shape:
            raise ValueError(f"path: {p} has shape {A.shape}, but {(matrices or images)[0].name} has {shape}")
        out.append(A)
    return out
