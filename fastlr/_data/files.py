"""Loaders: one matrix from .npy / .npz / .mtx (never unpickling), a folder of matrices or frames."""

from __future__ import annotations

import io
import os
import pathlib
import zipfile
import zlib

import numpy as np
import scipy.io
import scipy.sparse as sp

from .._validation import as_matrix, check_sparse
from .generators import _float_dtype, frame_to_matrix

__all__ = ["IMAGE_SUFFIXES", "MATRIX_SUFFIXES", "load_folder", "load_matrix", "read_npz_arrays"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
MATRIX_SUFFIXES = (".npy", ".npz", ".mtx")


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
    """Every array of an ``.npz`` file (a name, or a binary file object), never unpickling, nothing allocated
    before it is checked.

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
    if hasattr(path, "read"):  # a binary file object: its remaining bytes
        data = path.read()
        return _read_npz(io.BytesIO(data), len(data))
    with open(path, "rb") as f:
        return _read_npz(f, os.fstat(f.fileno()).st_size)


def _read_npz(f, disk_size: int) -> dict:
    """``read_npz_arrays`` of an open binary file of ``disk_size`` bytes."""
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
